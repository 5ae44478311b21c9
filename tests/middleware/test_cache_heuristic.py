"""Heuristic freshness (RFC 9111 §4.2.2) through the real stack: off by default, and with the opt-in on, the cases
of the cache-tests conformance suite (tests/heuristic-freshness.mjs) and the rules around them."""

from __future__ import annotations

import time

import pytest

from slipstream import Settings
from slipstream.middleware.cache import CacheMiddleware
from tests.middleware.test_cache import Origin, stack
from tests.middleware.test_cache_validation import dated
from tests.support import call_asgi

pytestmark = pytest.mark.anyio

HEURISTIC = Settings(cache_heuristic_fraction=0.1)
DAY = 24 * 60 * 60


def modified_a_day_ago(*extra: tuple[str, float | str]) -> list[tuple[str, float | str]]:
    """The suite's response: Last-Modified a day before its Date, no explicit freshness."""
    return [("last-modified", -DAY), ("date", 0), *extra]


def stored_lifetime(app: CacheMiddleware) -> float | None:
    found = app.cache.lookup_memory("http://testserver/", [])
    return None if found is None else found[0].lifetime


@pytest.mark.parametrize(
    ("status", "extra", "reused"),
    [
        (200, (), True),
        (201, (), False),
        (202, (), False),
        (203, (), True),
        (204, (), True),
        (403, (), False),
        (404, (), True),
        (405, (), True),
        (410, (), True),
        (414, (), True),
        (501, (), True),
        (502, (), False),
        (503, (), False),
        (504, (), False),
        (599, (), False),
        (599, (("cache-control", "public"),), True),
    ],
    ids=lambda value: str(value) if isinstance(value, int) else None,
)
async def test_heuristically_cacheable_statuses_are_reused(
    status: int, extra: tuple[tuple[str, str], ...], reused: bool
) -> None:
    """RFC 9110 §15.1 (heuristically cacheable status codes) and RFC 9111 §4.2.2 (or marked ``public``)."""
    origin = Origin(
        dated(modified_a_day_ago(*extra), time.time()), status=status, body=b"" if status == 204 else b"hello"
    )
    app = stack(origin, HEURISTIC)
    await call_asgi(app)
    second = await call_asgi(app)
    assert (second.headers["x-cache"], origin.calls) == (("HIT", 1) if reused else ("MISS", 2))
    assert second.status == status
    assert "warning" not in second.headers  # RFC 9111 dropped Warning


