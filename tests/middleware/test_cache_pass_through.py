"""Dynamic pages pass straight to the app: a URL whose response was refused for its own fields whatever the request
(no freshness) is handed to the app with nothing kept, until its response may be stored again."""

from __future__ import annotations

import pytest

from slipstream import Settings
from slipstream.http.capture import CAPTURE_SCOPE_KEY
from tests.middleware.apps import TEXT
from tests.middleware.test_cache import Origin, stack
from tests.support import call_asgi

pytestmark = pytest.mark.anyio


def kept(origin: Origin) -> list[bool]:
    """For each request the app saw: whether the cache kept a copy (it hands compression a capture then)."""
    return [CAPTURE_SCOPE_KEY in scope for scope in origin.seen]


async def test_a_page_without_freshness_passes_once_it_has_been_refused() -> None:
    origin = Origin([("surrogate-key", "page")])
    app = stack(origin)
    results = [await call_asgi(app) for _ in range(3)]
    assert kept(origin) == [True, False, False]  # the first is a miss the whole way; then the URL passes
    for result in results:
        assert (result.status, result.body, result.headers["x-cache"]) == (200, TEXT, "MISS")
        assert "surrogate-key" not in result.headers  # for slipstream alone, on the cheap path too
    head = await call_asgi(app, "HEAD")
    assert (head.body, head.headers["x-cache"]) == (b"", "MISS")
    assert origin.seen[-1]["method"] == "GET"  # run as GET, as a miss is


async def test_a_passing_url_that_turns_storable_is_stored_by_the_next_request() -> None:
    origin = Origin([])
    app = stack(origin)
    await call_asgi(app)
    origin.headers = [("cache-control", "max-age=60")]
    passed = await call_asgi(app)  # passed through: its storable answer ends the URL's passing
    filled = await call_asgi(app)
    hit = await call_asgi(app)
    assert [passed.headers["x-cache"], filled.headers["x-cache"], hit.headers["x-cache"]] == ["MISS", "MISS", "HIT"]
    assert kept(origin) == [True, False, True]
    assert origin.calls == 3


@pytest.mark.parametrize(
    ("settings", "headers", "first"),
    [
        # A private answer to a request with a cookie: another request may get a shared one.
        (Settings(), [("cache-control", "max-age=60")], [("cookie", "session=alice")]),
        # A route default that skips requests with credentials.
        (Settings(cache_route_ttls=("/=60",)), [], [("authorization", "Bearer secret")]),
    ],
    ids=["cookie-request", "route-ttl-with-credentials"],
)
async def test_a_refusal_owed_to_the_request_does_not_make_the_url_pass(
    settings: Settings, headers: list[tuple[str, str]], first: list[tuple[str, str]]
) -> None:
    origin = Origin(headers)
    app = stack(origin, settings)
    refused = await call_asgi(app, headers=first)
    stored = await call_asgi(app)
    hit = await call_asgi(app)
    assert [refused.headers["x-cache"], stored.headers["x-cache"], hit.headers["x-cache"]] == ["MISS", "MISS", "HIT"]
    assert kept(origin) == [True, True]


async def test_only_if_cached_on_a_passing_url_is_504() -> None:
    origin = Origin([])
    app = stack(origin)
    await call_asgi(app)
    result = await call_asgi(app, headers=[("cache-control", "only-if-cached")])
    assert result.status == 504 and origin.calls == 1
