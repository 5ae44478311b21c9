"""CacheEntry: one stored response (identity body plus encoded variants) and its compact binary form.

The binary form is read back from Redis, so it is parsed field by field: nothing in it can make the reader
execute code, and a truncated or foreign value raises ValueError (treated as a miss by the stores).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from slipstream.http.preconditions import EntityTag

RawHeaders = list[tuple[bytes, bytes]]

_MAGIC = b"SLC\x02"
_FIXED = struct.Struct(">Hdddddd B")
_LENGTH = struct.Struct(">I")
_NO_DATE = -1.0
_FLAG_NO_CACHE, _FLAG_MUST_REVALIDATE, _FLAG_COMPRESSIBLE, _FLAG_NEGOTIATED = 1, 2, 4, 8
# What an entry costs beyond its byte strings: the objects, dicts and tuples holding them.
ENTRY_OVERHEAD = 600
HEADER_OVERHEAD = 120
RENDERINGS = 4  # identity and up to three codings


@dataclass(frozen=True)
class Rendering:
    """One coding's response headers (and what conditional requests compare), worked out on first use."""

    headers: RawHeaders
    not_modified_headers: RawHeaders
    etag: EntityTag | None
    last_modified: int | None


@dataclass
class CacheEntry:
    """A stored response. ``headers`` describe the identity body; ``variants`` hold encoded bodies by coding."""

    status: int
    headers: RawHeaders
    body: bytes
    etag: bytes | None
    last_modified: float | None
    response_time: float
    initial_age: float
    lifetime: float
    stale_while_revalidate: float = 0.0
    stale_if_error: float = 0.0
    no_cache: bool = False
    must_revalidate: bool = False
    compressible: bool = False
    # CompressionMiddleware chose the coding of the response stored: hits refusing identity follow its rules.
    negotiated: bool = False
    vary: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    variants: dict[str, bytes] = field(default_factory=dict)
    # The route template of the request that filled the entry, so hits are labelled with it.
    route: str | None = None
    # Response headers per coding (None: identity), rendered on first use; never serialised.
    rendered: dict[str | None, Rendering] = field(default_factory=dict, compare=False, repr=False)

    def age(self, now: float) -> float:
        return self.initial_age + max(0.0, now - self.response_time)

    def size(self) -> int:
        """An estimate of the memory this entry holds, used by the byte-bounded memory tier."""
        # Each header costs its bytes and objects, once as stored and up to RENDERINGS times as rendered.
        headers = sum(len(k) + len(v) + HEADER_OVERHEAD * (1 + RENDERINGS) for k, v in self.headers)
        variants = sum(len(v) + HEADER_OVERHEAD for v in self.variants.values())
        return ENTRY_OVERHEAD + len(self.body) + headers + variants + len(self.etag or b"") + len(self.route or "")

    def storage_ttl(self, revalidation_grace: float) -> float:
        """How long a store keeps the entry: fresh time, stale windows, and a grace to revalidate it by validator."""
        has_validator = self.etag is not None or self.last_modified is not None
        extra = max(self.stale_while_revalidate, self.stale_if_error, revalidation_grace if has_validator else 0.0)
        return max(1.0, self.lifetime - self.initial_age + extra)


def serialise(entry: CacheEntry) -> bytes:
    flags = (
        (_FLAG_NO_CACHE if entry.no_cache else 0)
        | (_FLAG_MUST_REVALIDATE if entry.must_revalidate else 0)
        | (_FLAG_COMPRESSIBLE if entry.compressible else 0)
        | (_FLAG_NEGOTIATED if entry.negotiated else 0)
    )
    parts = [
        _MAGIC,
        _FIXED.pack(
            entry.status,
            entry.response_time,
            entry.initial_age,
            entry.lifetime,
            entry.stale_while_revalidate,
            entry.stale_if_error,
            _NO_DATE if entry.last_modified is None else entry.last_modified,
            flags,
        ),
    ]

    def add(data: bytes) -> None:
        parts.append(_LENGTH.pack(len(data)))
        parts.append(data)

    add(entry.body)
    add(b"" if entry.etag is None else b"\x01" + entry.etag)
    add(b"" if entry.route is None else b"\x01" + entry.route.encode())
    for group in (
        [item for pair in entry.headers for item in pair],
        [name.encode() for name in entry.vary],
        [tag.encode() for tag in entry.tags],
        [item for coding, body in entry.variants.items() for item in (coding.encode(), body)],
    ):
        parts.append(_LENGTH.pack(len(group)))
        for item in group:
            add(item)
    return b"".join(parts)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.view = memoryview(data)
        self.position = 0

    def take(self, size: int) -> bytes:
        end = self.position + size
        if size < 0 or end > len(self.view):
            raise ValueError("truncated cache entry")
        chunk = self.view[self.position : end].tobytes()
        self.position = end
        return chunk

    def length(self) -> int:
        value: int = _LENGTH.unpack(self.take(_LENGTH.size))[0]
        return value

    def item(self) -> bytes:
        return self.take(self.length())

    def group(self) -> list[bytes]:
        count = self.length()
        if count > len(self.view):
            raise ValueError("corrupt cache entry")
        return [self.item() for _ in range(count)]


def deserialise(data: bytes) -> CacheEntry:
    if not data.startswith(_MAGIC):
        raise ValueError("not a slipstream cache entry")
    reader = _Reader(data)
    reader.take(len(_MAGIC))
    status, response_time, initial_age, lifetime, swr, sie, last_modified, flags = _FIXED.unpack(
        reader.take(_FIXED.size)
    )
    body = reader.item()
    etag_field = reader.item()
    route_field = reader.item()
    header_items, vary, tags, variant_items = reader.group(), reader.group(), reader.group(), reader.group()
    if len(header_items) % 2 or len(variant_items) % 2 or reader.position != len(data):
        raise ValueError("corrupt cache entry")
    return CacheEntry(
        status=status,
        headers=list(zip(header_items[::2], header_items[1::2], strict=True)),
        body=body,
        etag=etag_field[1:] if etag_field else None,
        last_modified=None if last_modified == _NO_DATE else last_modified,
        response_time=response_time,
        initial_age=initial_age,
        lifetime=lifetime,
        stale_while_revalidate=swr,
        stale_if_error=sie,
        no_cache=bool(flags & _FLAG_NO_CACHE),
        must_revalidate=bool(flags & _FLAG_MUST_REVALIDATE),
        compressible=bool(flags & _FLAG_COMPRESSIBLE),
        negotiated=bool(flags & _FLAG_NEGOTIATED),
        vary=tuple(name.decode() for name in vary),
        tags=tuple(tag.decode() for tag in tags),
        variants={coding.decode(): body for coding, body in zip(variant_items[::2], variant_items[1::2], strict=True)},
        route=route_field[1:].decode() if route_field else None,
    )
