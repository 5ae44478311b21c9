"""Cache keys: the primary key of a request's target URI, and the secondary key from the fields a response varies on.

The primary key is the target as received: the raw path and the raw query, with only the RFC 3986 §6.2.2
normalisations that cannot change what the app sees (hex digits of percent-escapes upper-cased, escaped unreserved
characters decoded). ``%2F``, ``%3F``, ``%23`` and ``%25`` stay escaped, so a path never reads as a query.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from urllib.parse import quote, unquote_plus, urlsplit

from starlette.types import Scope

from slipstream.cache.negotiated_fields import normalise_accept_charset, normalise_accept_language

_DEFAULT_PORTS = {"http": ":80", "https": ":443", "ws": ":80", "wss": ":443"}
_SPACES_AROUND_COMMAS = re.compile(r"\s*,\s*")
_WHITESPACE = re.compile(r"\s+")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")
# A URL given as text is escaped as a client would send it: visible ASCII stays, the rest becomes UTF-8 escapes.
_VISIBLE_ASCII = "".join(chr(c) for c in range(0x21, 0x7F))
# pchar (RFC 3986 §3.3) and "/": what a decoded path keeps unescaped when the server gave no raw_path.
_PATH_SAFE = "/:@!$&'()*+,;="


def _normalise_escape(match: re.Match[bytes]) -> bytes:
    byte = int(match.group(1), 16)
    return bytes((byte,)) if byte in _UNRESERVED else b"%" + match.group(1).upper()


def normalise_escapes(raw: bytes) -> bytes:
    """RFC 3986 §6.2.2.1-2: percent-escapes upper-cased and escaped unreserved characters decoded, nothing else."""
    return _ESCAPE.sub(_normalise_escape, raw) if b"%" in raw else raw


class NameMatcher:
    """Whether a name is one of ``patterns``: exact names, or glob patterns such as ``utm_*`` (case-sensitive)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        names = [p for p in patterns if p]
        self.empty = not names
        self._exact = frozenset(p for p in names if not any(c in p for c in "*?["))
        globs = [fnmatch.translate(p) for p in names if p not in self._exact]
        self._glob = re.compile("|".join(globs)).match if globs else None

    def __call__(self, name: str) -> bool:
        return name in self._exact or (self._glob is not None and self._glob(name) is not None)


def _parameter_name(piece: bytes) -> str:
    """The name Starlette reads from one ``name=value`` piece (``parse_qsl`` on the latin-1 text)."""
    name = piece.partition(b"=")[0].decode("latin-1")
    return unquote_plus(name) if "%" in name or "+" in name else name


class QueryNormaliser:
    """The query of a key: parameters sorted by name only (stable, so repeated names keep their order), raw bytes
    kept, ignored ones (exact names or ``utm_*``-style globs) dropped. ``without_ignored`` gives the app the same."""

    def __init__(self, ignored: Iterable[str]) -> None:
        self.ignored = NameMatcher(ignored)

    def _pieces(self, query_string: bytes) -> Iterator[tuple[str, bytes]]:
        for piece in query_string.split(b"&"):
            if piece:  # parse_qsl skips empty pieces too
                yield _parameter_name(piece), piece

    def __call__(self, query_string: bytes) -> str:
        if not query_string:
            return ""
        kept = [(name, piece) for name, piece in self._pieces(query_string) if not self.ignored(name)]
        kept.sort(key=lambda pair: pair[0])
        return b"&".join(normalise_escapes(piece) for _, piece in kept).decode("latin-1")

    def without_ignored(self, query_string: bytes) -> bytes:
        """``query_string`` as received minus the ignored parameters; the same object when there were none."""
        if self.ignored.empty or not query_string:
            return query_string
        pieces = query_string.split(b"&")
        kept = [piece for piece in pieces if not (piece and self.ignored(_parameter_name(piece)))]
        return query_string if len(kept) == len(pieces) else b"&".join(kept)