@pytest.mark.parametrize(
    ("settings", "response", "request_headers", "lifetime"),
    [
        # Off by default: a cache inside the app does not store what the app never marked.
        (Settings(), modified_a_day_ago(), (), None),
        (HEURISTIC, modified_a_day_ago(), (), pytest.approx(DAY / 10)),
        (Settings(cache_heuristic_fraction=0.5), modified_a_day_ago(), (), pytest.approx(DAY / 2)),
        (Settings(cache_heuristic_fraction=0.1, cache_heuristic_max_seconds=600), modified_a_day_ago(), (), 600),
        # RFC 9110 §6.6.1: without a Date, the time it was received.
        (HEURISTIC, [("last-modified", -DAY)], (), pytest.approx(DAY / 10, abs=2)),
        # Explicit freshness wins (§4.2.2: no heuristic when an explicit expiration time is present).
        (HEURISTIC, modified_a_day_ago(("cache-control", "max-age=30")), (), 30),
        (HEURISTIC, modified_a_day_ago(("expires", 60)), (), 60),
        (HEURISTIC, modified_a_day_ago(("expires", "0")), (), 0),
        # A route default is the operator's explicit choice: it wins over a guess.
        (Settings(cache_heuristic_fraction=0.1, cache_route_ttls=("^/$=45",)), modified_a_day_ago(), (), 45),
        # RFC 9213: a targeted field in effect stands in for Cache-Control and Expires, here too.
        (HEURISTIC, modified_a_day_ago(("slipstream-cache-control", "max-age=30")), (), 30),
        (HEURISTIC, modified_a_day_ago(("slipstream-cache-control", "public")), (), pytest.approx(DAY / 10)),
        (HEURISTIC, modified_a_day_ago(("slipstream-cache-control", "no-cache")), (), 0),
        # No Last-Modified, nothing to base a heuristic on.
        (HEURISTIC, [("date", 0)], (), None),
        # Storage rules stay as they are (RFC 9111 §3, §3.5; Varnish's stance on cookies).
        (HEURISTIC, modified_a_day_ago(("cache-control", "private")), (), None),
        (HEURISTIC, modified_a_day_ago(("cache-control", "no-store")), (), None),
        (HEURISTIC, modified_a_day_ago(("cache-control", "no-cache")), (), 0),
        (HEURISTIC, modified_a_day_ago(("set-cookie", "id=1")), (), None),
        (HEURISTIC, modified_a_day_ago(), (("authorization", "Bearer a"),), None),
        (HEURISTIC, modified_a_day_ago(), (("cookie", "session=a"),), None),
        (
            HEURISTIC,
            modified_a_day_ago(("cache-control", "public")),
            (("cookie", "session=a"),),
            pytest.approx(DAY / 10),
        ),
    ],
    ids=[
        "off-by-default",
        "9111-4.2.2-tenth-of-a-day",
        "9111-4.2.2-fraction-as-configured",
        "9111-4.2.2-capped",
        "9110-6.6.1-no-date",
        "9111-4.2.2-max-age-wins",
        "9111-4.2.2-expires-wins",
        "9111-5.3-invalid-expires-wins",
        "route-ttl-wins",
        "9213-targeted-max-age-wins",
        "9213-targeted-without-freshness",
        "9213-targeted-no-cache",
        "9111-4.2.2-needs-last-modified",
        "9111-5.2.2.7-private",
        "9111-5.2.2.5-no-store",
        "9111-5.2.2.4-no-cache-stored-to-revalidate",
        "set-cookie",
        "9111-3.5-authorization",
        "cookie",
        "cookie-unless-public",
    ],
)
async def test_heuristic_lifetime_of_the_stored_entry(
    settings: Settings,
    response: list[tuple[str, float | str]],
    request_headers: tuple[tuple[str, str], ...],
    lifetime: object,
) -> None:
    origin = Origin(dated(response, time.time()))
    app = stack(origin, settings)
    await call_asgi(app, headers=request_headers)
    assert stored_lifetime(app) == lifetime


async def test_a_304_freshens_by_the_same_rule() -> None:
    """RFC 9111 §4.3.4: the updated fields (here a new Date) give the new lifetime, heuristic included."""
    now = time.time()
    origin = Origin(dated([("last-modified", -10 * DAY), ("date", -DAY)], now))
    app = stack(origin, Settings(cache_heuristic_fraction=0.1, cache_heuristic_max_seconds=10 * DAY))
    await call_asgi(app)
    assert stored_lifetime(app) == pytest.approx(0.9 * DAY)
    origin.headers = dated([("last-modified", -10 * DAY), ("date", 0)], now)
    revalidated = await call_asgi(app, headers=[("cache-control", "no-cache")])
    assert (revalidated.status, revalidated.headers["x-cache"], origin.calls) == (200, "HIT", 2)
    assert stored_lifetime(app) == pytest.approx(DAY)


async def test_a_304_keeps_a_route_default_over_the_heuristic() -> None:
    origin = Origin(dated([("last-modified", -10 * DAY)], time.time()))
    app = stack(origin, Settings(cache_heuristic_fraction=0.1, cache_route_ttls=("^/$=45",)))
    await call_asgi(app)
    await call_asgi(app, headers=[("cache-control", "no-cache")])
    assert (origin.calls, stored_lifetime(app)) == (2, 45)
