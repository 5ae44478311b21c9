"""RFC 9111 shared-cache rules as pure functions over raw header values: freshness, age, storability, reuse."""

from __future__ import annotations

import enum

from slipstream.cache.cache_control import (
    EMPTY,
    MAX_DELTA_SECONDS,
    NO_DIRECTIVES,
    CacheControl,
    RequestDirectives,
    parse_cache_control,
    parse_delta_seconds,
    request_directives,
)
from slipstream.http.dates import parse_http_date

__all__ = [
    "EMPTY",
    "MAX_DELTA_SECONDS",
    "NO_DIRECTIVES",
    "CacheControl",
    "Decision",
    "RequestDirectives",
    "classify",
    "freshness_lifetime",
    "heuristic_lifetime",
    "initial_age",
    "invalidates",
    "parse_cache_control",
    "parse_delta_seconds",
    "request_directives",
    "storable",
    "within_stale_if_error",
]

# RFC 9110 §15.1: the status codes a cache may store without explicit freshness.
HEURISTICALLY_CACHEABLE = frozenset({200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501})
# RFC 9111 §5.2.2.3: the status codes whose caching requirements this cache understands, those defined by RFC 9110
# §15 but 206 (never stored here), 304 (it freshens an entry, never becomes one) and the unused 305, 306 and 418.
# Any other final status is still stored with explicit freshness, but never with must-understand.
UNDERSTOOD_STATUSES = frozenset(
    {200, 201, 202, 203, 204, 205, 300, 301, 302, 303, 307, 308, *range(400, 418), 421, 422, 426, *range(500, 506)}
)
# RFC 6585 §3-§6: responses with these status codes MUST NOT be stored by a cache, whatever they say.
NEVER_STORED_STATUSES = frozenset({428, 429, 431, 511})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class Decision(enum.Enum):
    """How a stored response may be used for the request at hand."""

    FRESH = "fresh"  # serve as is
    REVALIDATE_IN_BACKGROUND = "revalidate-in-background"  # serve stale, refresh once in the background
    REVALIDATE = "revalidate"  # validate with the origin before serving


def freshness_lifetime(
    cc: CacheControl, date: bytes | None, expires: bytes | None, default_ttl: float | None, now: float
) -> float | None:
    """RFC 9111 §4.2.1 for a shared cache; None when the response has no explicit freshness and no default."""
    if cc.s_maxage is not None:
        return float(cc.s_maxage)
    if cc.max_age is not None:
        return float(cc.max_age)
    if expires is not None:
        expires_at = parse_http_date(expires, ignore_case=True)
        if expires_at is None:
            return 0.0  # §5.3: an invalid Expires means already expired
        date_at = None if date is None else parse_http_date(date, ignore_case=True)
        # RFC 9110 §6.6.1: without a (valid) Date the receipt time stands in for it.
        return max(0.0, float(expires_at - (now if date_at is None else date_at)))
    return default_ttl


def initial_age(age: bytes | None, date: bytes | None, request_time: float, response_time: float) -> float:
    """corrected_initial_age of RFC 9111 §4.2.3; a missing or unparsable Age counts as 0. A list (``7200, 0``, or
    two Age fields joined) is read by its first value, as RFC 9111 §5.1 says."""
    first = None if age is None else age.split(b",", 1)[0].strip(b" \t")
    age_value = parse_delta_seconds(first) or 0
    date_value = None if date is None else parse_http_date(date, ignore_case=True)
    apparent_age = 0.0 if date_value is None else max(0.0, response_time - date_value)
    corrected_age_value = age_value + (response_time - request_time)
    return max(apparent_age, corrected_age_value)


def _vary_star(vary: bytes) -> bool:
    return b"*" in vary and any(member.strip(b" \t") == b"*" for member in vary.split(b","))


def _varies_on_cookie(vary: bytes | None) -> bool:
    return vary is not None and any(member.strip(b" \t").lower() == b"cookie" for member in vary.split(b","))


