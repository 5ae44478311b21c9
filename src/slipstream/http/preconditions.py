"""Validators and preconditions (RFC 9110 §8.8 and §13): entity tags, HTTP dates and their evaluation order."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import xxhash

from slipstream.http.dates import parse_http_date

NOT_MODIFIED = 304
PRECONDITION_FAILED = 412
_SAFE_FOR_304 = frozenset({"GET", "HEAD"})
# What a 304 carries (RFC 9110 §15.4.5), plus Set-Cookie, which is not representation metadata and which
# session middleware relies on. Last-Modified is kept only when there is no ETag.
_KEPT_ON_304 = frozenset(
    {b"etag", b"cache-control", b"content-location", b"date", b"expires", b"vary", b"set-cookie", b"last-modified"}
)
CONDITIONAL_HEADERS = frozenset({b"if-match", b"if-none-match", b"if-modified-since", b"if-unmodified-since"})


@dataclass(frozen=True)
class EntityTag:
    opaque: bytes  # the quoted string, quotes included
    weak: bool


@dataclass(frozen=True)
class EntityTagList:
    """A parsed If-Match / If-None-Match value: ``*`` or a list of tags (members that do not parse never match)."""

    any: bool
    tags: tuple[EntityTag, ...]

    def matches_strong(self, etag: EntityTag | None, exists: bool) -> bool:
        if self.any:
            return exists
        return etag is not None and not etag.weak and any(not t.weak and t.opaque == etag.opaque for t in self.tags)

    def matches_weak(self, etag: EntityTag | None, exists: bool) -> bool:
        if self.any:
            return exists
        return etag is not None and any(t.opaque == etag.opaque for t in self.tags)


# etagc = %x21 / %x23-7E / obs-text: every byte but controls, space, DQUOTE and DEL.
_ETAGC_RUN = re.compile(rb"[\x21\x23-\x7e\x80-\xff]*")


def parse_entity_tag(value: bytes) -> EntityTag | None:
    """One entity-tag (a response's ETag field), or None when it does not follow the grammar."""
    value = value.strip()
    weak = value.startswith(b"W/")
    opaque = value[2:] if weak else value
    if (
        len(opaque) < 2
        or opaque[0] != 0x22
        or opaque[-1] != 0x22
        or not _ETAGC_RUN.fullmatch(opaque, 1, len(opaque) - 1)
    ):
        return None
    return EntityTag(opaque, weak)


def parse_entity_tag_list(value: bytes) -> EntityTagList:
    """Parse ``*`` or ``#entity-tag``; commas may sit inside quotes, so this scans rather than splits."""
    if value.strip() == b"*":
        return EntityTagList(True, ())
    tags: list[EntityTag] = []
    position, end = 0, len(value)
    while position < end:
        while position < end and value[position] in b" \t,":
            position += 1
        if position >= end:
            break
        start = position
        weak = value.startswith(b"W/", position)
        if weak:
            position += 2
        if position < end and value[position] == 0x22:
            close = value.find(b'"', position + 1)
            if close > 0 and _ETAGC_RUN.fullmatch(value, position + 1, close):
                after = close + 1
                while after < end and value[after] in b" \t":
                    after += 1
                if after >= end or value[after] == 0x2C:
                    tags.append(EntityTag(value[position : close + 1], weak))
                    position = after
                    continue
        # A malformed member: skip to the next comma outside this member and keep going.
        comma = value.find(b",", start)
        position = end if comma < 0 else comma + 1
    return EntityTagList(False, tuple(tags))


def not_modified_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The fields of a 200 that its 304 repeats."""
    headers = list(headers)
    has_etag = any(key.lower() == b"etag" for key, _ in headers)
    return [
        (key, value)
        for key, value in headers
        if key.lower() in _KEPT_ON_304 and not (has_etag and key.lower() == b"last-modified")
    ]


def content_etag(body: bytes, *, weak: bool = False) -> bytes:
    """A validator from the body bytes: xxh3-128 is fast and the same in every process, run and machine."""
    tag = f'"{xxhash.xxh3_128_hexdigest(body)}"'.encode()  # the fastest of the ways to quote it, on every GET
    return b"W/" + tag if weak else tag


@dataclass(frozen=True)
class Preconditions:
    """The conditional header fields of one request, parsed once."""

    if_match: EntityTagList | None = None
    if_none_match: EntityTagList | None = None
    if_modified_since: int | None = None
    if_unmodified_since: int | None = None

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[bytes, bytes]]) -> Preconditions | None:
        """None when the request carries no precondition at all (the common, fast case)."""
        # Made at the first conditional field: most requests have none, and this runs for every one.
        fields: dict[bytes, bytes] | None = None
        for key, value in headers:
            if key in CONDITIONAL_HEADERS:
                if fields is None:
                    fields = {}
                fields[key] = fields[key] + b", " + value if key in fields else value
        if fields is None:
            return None
        if_match = fields.get(b"if-match")
        if_none_match = fields.get(b"if-none-match")
        modified_since = fields.get(b"if-modified-since")
        unmodified_since = fields.get(b"if-unmodified-since")
        return cls(
            if_match=None if if_match is None else parse_entity_tag_list(if_match),
            if_none_match=None if if_none_match is None else parse_entity_tag_list(if_none_match),
            if_modified_since=None if modified_since is None else parse_http_date(modified_since),
            if_unmodified_since=None if unmodified_since is None else parse_http_date(unmodified_since),
        )

    @property
    def applies_to_unsafe_methods(self) -> bool:
        # If-Modified-Since is defined for GET and HEAD only.
        return self.if_match is not None or self.if_none_match is not None or self.if_unmodified_since is not None

    def evaluate(
        self,
        method: str,
        etag: EntityTag | None,
        last_modified: int | None,
        exists: bool,
        *,
        stored_at: float | None = None,
    ) -> int | None:
        """RFC 9110 §13.2.2 order; returns 304, 412 or None to go on with the request.

        ``stored_at``, for a cache answering from a stored response without Last-Modified: its Date, or the time it
        was received, which If-Modified-Since is compared with instead (RFC 9111 §4.3.2). If-Unmodified-Since has no
        such fallback: it is ignored without a modification date (RFC 9110 §13.1.4), and a Date is not one.
        """
        if self.if_match is not None:
            if not self.if_match.matches_strong(etag, exists):
                return PRECONDITION_FAILED
        elif self.if_unmodified_since is not None and last_modified is not None:
            if last_modified > self.if_unmodified_since:
                return PRECONDITION_FAILED
        if self.if_none_match is not None:
            if self.if_none_match.matches_weak(etag, exists):
                return NOT_MODIFIED if method in _SAFE_FOR_304 else PRECONDITION_FAILED
        elif method in _SAFE_FOR_304 and self.if_modified_since is not None:
            modified = stored_at if last_modified is None else last_modified
            if modified is not None and modified <= self.if_modified_since:
                return NOT_MODIFIED
        return None
