"""RFC 9110 §14 and §13.1.5 as tables: which Range fields a cache cuts, which it ignores, and when If-Range holds."""

from __future__ import annotations

import pytest

from slipstream.http.preconditions import EntityTag
from slipstream.http.ranges import ByteRange, if_range_holds, parse_range

LAST_MODIFIED = 784111777  # Sun, 06 Nov 1994 08:49:37 GMT


@pytest.mark.parametrize(
    ("value", "single"),
    [
        pytest.param(b"bytes=0-9", ByteRange(0, 9), id="14.1.1-first-last"),
        pytest.param(b"bytes=10-", ByteRange(10, None), id="14.1.1-open-ended"),
        pytest.param(b"bytes=-5", ByteRange(None, 5), id="14.1.1-suffix"),
        pytest.param(b"Bytes=0-0", ByteRange(0, 0), id="14.1-unit-case-insensitive"),
        pytest.param(b"bytes=0-9,", ByteRange(0, 9), id="5.6.1-empty-list-member-skipped"),
        pytest.param(b"bytes= 0-9 ", ByteRange(0, 9), id="5.6.1-optional-whitespace"),
    ],
)
def test_one_byte_range_is_cut(value: bytes, single: ByteRange) -> None:
    assert parse_range(value).single == single


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="absent"),
        pytest.param(b"items=0-9", id="14.2-unknown-unit-ignored"),
        pytest.param(b"bytes=9-0", id="14.1.1-last-before-first-invalid"),
        pytest.param(b"bytes=a-9", id="14.1.1-not-digits"),
        pytest.param(b"bytes=0-9-", id="14.1.1-two-dashes"),
        pytest.param(b"bytes=5", id="14.1.1-no-dash"),
        pytest.param(b"bytes=", id="14.1.1-empty-set"),
        pytest.param(b"bytes=-", id="14.1.1-no-positions"),
        pytest.param(b"bytes 0-9", id="14.1-no-equals"),
        pytest.param(b"bytes=0-9, x", id="14.2-one-invalid-member-spoils-all"),
        pytest.param(b"bytes=" + b"9" * 40 + b"-", id="overlong-position"),
    ],
)
def test_invalid_or_foreign_ranges_are_ignored(value: bytes | None) -> None:
    parsed = parse_range(value)
    assert parsed.single is None and not parsed.several


def test_several_ranges_are_left_to_the_app() -> None:
    parsed = parse_range(b"bytes=0-1, 5-6")
    assert parsed.several and parsed.single is None


@pytest.mark.parametrize(
    ("spec", "length", "span"),
    [
        pytest.param(ByteRange(0, 9), 100, (0, 9), id="within"),
        pytest.param(ByteRange(90, 200), 100, (90, 99), id="14.1.2-last-past-end-is-clamped"),
        pytest.param(ByteRange(99, None), 100, (99, 99), id="open-ended-last-byte"),
        pytest.param(ByteRange(None, 10), 100, (90, 99), id="suffix"),
        pytest.param(ByteRange(None, 500), 100, (0, 99), id="14.1.2-suffix-longer-than-body-is-whole"),
        pytest.param(ByteRange(100, None), 100, None, id="14.1.1-first-at-end-unsatisfiable"),
        pytest.param(ByteRange(None, 0), 100, None, id="14.1.1-zero-suffix-unsatisfiable"),
        pytest.param(ByteRange(0, None), 0, None, id="empty-body-unsatisfiable"),
        pytest.param(ByteRange(None, 5), 0, None, id="empty-body-suffix-unsatisfiable"),
    ],
)
def test_what_a_range_selects(spec: ByteRange, length: int, span: tuple[int, int] | None) -> None:
    assert spec.within(length) == span


STRONG = EntityTag(b'"v1"', weak=False)
WEAK = EntityTag(b'"v1"', weak=True)


@pytest.mark.parametrize(
    ("value", "etag", "last_modified", "holds"),
    [
        pytest.param(None, STRONG, None, True, id="absent"),
        pytest.param(b'"v1"', STRONG, None, True, id="13.1.5-strong-match"),
        pytest.param(b'"v2"', STRONG, None, False, id="13.1.5-other-tag"),
        pytest.param(b'W/"v1"', STRONG, None, False, id="13.1.5-weak-validator-never-matches"),
        pytest.param(b'"v1"', WEAK, None, False, id="13.1.5-weak-etag-never-matches"),
        pytest.param(b'"v1"', None, LAST_MODIFIED, False, id="13.1.5-tag-without-etag"),
        pytest.param(b"Sun, 06 Nov 1994 08:49:37 GMT", STRONG, LAST_MODIFIED, True, id="13.1.5-date-exact"),
        pytest.param(b"Sun, 06 Nov 1994 08:49:38 GMT", STRONG, LAST_MODIFIED, False, id="13.1.5-date-later"),
        pytest.param(b"Sun, 06 Nov 1994 08:49:36 GMT", STRONG, LAST_MODIFIED, False, id="13.1.5-date-earlier"),
        pytest.param(b"Sun, 06 Nov 1994 08:49:37 GMT", STRONG, None, False, id="13.1.5-date-no-last-modified"),
        pytest.param(b"yesterday", STRONG, LAST_MODIFIED, False, id="13.1.5-invalid"),
    ],
)
def test_if_range(value: bytes | None, etag: EntityTag | None, last_modified: int | None, holds: bool) -> None:
    assert if_range_holds(value, etag, last_modified) is holds
