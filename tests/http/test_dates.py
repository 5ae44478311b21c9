"""HTTP-dates, strictly (RFC 9110 §5.6.7): the three formats, and a table of near misses that are not dates."""

from __future__ import annotations

import pytest

from slipstream.http.dates import parse_http_date

SUNDAY = 784111777  # Sun, 06 Nov 1994 08:49:37 GMT
NOW = 1796000000.0  # December 2026


@pytest.mark.parametrize(
    "value",
    [
        b"Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
        b"Sunday, 06-Nov-94 08:49:37 GMT",  # RFC 850
        b"Sun Nov  6 08:49:37 1994",  # asctime
        b"  Sun, 06 Nov 1994 08:49:37 GMT\t",  # surrounding whitespace is not part of the field value
    ],
)
def test_the_three_formats(value: bytes) -> None:
    assert parse_http_date(value, now=NOW) == SUNDAY


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (b"Sun, 06 Nov 1994 08:49:37 UTC", "a zone other than GMT"),
        (b"Sun, 06 Nov 1994 08:49:37 +0000", "a numeric zone"),
        (b"Sun, 06 Nov 1994 08:49:37", "no zone"),
        (b"Sun, 06 Nov 94 08:49:37 GMT", "a two-digit year in IMF-fixdate"),
        (b"Sun 06 Nov 1994 08:49:37 GMT", "a missing comma"),
        (b"Sun,  06 Nov 1994 08:49:37 GMT", "doubled spaces"),
        (b"Sun, 06 Nov 1994  08:49:37 GMT", "doubled spaces"),
        (b"Sun, 06-Nov-1994 08:49:37 GMT", "dashes in the date"),
        (b"Sun, 06 Nov 1994 08.49.37 GMT", "dots in the time"),
        (b"Sun, 06 Nov 1994 8:49:37 GMT", "a one-digit hour"),
        (b"Sun, 6 Nov 1994 08:49:37 GMT", "a one-digit day in IMF-fixdate"),
        (b"Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT", "two dates (two Expires lines)"),
        (b"Sun, 06 nov 1994 08:49:37 GMT", "a lower-case month"),
        (b"Sunday, 06 Nov 1994 08:49:37 GMT", "a long weekday in IMF-fixdate"),
        (b"Sun, 06-Nov-94 08:49:37 GMT", "a short weekday in RFC 850"),
        (b"Sun Nov 06 08:49:37 1994 GMT", "a zone in asctime"),
        (b"Sun, 31 Nov 1994 08:49:37 GMT", "a day the month does not have"),
        (b"Sun, 06 Nov 1994 24:00:00 GMT", "hour 24"),
        (b"Sun, 06 Nov 1994 08:60:00 GMT", "minute 60"),
        (b"Sun, 06 Nov 99999999999 08:49:37 GMT", "a year past 9999"),
        (b"0", "a number"),
        (b"-1", "a negative number"),
        (b"yesterday", "a word"),
        (b"", "nothing"),
        ("Sun, 06 Nov 1994 08:49:37 GMT\u00e9".encode("latin-1"), "a byte outside ASCII"),
    ],
)
def test_near_misses_are_not_dates(value: bytes, why: str) -> None:
    assert parse_http_date(value, now=NOW) is None, why


def test_a_leap_second_is_a_date() -> None:
    assert parse_http_date(b"Sat, 31 Dec 2016 23:59:60 GMT") == 1483228800


def test_two_digit_years_more_than_50_years_ahead_are_in_the_past_century() -> None:
    # In December 2026: 2080 would be 53 years ahead, so -80 is 1980; 2070 is 43 years ahead, so -70 is 2070.
    assert parse_http_date(b"Tuesday, 01-Jan-80 00:00:00 GMT", now=NOW) == 315532800
    assert parse_http_date(b"Wednesday, 01-Jan-70 00:00:00 GMT", now=NOW) == 3155760000


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"sun, 06 Nov 1994 08:49:37 GMT", id="weekday"),
        pytest.param(b"Sun, 06 NOV 1994 08:49:37 GMT", id="month"),
        pytest.param(b"Sun, 06 Nov 1994 08:49:37 gmt", id="zone"),
        pytest.param(b"SUNDAY, 06-nov-94 08:49:37 Gmt", id="rfc850"),
        pytest.param(b"sun nov  6 08:49:37 1994", id="asctime"),
    ],
)
def test_a_cache_matches_dates_case_insensitively(value: bytes) -> None:
    # RFC 9110 §5.6.7: HTTP-date is case-sensitive; RFC 9111 §4.2: a cache SHOULD match it case-insensitively.
    assert parse_http_date(value, now=NOW) is None
    assert parse_http_date(value, now=NOW, ignore_case=True) == SUNDAY


def test_ignoring_case_accepts_nothing_else() -> None:
    assert parse_http_date(b"Sun, 06 Nov 1994 08:49:37 UTC", ignore_case=True) is None
    assert parse_http_date(b"Sun, 6 Nov 1994 08:49:37 GMT", ignore_case=True) is None
