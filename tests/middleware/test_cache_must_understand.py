"""must-understand (RFC 9111 §5.2.2.3) through the real CacheMiddleware: the rows of cache-tests' status.mjs."""

from __future__ import annotations

import pytest

from tests.middleware.test_cache import Origin, stack, twice

pytestmark = pytest.mark.anyio

NO_STORE_MUST_UNDERSTAND = "max-age=3600, no-store, must-understand"


@pytest.mark.parametrize(
    ("status", "cache_control", "request_headers", "outcome"),
    [
        # A status code understood: no-store is ignored (cache-tests status-200-must-understand).
        pytest.param(200, NO_STORE_MUST_UNDERSTAND, [], "HIT", id="9111-5.2.2.3-200"),
        pytest.param(404, NO_STORE_MUST_UNDERSTAND, [], "HIT", id="9111-5.2.2.3-404"),
        pytest.param(301, NO_STORE_MUST_UNDERSTAND, [], "HIT", id="9111-5.2.2.3-301"),
        pytest.param(307, NO_STORE_MUST_UNDERSTAND, [], "HIT", id="9111-5.2.2.3-307-explicit-freshness"),
        pytest.param(500, NO_STORE_MUST_UNDERSTAND, [], "HIT", id="9111-5.2.2.3-500-explicit-freshness"),
        # Not understood: not stored (cache-tests status-599-must-understand), with no-store or without.
        pytest.param(599, NO_STORE_MUST_UNDERSTAND, [], "MISS", id="9111-5.2.2.3-599"),
        pytest.param(299, "max-age=3600, must-understand", [], "MISS", id="9111-5.2.2.3-299-without-no-store"),
        # Without must-understand a fresh 599 is stored as any final status with explicit freshness (status-599-fresh).
        pytest.param(599, "max-age=3600", [], "HIT", id="9111-3-599-explicit-freshness"),
        pytest.param(200, "max-age=3600, no-store", [], "MISS", id="9111-5.2.2.5-no-store-alone"),
        # It overrides the response's no-store, nothing else.
        pytest.param(200, NO_STORE_MUST_UNDERSTAND, [("cache-control", "no-store")], "BYPASS", id="9111-5.2.1.5"),
        pytest.param(200, NO_STORE_MUST_UNDERSTAND + ", private", [], "MISS", id="9111-5.2.2.7-private"),
        pytest.param(302, "no-store, must-understand", [], "MISS", id="9111-3-302-needs-freshness"),
    ],
)
async def test_must_understand(
    status: int, cache_control: str, request_headers: list[tuple[str, str]], outcome: str
) -> None:
    origin = Origin([("cache-control", cache_control)], status=status)
    assert await twice(stack(origin), request_headers, request_headers) == outcome
    assert origin.calls == (1 if outcome == "HIT" else 2)
