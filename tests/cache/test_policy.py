from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slipstream.cache.policy import (
    HEURISTICALLY_CACHEABLE,
    MAX_DELTA_SECONDS,
    NO_DIRECTIVES,
    UNDERSTOOD_STATUSES,
    Decision,
    RequestDirectives,
    classify,
    freshness_lifetime,
    heuristic_lifetime,
    initial_age,
    invalidates,
    parse_cache_control,
    storable,
    within_stale_if_error,
)

DATE = b"Sun, 06 Nov 1994 08:49:37 GMT"
D = 784111777.0
HOUR_LATER = b"Sun, 06 Nov 1994 09:49:37 GMT"
HOUR_EARLIER = b"Sun, 06 Nov 1994 07:49:37 GMT"

field_values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"))
latin1 = field_values.map(lambda text: text.encode("latin-1"))


@pytest.mark.parametrize(
    ("cc", "date", "expires", "default_ttl", "now", "expected"),
    [
        (b"s-maxage=10, max-age=100", None, None, None, 0.0, 10.0),
        (b"max-age=100", DATE, HOUR_LATER, 5.0, D, 100.0),
        (b"max-age=0", None, None, 5.0, D, 0.0),
        (b"max-age=abc", None, None, 5.0, D, 0.0),
        (b"s-maxage=abc, max-age=100", None, None, None, D, 0.0),
        (None, DATE, HOUR_LATER, 5.0, D + 100, 3600.0),
        (None, DATE, HOUR_EARLIER, None, D, 0.0),
        (None, DATE, DATE, None, D, 0.0),
        (None, None, HOUR_LATER, None, D + 600, 3000.0),
        (None, b"not a date", HOUR_LATER, None, D + 600, 3000.0),
        (None, None, HOUR_LATER, None, D + 7200, 0.0),
        # RFC 9111 §5.3: an invalid Expires, "0" above all, is a time in the past.
        (None, DATE, b"0", 5.0, D, 0.0),
        # RFC 9111 §5.3: an invalid Expires is a time in the past; only the three HTTP-date formats are valid.
        (None, DATE, b"Sun, 06 Nov 1994 09:49:37 UTC", 5.0, D, 0.0),
        (None, DATE, b"Sun, 06 Nov 94 09:49:37 GMT", 5.0, D, 0.0),
        (None, DATE, b"Sun 06 Nov 1994 09:49:37 GMT", 5.0, D, 0.0),
        (None, DATE, b"Sun, 06 Nov 1994 09.49.37 GMT", 5.0, D, 0.0),
        (None, DATE, HOUR_LATER + b", " + HOUR_LATER, 5.0, D, 0.0),  # two Expires fields, joined
        (None, DATE, b"-1", None, D, 0.0),
        (b"public", None, None, 30.0, D, 30.0),
        (None, DATE, None, 30.0, D, 30.0),
        (None, None, None, None, D, None),
        (b"no-cache", None, None, None, D, None),
    ],
)
def test_freshness_lifetime(
    cc: bytes | None, date: bytes | None, expires: bytes | None, default_ttl: float | None, now: float, expected: float
) -> None:
    lifetime = freshness_lifetime(parse_cache_control(cc), date, expires, default_ttl, now)
    assert lifetime == expected
    assert lifetime is None or type(lifetime) is float


