"""HTTP-dates (RFC 9110 §5.6.7), parsed strictly: IMF-fixdate and the two obsolete formats, and nothing else.

A cache must treat an invalid ``Expires`` as a time in the past (RFC 9111 §5.3), so "almost a date" is not a date:
a zone other than GMT, a two-digit year outside the RFC 850 form, a missing comma, doubled spaces, dashes or dots
where the format has none, a one-digit hour, or two dates in one field are all invalid. The formats are
case-sensitive (RFC 9110 §5.6.7), but a cache computing freshness SHOULD match them case-insensitively (RFC 9111
§4.2): ``ignore_case=True`` does, for the cache's Expires, Date and Last-Modified and nothing else.
"""

from __future__ import annotations

import calendar
import re
import time

_DAYS = "Mon|Tue|Wed|Thu|Fri|Sat|Sun"
_LONG_DAYS = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH = "|".join(_MONTHS)
_TIME = r"(\d{2}):(\d{2}):(\d{2})"
# Sun, 06 Nov 1994 08:49:37 GMT
_IMF_FIXDATE = re.compile(rf"(?:{_DAYS}), (\d{{2}}) ({_MONTH}) (\d{{4}}) {_TIME} GMT")
# Sunday, 06-Nov-94 08:49:37 GMT
_RFC850 = re.compile(rf"(?:{_LONG_DAYS}), (\d{{2}})-({_MONTH})-(\d{{2}}) {_TIME} GMT")
# Sun Nov  6 08:49:37 1994
_ASCTIME = re.compile(rf"(?:{_DAYS}) ({_MONTH}) (\d{{2}}| \d) {_TIME} (\d{{4}})")
_FORMATS = (_IMF_FIXDATE, _RFC850, _ASCTIME)
_ANY_CASE = tuple(re.compile(pattern.pattern, re.IGNORECASE) for pattern in _FORMATS)
# Seconds in a year, near enough for RFC 9110's "more than 50 years in the future" rule of two-digit years.
_YEAR = 365.25 * 86400


def parse_http_date(value: bytes, now: float | None = None, *, ignore_case: bool = False) -> int | None:
    """Seconds since the epoch for an HTTP-date, None if the value is not exactly one.

    ``now`` places an RFC 850 two-digit year: a date more than 50 years ahead of it is in the previous century.
    """
    imf_fixdate, rfc850, asctime = _ANY_CASE if ignore_case else _FORMATS
    try:
        text = value.decode("ascii").strip(" \t")
    except UnicodeDecodeError:
        return None
    match = imf_fixdate.fullmatch(text)
    if match is not None:
        day, month, year, hour, minute, second = match.groups()
        return _timestamp(int(year), month, day, hour, minute, second)
    match = rfc850.fullmatch(text)
    if match is not None:
        day, month, short_year, hour, minute, second = match.groups()
        current = time.time() if now is None else now
        century = time.gmtime(current).tm_year // 100 * 100
        found = _timestamp(century + int(short_year), month, day, hour, minute, second)
        if found is not None and found > current + 50 * _YEAR:
            found = _timestamp(century - 100 + int(short_year), month, day, hour, minute, second)
        return found
    match = asctime.fullmatch(text)
    if match is not None:
        month, day, hour, minute, second, year = match.groups()
        return _timestamp(int(year), month, day.strip(), hour, minute, second)
    return None


def _timestamp(year: int, month: str, day: str, hour: str, minute: str, second: str) -> int | None:
    if not 1 <= year <= 9999:
        return None
    number = _MONTHS.index(month.title()) + 1
    if not 1 <= int(day) <= calendar.monthrange(year, number)[1]:
        return None
    if int(hour) > 23 or int(minute) > 59 or int(second) > 60:  # 60: a leap second
        return None
    return calendar.timegm((year, number, int(day), int(hour), int(minute), int(second), 0, 0, 0))
