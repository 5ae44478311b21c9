"""The cache answering a client's If-Modified-Since from a stored response (RFC 9111 §4.3.2), through the real stack."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest

from tests.middleware.test_cache import Origin, stack
from tests.support import call_asgi

pytestmark = pytest.mark.anyio


def dated(fields: list[tuple[str, float | str]], now: float) -> list[tuple[str, str]]:
    """Fields written with offsets in seconds from ``now`` (taken when the test runs), as HTTP-dates."""
    return [(name, value if isinstance(value, str) else formatdate(now + value, usegmt=True)) for name, value in fields]


@pytest.mark.parametrize(
    ("stored", "conditions", "status"),
    [
        # (1) Last-Modified, when present, is what If-Modified-Since is compared with.
        ([("last-modified", -3000)], [("if-modified-since", -3000)], 304),
        ([("last-modified", -1000)], [("if-modified-since", -3000)], 200),
        (
            [("last-modified", -1000), ("date", -5000)],
            [("if-modified-since", -3000)],
            200,
        ),
        # (2) No Last-Modified: the stored Date, not after the client's date.
        ([("date", -3000)], [("if-modified-since", -3000)], 304),
        ([("date", -3000)], [("if-modified-since", -1000)], 304),
        ([("date", -1000)], [("if-modified-since", -3000)], 200),
        # (3) Neither: the time the cache received it.
        ([], [("if-modified-since", 60)], 304),
        ([], [("if-modified-since", -3000)], 200),
        ([("date", "not a date")], [("if-modified-since", 60)], 304),
        # If-None-Match takes precedence (RFC 9110 §13.2.2): a mismatch is a 200 whatever the dates.
        ([], [("if-none-match", '"other"'), ("if-modified-since", 60)], 200),
        # RFC 9110 §13.1.4: If-Unmodified-Since is ignored without a modification date; a Date is not one.
        ([("date", -1000)], [("if-unmodified-since", -3000)], 200),
    ],
    ids=[
        "9111-4.3.2-1-last-modified-equal",
        "9111-4.3.2-1-last-modified-later",
        "9111-4.3.2-1-last-modified-wins-over-date",
        "9111-4.3.2-2-date-equal",
        "9111-4.3.2-2-date-earlier",
        "9111-4.3.2-2-date-later",
        "9111-4.3.2-3-received-earlier",
        "9111-4.3.2-3-received-later",
        "9111-4.3.2-3-invalid-date-is-absent",
        "9110-13.2.2-if-none-match-first",
        "9110-13.1.4-if-unmodified-since-ignored",
    ],
)
async def test_a_fresh_hit_answers_if_modified_since(
    stored: list[tuple[str, float | str]], conditions: list[tuple[str, float | str]], status: int
) -> None:
    now = time.time()
    origin = Origin([("cache-control", "max-age=100000"), *dated(stored, now)])
    app = stack(origin)
    await call_asgi(app)
    result = await call_asgi(app, headers=dated(conditions, now))
    assert (result.status, result.headers["x-cache"], origin.calls) == (status, "HIT", 1)
    assert result.body == (b"" if status == 304 else origin.body)


async def test_the_origin_side_keeps_ignoring_if_modified_since_without_last_modified() -> None:
    """RFC 9110 §13.1.3: an origin without a modification date ignores If-Modified-Since; only the cache's stored
    Date stands in for one. The miss goes through ConditionalMiddleware and gets the full response."""
    now = time.time()
    origin = Origin([("cache-control", "max-age=100000"), *dated([("date", -3000)], now)])
    app = stack(origin)
    miss = await call_asgi(app, headers=dated([("if-modified-since", 60)], now))
    hit = await call_asgi(app, headers=dated([("if-modified-since", 60)], now))
    assert (miss.status, miss.headers["x-cache"]) == (200, "MISS")
    assert (hit.status, hit.headers["x-cache"], hit.body) == (304, "HIT", b"")