@pytest.mark.parametrize(
    ("age", "date", "request_time", "response_time", "expected"),
    [
        (None, None, 100.0, 100.0, 0.0),
        (b"10", None, 100.0, 100.0, 10.0),
        (b"10", None, 100.0, 103.0, 13.0),  # the response delay is added to Age
        (None, DATE, D + 5, D + 5, 5.0),  # apparent age: received five seconds after its Date
        (b"2", DATE, D + 4, D + 5, 5.0),  # apparent age beats corrected age 2 + 1
        (b"20", DATE, D + 4, D + 5, 21.0),  # corrected age beats apparent age 5
        (None, DATE, D - 10, D - 9, 1.0),  # a Date in the future gives no negative apparent age
        (None, DATE, D - 8, D - 9, 0.0),  # nor does a clock stepping back between request and response
        (b" 7 ", None, 0.0, 0.0, 7.0),
        (b"abc", None, 100.0, 102.0, 2.0),
        (b"-5", None, 100.0, 100.0, 0.0),
        (b"1, 2", None, 100.0, 100.0, 1.0),  # a list (or two Age fields joined): the first value (RFC 9111 §5.1)
        (b"7200, 0", None, 100.0, 100.0, 7200.0),
        (b"0, 7200", None, 100.0, 100.0, 0.0),
        (b"99999999999", None, 100.0, 100.0, float(MAX_DELTA_SECONDS)),
        (None, b"garbage", 100.0, 100.0, 0.0),
    ],
)
def test_initial_age(
    age: bytes | None, date: bytes | None, request_time: float, response_time: float, expected: float
) -> None:
    assert initial_age(age, date, request_time, response_time) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.none(), latin1),
    st.one_of(st.none(), latin1),
    st.floats(0, 2e9),
    st.floats(0, 60),
    st.one_of(st.none(), st.floats(0, 1e6)),
)
def test_age_and_lifetime_never_raise_nor_go_negative(
    field: bytes | None, date: bytes | None, request_time: float, delay: float, default_ttl: float | None
) -> None:
    # One random value serves as Age, Cache-Control and Expires at once to reach every parser.
    assert initial_age(field, date, request_time, request_time + delay) >= 0
    lifetime = freshness_lifetime(parse_cache_control(field), date, field, default_ttl, request_time)
    assert lifetime is None or lifetime >= 0


def _storable(**overrides: Any) -> str | None:
    arguments: dict[str, Any] = {
        "method": "GET",
        "status": 200,
        "request_cc": b"",
        "response_cc": b"max-age=60",
        "has_authorization": False,
        "has_set_cookie": False,
        "allow_set_cookie": False,
        "vary": None,
        "lifetime": 60.0,
        "has_validator": False,
    }
    arguments.update(overrides)
    arguments["request_cc"] = parse_cache_control(arguments["request_cc"])
    arguments["response_cc"] = parse_cache_control(arguments["response_cc"])
    return storable(**arguments)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, None),
        ({"method": "HEAD"}, "method"),
        ({"method": "POST"}, "method"),
        ({"method": "POST", "response_cc": b"no-store"}, "method"),
        ({"status": 206}, "status"),
        ({"status": 304}, "status"),
        ({"status": 101}, "status"),
        ({"status": 600}, "status"),
        ({"status": 302, "response_cc": b""}, "status"),
        ({"status": 500, "response_cc": b""}, "status"),
        ({"status": 302}, None),
        ({"status": 500, "response_cc": b"s-maxage=5"}, None),
        ({"status": 302, "response_cc": b"", "has_expires": True}, None),
        ({"status": 302, "response_cc": b"public"}, None),
        ({"request_cc": b"no-store"}, "no-store"),
        ({"response_cc": b"max-age=60, no-store"}, "no-store"),
        ({"response_cc": b"max-age=60, private"}, "private"),
        ({"response_cc": b'max-age=60, private="Set-Cookie"'}, "private"),
        ({"has_authorization": True}, "authorization"),
        ({"has_authorization": True, "response_cc": b"public"}, None),
        ({"has_authorization": True, "response_cc": b"s-maxage=60"}, None),
        ({"has_authorization": True, "response_cc": b"max-age=60, must-revalidate"}, None),
        ({"has_authorization": True, "response_cc": b"max-age=60, proxy-revalidate"}, None),
        ({"has_cookie": True}, "cookie"),
        ({"has_cookie": True, "response_cc": b"s-maxage=60"}, "cookie"),
        ({"has_cookie": True, "vary": b"cookie-consent"}, "cookie"),
        ({"has_cookie": True, "response_cc": b"public, max-age=60"}, None),
        ({"has_cookie": True, "vary": b"Accept-Language, Cookie"}, None),
        ({"has_set_cookie": True}, "set-cookie"),
        ({"has_set_cookie": True, "allow_set_cookie": True}, None),
        ({"vary": b"*"}, "vary-star"),
        ({"vary": b"accept-language, *"}, "vary-star"),
        ({"vary": b" * "}, "vary-star"),
        ({"vary": b"accept-language"}, None),
        ({"vary": b"x-*"}, None),
        ({"vary": b""}, None),
        ({"response_cc": b"", "lifetime": None}, "no-freshness"),
        ({"response_cc": b"", "lifetime": None, "has_validator": True}, None),
        ({"response_cc": b"no-cache", "lifetime": None, "has_validator": True}, None),
        ({"response_cc": b"max-age=0", "lifetime": 0.0}, None),
    ],
)
def test_storable(overrides: dict[str, Any], expected: str | None) -> None:
    assert _storable(**overrides) == expected


