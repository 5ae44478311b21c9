"""Small operations on ASGI raw header lists (lower-case byte names, byte values)."""

from __future__ import annotations

from collections.abc import Iterable

RawHeaders = list[tuple[bytes, bytes]]
# Headers describing the identity bytes; they are rewritten when the bytes are encoded.
_ENCODED_DROPS = frozenset({b"content-length", b"accept-ranges"})


def request_header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The field value of ``name`` (lower-case), repeated fields joined with ", " as RFC 9110 §5.3 allows."""
    found: bytes | None = None
    for key, value in headers:
        if key == name:
            found = value if found is None else found + b", " + value
    return found


def length_matches(headers: Iterable[tuple[bytes, bytes]], size: int) -> bool:
    """Whether a body of ``size`` bytes is what the response's Content-Length (if any, and valid) announced: a stream
    ended early (its client gone, say) is incomplete, and a cache must not store it as whole (RFC 9111 §3.3)."""
    length = request_header(headers, b"content-length")
    return length is None or not length.strip().isdigit() or int(length) == size


def field_tokens(value: bytes) -> list[bytes]:
    """Comma-separated list members, stripped and lower-cased, empty members dropped."""
    return [part for part in (item.strip().lower() for item in value.split(b",")) if part]


def add_vary(headers: RawHeaders, field_name: bytes) -> None:
    """Merge ``field_name`` into Vary unless it (or ``*``) is already there."""
    wanted = field_name.lower()
    first = -1
    for index, (key, value) in enumerate(headers):
        if key.lower() == b"vary":
            tokens = field_tokens(value)
            if b"*" in tokens or wanted in tokens:
                return
            if first < 0:
                first = index
    if first < 0:
        headers.append((b"vary", field_name))
    else:
        value = headers[first][1].strip()
        headers[first] = (b"vary", value + b", " + field_name if value else field_name)


def weaken_etag(value: bytes) -> bytes:
    """``"x"`` becomes ``W/"x"``: the bytes changed, so the validator may no longer claim byte equality."""
    stripped = value.strip()
    return b"W/" + stripped if stripped.startswith(b'"') else stripped


def encoded_headers(headers: RawHeaders, token: bytes, length: int | None) -> RawHeaders:
    """The start headers for an encoded body, built in one pass over the app's headers."""
    rewritten: RawHeaders = []
    has_vary = False
    for key, value in headers:
        name = key.lower()
        if name == b"etag":
            rewritten.append((key, weaken_etag(value)))
        elif name not in _ENCODED_DROPS:
            has_vary = has_vary or name == b"vary"
            rewritten.append((key, value))
    rewritten.append((b"content-encoding", token))
    if length is not None:
        rewritten.append((b"content-length", b"%d" % length))
    if has_vary:
        add_vary(rewritten, b"Accept-Encoding")
    else:
        rewritten.append((b"vary", b"Accept-Encoding"))
    return rewritten