def storable(
    *,
    method: str,
    status: int,
    request_cc: CacheControl,
    response_cc: CacheControl,
    has_authorization: bool,
    has_set_cookie: bool,
    allow_set_cookie: bool,
    vary: bytes | None,
    lifetime: float | None,
    has_validator: bool,
    has_expires: bool = False,
    has_cookie: bool = False,
) -> str | None:
    """None when RFC 9111 §3 lets a shared cache store the response, else a short reason.

    Reasons: "method", "status", "no-store", "private", "authorization", "cookie", "set-cookie", "vary-star",
    "no-freshness". ``has_expires`` says whether the response has an Expires field: like max-age it is explicit
    freshness, which makes any final status storable; without it only heuristically cacheable ones are.
    ``has_cookie``: the request carries cookies. Stricter than RFC 9111 (Varnish's stance): such a response is
    shared only when it says ``public`` or names Cookie in Vary. "must-understand": the response says so and its
    status is not one of UNDERSTOOD_STATUSES.
    """
    if method != "GET":
        return "method"  # HEAD is answered from the GET entry, never stored on its own
    # 206 needs range-aware storage; a 304 freshens an entry rather than becoming one; 1xx is not final.
    if status < 200 or status > 599 or status == 206 or status == 304 or status in NEVER_STORED_STATUSES:
        return "status"
    if response_cc.must_understand and status not in UNDERSTOOD_STATUSES:
        return "must-understand"
    # §5.2.2.3: must-understand on a status code understood overrides the response's no-store (not the request's).
    if request_cc.no_store or (response_cc.no_store and not response_cc.must_understand):
        return "no-store"
    if response_cc.private:
        return "private"
    # §3.5; s-maxage sets must_revalidate, so it is covered too.
    if has_authorization and not (response_cc.public or response_cc.must_revalidate):
        return "authorization"
    if has_cookie and not (response_cc.public or _varies_on_cookie(vary)):
        return "cookie"
    if has_set_cookie and not allow_set_cookie:
        return "set-cookie"
    if vary is not None and _vary_star(vary):
        return "vary-star"
    explicit = response_cc.max_age is not None or response_cc.s_maxage is not None or has_expires
    if status not in HEURISTICALLY_CACHEABLE and not explicit and not response_cc.public:
        return "status"
    if lifetime is None and not has_validator:
        return "no-freshness"
    return None


def classify(
    *,
    age: float,
    lifetime: float,
    stale_while_revalidate: float,
    must_revalidate: bool,
    no_cache: bool,
    request: RequestDirectives,
) -> Decision:
    """Whether a stored response may be served (RFC 9111 §4.2, §5.2.1; RFC 5861 §3 for stale-while-revalidate).

    Fresh means ``age < lifetime``. The stale-while-revalidate window is ``age < lifetime + swr`` (an empty
    window when swr is 0); a client's max-stale accepts ``age <= lifetime + max_stale``. Neither applies with
    must-revalidate. Pass ``lifetime=0`` for an entry stored without freshness (validator only).
    """
    if no_cache or request.revalidate:
        return Decision.REVALIDATE
    if request.max_age is not None and age > request.max_age:
        return Decision.REVALIDATE
    remaining = lifetime - age
    if remaining > 0:
        if request.min_fresh is None or remaining >= request.min_fresh:
            return Decision.FRESH
        return Decision.REVALIDATE
    if must_revalidate or request.min_fresh is not None:
        return Decision.REVALIDATE
    if -remaining < stale_while_revalidate:
        return Decision.REVALIDATE_IN_BACKGROUND
    if request.max_stale is not None and -remaining <= request.max_stale:
        return Decision.FRESH
    return Decision.REVALIDATE


def within_stale_if_error(
    *, age: float, lifetime: float, stale_if_error: float, must_revalidate: bool, no_cache: bool
) -> bool:
    """Whether a stored response may stand in for an origin error (RFC 5861 §4).

    The window is ``age < lifetime + stale_if_error``. A fresh response always may; must-revalidate forbids stale
    ones (RFC 9111 §4.2.4), and no-cache forbids reuse without validation even while fresh.
    """
    if no_cache:
        return False
    return age < lifetime or (not must_revalidate and age < lifetime + stale_if_error)


def invalidates(method: str, status: int) -> bool:
    """RFC 9111 §4.4: a non-error response to an unsafe method invalidates the target URI's entries."""
    return method not in SAFE_METHODS and 200 <= status < 400


def heuristic_lifetime(
    *,
    status: int,
    cc: CacheControl,
    last_modified: bytes | None,
    date: bytes | None,
    now: float,
    fraction: float,
    max_seconds: float,
) -> float | None:
    """RFC 9111 §4.2.2 for a response `freshness_lifetime` found no explicit freshness in: ``fraction`` of the time
    from Last-Modified to its Date (``now``, the receipt time, without a valid one), at most ``max_seconds``.

    None where no heuristic applies: ``fraction`` 0 (off), no valid Last-Modified or one not before the Date, a
    status that is not heuristically cacheable without ``public``, or ``no-cache`` (each use is validated anyway).
    No Warning field is added: RFC 9111 removed it.
    """
    if fraction <= 0 or last_modified is None or cc.no_cache:
        return None
    if status not in HEURISTICALLY_CACHEABLE and not cc.public:
        return None
    modified = parse_http_date(last_modified, ignore_case=True)
    if modified is None:
        return None
    date_at = None if date is None else parse_http_date(date, ignore_case=True)
    lifetime = min(fraction * ((now if date_at is None else date_at) - modified), max_seconds)
    return lifetime if lifetime > 0 else None