@pytest.mark.parametrize("status", sorted(HEURISTICALLY_CACHEABLE))
def test_heuristically_cacheable_statuses_store_with_a_default_ttl(status: int) -> None:
    assert _storable(status=status, response_cc=b"", lifetime=30.0) is None


MUST_UNDERSTAND = b"max-age=3600, no-store, must-understand"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # RFC 9111 §5.2.2.3: a status code understood, no-store is ignored (cache-tests status-200-must-understand).
        pytest.param({"status": 200}, None, id="9111-5.2.2.3-200-no-store-ignored"),
        pytest.param({"status": 404}, None, id="9111-5.2.2.3-404-no-store-ignored"),
        pytest.param({"status": 302}, None, id="9111-5.2.2.3-302-explicit-freshness"),
        pytest.param({"status": 503}, None, id="9111-5.2.2.3-503-explicit-freshness"),
        pytest.param({"response_cc": b"max-age=3600, must-understand"}, None, id="9111-5.2.2.3-without-no-store"),
        pytest.param({"response_cc": b"must-understand, NO-STORE, max-age=5"}, None, id="9111-5.2.2.3-any-order"),
        # Not understood: never stored, no-store or not (cache-tests status-599-must-understand).
        pytest.param({"status": 599}, "must-understand", id="9111-5.2.2.3-599-not-understood"),
        pytest.param({"status": 299}, "must-understand", id="9111-5.2.2.3-299-not-understood"),
        pytest.param({"status": 429}, "status", id="6585-4-429-never-stored"),
        pytest.param({"status": 418}, "must-understand", id="9111-5.2.2.3-418-unused"),
        pytest.param(
            {"status": 599, "response_cc": b"max-age=3600, must-understand"},
            "must-understand",
            id="9111-5.2.2.3-599-without-no-store",
        ),
        pytest.param({"status": 599, "response_cc": b"max-age=3600"}, None, id="9111-3-599-explicit-freshness"),
        pytest.param({"status": 206}, "status", id="9111-3-206-never-stored"),
        pytest.param({"status": 304}, "status", id="9111-3-304-never-stored"),
        # It overrides the response's no-store only: everything else of §3 still holds.
        pytest.param({"request_cc": b"no-store"}, "no-store", id="9111-5.2.1.5-request-no-store"),
        pytest.param({"response_cc": MUST_UNDERSTAND + b", private"}, "private", id="9111-5.2.2.7-private"),
        pytest.param({"has_authorization": True}, "authorization", id="9111-3.5-authorization"),
        pytest.param({"vary": b"*"}, "vary-star", id="9110-12.5.5-vary-star"),
        pytest.param(
            {"status": 302, "response_cc": b"no-store, must-understand"}, "status", id="9111-3-302-needs-freshness"
        ),
    ],
)
def test_must_understand(overrides: dict[str, Any], expected: str | None) -> None:
    assert _storable(**{"response_cc": MUST_UNDERSTAND, **overrides}) == expected


def test_understood_statuses_are_final_and_storable() -> None:
    assert HEURISTICALLY_CACHEABLE <= UNDERSTOOD_STATUSES
    assert all(200 <= status <= 599 and status not in (206, 304) for status in UNDERSTOOD_STATUSES)
    assert all(_storable(status=status, response_cc=MUST_UNDERSTAND) is None for status in UNDERSTOOD_STATUSES)


def _classify(age: float, lifetime: float, cc: bytes = b"", request: RequestDirectives = NO_DIRECTIVES) -> Decision:
    parsed = parse_cache_control(cc)
    return classify(
        age=age,
        lifetime=lifetime,
        stale_while_revalidate=parsed.stale_while_revalidate or 0,
        must_revalidate=parsed.must_revalidate,
        no_cache=parsed.no_cache,
        request=request,
    )


FRESH, BACKGROUND, REVALIDATE = Decision.FRESH, Decision.REVALIDATE_IN_BACKGROUND, Decision.REVALIDATE
RD = RequestDirectives