class CookieFilter:
    """Removes ignored cookies (exact names or globs such as ``_ga*``) from a request's Cookie fields; a Cookie field
    left with no cookie is dropped, so a request whose only cookies are ignored ones carries none."""

    def __init__(self, ignored: Iterable[str]) -> None:
        self.ignored = NameMatcher(ignored)

    def without_ignored(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """``headers`` with the ignored cookies removed; the same list when nothing changed."""
        if not any(name == b"cookie" for name, _ in headers):
            return headers
        rebuilt: list[tuple[bytes, bytes]] = []
        changed = False
        for name, value in headers:
            if name != b"cookie":
                rebuilt.append((name, value))
                continue
            pieces = [piece.strip() for piece in value.split(b";")]
            kept = [p for p in pieces if p and not self.ignored(p.partition(b"=")[0].strip().decode("latin-1"))]
            if len(kept) == len(pieces):
                rebuilt.append((name, value))
                continue
            changed = True
            if kept:
                rebuilt.append((name, b"; ".join(kept)))
        return rebuilt if changed else headers


def target_path(scope: Scope) -> bytes:
    """The path as received (``raw_path``; the decoded ``path`` re-escaped only when a server gives none)."""
    raw: bytes | None = scope.get("raw_path")
    if raw is None:
        raw = quote(scope["path"], safe=_PATH_SAFE).encode("ascii")
    else:
        raw = raw.partition(b"?")[0]  # in case a server left the query in it
    return normalise_escapes(raw) or b"/"


def _origin(scheme: str, host: str) -> str:
    scheme = scheme.lower()
    host = host.strip().lower()
    default_port = _DEFAULT_PORTS.get(scheme)
    if default_port and host.endswith(default_port):
        host = host[: -len(default_port)]
    return f"{scheme}://{host}"


def primary_key(scope: Scope, normalise_query: QueryNormaliser) -> str:
    """The target URI: scheme, host (lower-cased, default port dropped), path as received and normalised query."""
    host = ""
    for name, value in scope["headers"]:
        if name == b"host":
            host = value.decode("latin-1")
            break
    if not host.strip():
        server = scope.get("server")
        host = f"{server[0]}:{server[1]}" if server else "localhost"
    path = target_path(scope).decode("latin-1")
    query = normalise_query(scope.get("query_string", b""))
    origin = _origin(scope.get("scheme", "http"), host)
    return f"{origin}{path}?{query}" if query else f"{origin}{path}"


def url_key(url: str, normalise_query: QueryNormaliser | None) -> str:
    """The primary key of an absolute URL as a client would request it (non-ASCII sent as UTF-8 escapes).

    Without ``normalise_query`` the URL is a prefix: its query is kept as given, an empty path stays empty, and one
    that stops before its host ends (``https://``) is only escaped.
    """
    quoted = quote(url, safe=_VISIBLE_ASCII)
    parts = urlsplit(quoted)
    if normalise_query is None and not (parts.scheme and parts.netloc):
        return normalise_escapes(quoted.encode("ascii")).decode("ascii")
    path = normalise_escapes(parts.path.encode("ascii")).decode("ascii")
    origin = _origin(parts.scheme, parts.netloc)
    if normalise_query is None:
        return f"{origin}{path}?{parts.query}" if parts.query else f"{origin}{path}"
    query = normalise_query(parts.query.encode("ascii"))
    return f"{origin}{path or '/'}?{query}" if query else f"{origin}{path or '/'}"


def normalise_field_value(value: str) -> str:
    """Whitespace folded so that ``en, fr`` and ``en,fr`` select the same variant."""
    return _SPACES_AROUND_COMMAS.sub(",", _WHITESPACE.sub(" ", value.strip()))


# Fields whose specifications allow more than folding whitespace; None from one means "fold whitespace only".
_FIELD_NORMALISERS: dict[str, Callable[[str], str | None]] = {
    "accept-language": normalise_accept_language,
    "accept-charset": normalise_accept_charset,
}


def _normalised(name: str, value: str) -> str:
    specific = _FIELD_NORMALISERS.get(name)
    normalised = None if specific is None else specific(value)
    return normalise_field_value(value) if normalised is None else normalised


def request_fields(headers: Iterable[tuple[bytes, bytes]], names: Iterable[str] | None = None) -> dict[str, str]:
    """Normalised values of the request fields ``names`` (all when None); repeated fields are joined with commas
    first (RFC 9110 §5.3), so ``Foo: 1`` and ``Foo: 2`` are ``Foo: 1, 2``."""
    wanted = None if names is None else {name.encode("latin-1") for name in names}
    fields: dict[str, str] = {}
    for key, value in headers:
        if wanted is None or key in wanted:
            name = key.decode("latin-1")
            text = value.decode("latin-1")
            fields[name] = f"{fields[name]},{text}" if name in fields else text
    return {name: _normalised(name, text) for name, text in fields.items()}


def vary_fields(vary_values: Iterable[bytes]) -> tuple[str, ...] | None:
    """The Vary field names (lower-case, sorted) other than Accept-Encoding; None for ``Vary: *``."""
    names: set[str] = set()
    for value in vary_values:
        for member in value.decode("latin-1").split(","):
            name = member.strip().lower()
            if name == "*":
                return None
            if name and name != "accept-encoding":
                names.add(name)
    return tuple(sorted(names))


def secondary_key(vary: tuple[str, ...], fields: Mapping[str, str]) -> str:
    """The variant's key: each Vary name with its value; a field the request lacks is the bare name, so it matches
    only a request lacking it too, not one sending it empty (RFC 9111 §4.1)."""
    return "".join(f"\n{name}:{fields[name]}" if name in fields else f"\n{name}" for name in vary)
