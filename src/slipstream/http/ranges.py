"""Byte ranges (RFC 9110 §14): reading a Range field, If-Range, and the 206 / 416 answers cut from a whole body."""

from __future__ import annotations

from dataclasses import dataclass

from slipstream.http.dates import parse_http_date
from slipstream.http.preconditions import EntityTag, parse_entity_tag

RANGE_NOT_SATISFIABLE = 416
PARTIAL_CONTENT = 206
RANGE_NOT_SATISFIABLE_BODY = b"Range Not Satisfiable\n"
# Longer positions are past any body a cache holds; int() of them would only cost time.
_MAX_DIGITS = 18


@dataclass(frozen=True, slots=True)
class ByteRange:
    """One byte-range-spec: ``first-last``, ``first-`` (``last`` None) or the suffix ``-n`` (``first`` None)."""

    first: int | None
    last: int | None

    def within(self, length: int) -> tuple[int, int] | None:
        """The inclusive positions this range selects of ``length`` bytes, or None when it selects none (§14.1.1:
        a first position at or past the end, or a zero-length suffix; nothing of an empty body)."""
        if self.first is None:
            suffix = self.last or 0
            return None if suffix == 0 or length == 0 else (max(0, length - suffix), length - 1)
        if self.first >= length:
            return None
        return self.first, length - 1 if self.last is None else min(self.last, length - 1)


class Ranges:
    """What a Range field asks for: ``single`` (one byte range a cache can cut), or ``several`` (a multipart
    answer, left to the app); neither when the field is to be ignored (another unit, or invalid: §14.2)."""

    __slots__ = ("several", "single")

    def __init__(self, single: ByteRange | None = None, several: bool = False) -> None:
        self.single = single
        self.several = several


IGNORED = Ranges()
_SEVERAL = Ranges(several=True)


def _position(digits: bytes) -> int | None:
    return int(digits) if digits.isdigit() and len(digits) <= _MAX_DIGITS else None


def _spec(member: bytes) -> ByteRange | None:
    first_digits, dash, last_digits = member.partition(b"-")
    if not dash:
        return None
    if not first_digits:
        suffix = _position(last_digits)
        return None if suffix is None else ByteRange(None, suffix)
    first = _position(first_digits)
    last = _position(last_digits) if last_digits else None
    if first is None or (last_digits and (last is None or last < first)):
        return None  # §14.1.1: a last position before the first makes the whole field invalid
    return ByteRange(first, last)


def parse_range(value: bytes | None) -> Ranges:
    """Read ``bytes=<range-set>`` (the unit case-insensitive, empty list members skipped)."""
    if value is None:
        return IGNORED
    unit, equals, range_set = value.partition(b"=")
    if not equals or unit.strip(b" \t").lower() != b"bytes":
        return IGNORED
    members = [m.strip(b" \t") for m in range_set.split(b",")]
    specs = [_spec(m) for m in members if m]
    if not specs or None in specs:
        return IGNORED
    if len(specs) > 1:
        return _SEVERAL
    return Ranges(single=specs[0])


def if_range_holds(value: bytes | None, etag: EntityTag | None, last_modified: int | None) -> bool:
    """RFC 9110 §13.1.5: an entity-tag matches by strong comparison (a weak one never does), an HTTP-date only when
    it is exactly the Last-Modified; anything else is false, so the whole representation is sent."""
    if value is None:
        return True
    value = value.strip(b" \t")
    if value[:1] == b'"' or value[:2] == b"W/":
        tag = parse_entity_tag(value)
        return tag is not None and etag is not None and not tag.weak and not etag.weak and tag.opaque == etag.opaque
    date = parse_http_date(value)
    return date is not None and last_modified is not None and date == last_modified


def partial(
    headers: list[tuple[bytes, bytes]], body: bytes, span: tuple[int, int]
) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The 206 answer's headers and body: the whole response's fields with Content-Length for the part, and
    Content-Range (§14.4, §15.3.7)."""
    first, last = span
    part = body[first : last + 1]
    kept = [(k, v) for k, v in headers if k.lower() not in (b"content-length", b"content-range")]
    kept.append((b"content-range", b"bytes %d-%d/%d" % (first, last, len(body))))
    kept.append((b"content-length", b"%d" % len(part)))
    return kept, part


def not_satisfiable(length: int) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The 416 answer: Content-Range ``bytes */length`` says how long the representation is (§15.5.17)."""
    body = RANGE_NOT_SATISFIABLE_BODY
    return [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-range", b"bytes */%d" % length),
        (b"content-length", b"%d" % len(body)),
    ], body