@pytest.mark.parametrize(
    ("age", "lifetime", "cc", "request_", "expected"),
    [
        (10, 60, b"", NO_DIRECTIVES, FRESH),
        (59.9, 60, b"", NO_DIRECTIVES, FRESH),
        (60, 60, b"", NO_DIRECTIVES, REVALIDATE),  # fresh only while lifetime > age
        (0, 0, b"", NO_DIRECTIVES, REVALIDATE),
        # RFC 5861 §3 example: max-age=600, stale-while-revalidate=30.
        (615, 600, b"max-age=600, stale-while-revalidate=30", NO_DIRECTIVES, BACKGROUND),
        (629.9, 600, b"max-age=600, stale-while-revalidate=30", NO_DIRECTIVES, BACKGROUND),
        (630, 600, b"max-age=600, stale-while-revalidate=30", NO_DIRECTIVES, REVALIDATE),
        (615, 600, b"max-age=600, stale-while-revalidate=30, must-revalidate", NO_DIRECTIVES, REVALIDATE),
        # s-maxage implies proxy-revalidate (RFC 9111 §5.2.2.10), which rules out serving stale.
        (615, 600, b"s-maxage=600, stale-while-revalidate=30", NO_DIRECTIVES, REVALIDATE),
        (10, 600, b"s-maxage=600, stale-while-revalidate=30", NO_DIRECTIVES, FRESH),
        (10, 60, b"max-age=60, no-cache", NO_DIRECTIVES, REVALIDATE),
        (10, 60, b"", RD(revalidate=True), REVALIDATE),
        (10, 60, b"", RD(max_age=5), REVALIDATE),
        (10, 60, b"", RD(max_age=10), FRESH),
        (50, 60, b"", RD(min_fresh=20), REVALIDATE),
        (40, 60, b"", RD(min_fresh=20), FRESH),
        (61, 60, b"stale-while-revalidate=30", RD(min_fresh=0), REVALIDATE),
        (70, 60, b"", RD(max_stale=20), FRESH),
        (80, 60, b"", RD(max_stale=20), FRESH),  # "no more than" the given seconds stale
        (81, 60, b"", RD(max_stale=20), REVALIDATE),
        (70, 60, b"must-revalidate", RD(max_stale=20), REVALIDATE),
        (70, 60, b"proxy-revalidate", RD(max_stale=20), REVALIDATE),
        (70, 60, b"stale-while-revalidate=30", RD(max_stale=20), BACKGROUND),
        (1e9, 60, b"", RD(max_stale=MAX_DELTA_SECONDS), FRESH),
        (120, 60, b"", RD(max_age=100, max_stale=MAX_DELTA_SECONDS), REVALIDATE),
        (90, 60, b"", RD(max_age=100, max_stale=MAX_DELTA_SECONDS), FRESH),
    ],
)
def test_classify(age: float, lifetime: float, cc: bytes, request_: RequestDirectives, expected: Decision) -> None:
    assert _classify(age, lifetime, cc, request_) is expected


@pytest.mark.parametrize(
    ("age", "cc", "expected"),
    [
        # RFC 5861 §4 example: max-age=600, stale-if-error=1200.
        (300, b"max-age=600, stale-if-error=1200", True),
        (1000, b"max-age=600, stale-if-error=1200", True),
        (1799, b"max-age=600, stale-if-error=1200", True),
        (1800, b"max-age=600, stale-if-error=1200", False),
        (1000, b"max-age=600, stale-if-error=1200, must-revalidate", False),
        (1000, b"s-maxage=600, stale-if-error=1200", False),
        (300, b"max-age=600, must-revalidate", True),
        (300, b"max-age=600, no-cache, stale-if-error=1200", False),
        (600, b"max-age=600", False),
    ],
)
def test_within_stale_if_error(age: float, cc: bytes, expected: bool) -> None:
    parsed = parse_cache_control(cc)
    assert parsed.max_age is not None or parsed.s_maxage is not None
    got = within_stale_if_error(
        age=age,
        lifetime=600,
        stale_if_error=parsed.stale_if_error or 0,
        must_revalidate=parsed.must_revalidate,
        no_cache=parsed.no_cache,
    )
    assert got is expected


@pytest.mark.parametrize(
    ("method", "status", "expected"),
    [
        ("POST", 200, True),
        ("PUT", 204, True),
        ("DELETE", 301, True),
        ("PATCH", 302, True),
        ("POST", 399, True),
        ("PROPFIND", 201, True),
        ("POST", 199, False),
        ("POST", 400, False),
        ("POST", 500, False),
        ("GET", 200, False),
        ("HEAD", 200, False),
        ("OPTIONS", 200, False),
        ("TRACE", 200, False),
    ],
)
def test_invalidates(method: str, status: int, expected: bool) -> None:
    assert invalidates(method, status) is expected


DAYS_EARLIER = b"Sun, 27 Oct 1994 08:49:37 GMT"  # ten days before DATE
LATER = b"Sun, 06 Nov 1994 08:49:38 GMT"


@pytest.mark.parametrize(
    ("status", "cc", "last_modified", "date", "now", "fraction", "max_seconds", "expected"),
    [
        (200, b"", HOUR_EARLIER, DATE, D, 0.1, 86400.0, 360.0),
        (200, b"", HOUR_EARLIER, DATE, D + 1000, 0.25, 86400.0, 900.0),
        (200, b"", DAYS_EARLIER, DATE, D, 0.1, 3600.0, 3600.0),
        (200, b"", HOUR_EARLIER, None, D + 3600, 0.1, 86400.0, 720.0),
        (200, b"", HOUR_EARLIER, b"not a date", D + 3600, 0.1, 86400.0, 720.0),
        (200, b"", HOUR_EARLIER, DATE, D, 0.0, 86400.0, None),
        (200, b"", None, DATE, D, 0.1, 86400.0, None),
        (200, b"", b"last week", DATE, D, 0.1, 86400.0, None),
        (200, b"", DATE, DATE, D, 0.1, 86400.0, None),
        (200, b"", LATER, DATE, D, 0.1, 86400.0, None),
        (200, b"", HOUR_EARLIER, DATE, D, 0.1, 0.0, None),
        (404, b"", HOUR_EARLIER, DATE, D, 0.1, 86400.0, 360.0),
        (204, b"", HOUR_EARLIER, DATE, D, 0.1, 86400.0, 360.0),
        (201, b"", HOUR_EARLIER, DATE, D, 0.1, 86400.0, None),
        (503, b"", HOUR_EARLIER, DATE, D, 0.1, 86400.0, None),
        (599, b"", HOUR_EARLIER, DATE, D, 0.1, 86400.0, None),
        (599, b"public", HOUR_EARLIER, DATE, D, 0.1, 86400.0, 360.0),
        (200, b"no-cache", HOUR_EARLIER, DATE, D, 0.1, 86400.0, None),
    ],
    ids=[
        "9111-4.2.2-fraction-of-date-minus-last-modified",
        "9111-4.2.2-fraction-as-configured",
        "9111-4.2.2-capped",
        "9110-6.6.1-no-date-receipt-time",
        "9110-6.6.1-invalid-date-receipt-time",
        "off-by-default-fraction-0",
        "9111-4.2.2-needs-last-modified",
        "9110-5.6.7-invalid-last-modified",
        "9111-4.2.2-modified-at-date-nothing",
        "9110-8.8.2.1-last-modified-after-date",
        "cap-0-nothing",
        "9110-15.1-404-heuristically-cacheable",
        "9110-15.1-204-heuristically-cacheable",
        "9110-15.1-201-not-heuristically-cacheable",
        "9110-15.1-503-not-heuristically-cacheable",
        "9111-4.2.2-599-not-without-public",
        "9111-4.2.2-public-marks-it-cacheable",
        "9111-5.2.2.4-no-cache-validates-anyway",
    ],
)
def test_heuristic_lifetime(
    status: int,
    cc: bytes,
    last_modified: bytes | None,
    date: bytes | None,
    now: float,
    fraction: float,
    max_seconds: float,
    expected: float | None,
) -> None:
    got = heuristic_lifetime(
        status=status,
        cc=parse_cache_control(cc),
        last_modified=last_modified,
        date=date,
        now=now,
        fraction=fraction,
        max_seconds=max_seconds,
    )
    assert got == (None if expected is None else pytest.approx(expected))
