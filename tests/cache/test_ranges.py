"""Range requests through the cache (RFC 9110 §14, §13.1.5; RFC 9111 §3.3-3.4), one row per rule.

A stored complete 200 answers one byte range with 206 (or 416), cut from the identity body; what the cache cannot
cut goes to the app as it came, and the app's 206 reaches the client with its own fields.
"""

from __future__ import annotations

import pytest

from slipstream import CacheMiddleware
from tests.middleware.apps import TEXT
from tests.middleware.test_cache import Origin, stack
from tests.support import call_asgi

pytestmark = pytest.mark.anyio

LENGTH = len(TEXT)
STORED = [("cache-control", "max-age=60"), ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT")]


async def stored_stack(origin: Origin | None = None) -> tuple[Origin, CacheMiddleware]:
    origin = origin or Origin(STORED)
    app = stack(origin)
    await call_asgi(app)  # fills the entry
    return origin, app


@pytest.mark.parametrize(
    ("range_value", "status", "content_range", "part"),
    [
        pytest.param("bytes=0-9", 206, f"bytes 0-9/{LENGTH}", TEXT[:10], id="9110-14.1.2-first-last"),
        pytest.param("bytes=100-", 206, f"bytes 100-{LENGTH - 1}/{LENGTH}", TEXT[100:], id="9110-14.1.2-open-ended"),
        pytest.param(
            "bytes=-20", 206, f"bytes {LENGTH - 20}-{LENGTH - 1}/{LENGTH}", TEXT[-20:], id="9110-14.1.2-suffix"
        ),
        pytest.param(
            f"bytes=10-{LENGTH * 2}", 206, f"bytes 10-{LENGTH - 1}/{LENGTH}", TEXT[10:], id="9110-14.1.2-last-clamped"
        ),
        pytest.param(f"bytes={LENGTH}-", 416, f"bytes */{LENGTH}", None, id="9110-15.5.17-unsatisfiable"),
        pytest.param("bytes=-0", 416, f"bytes */{LENGTH}", None, id="9110-14.1.1-zero-suffix"),
        pytest.param("bytes=9-0", 200, None, TEXT, id="9110-14.1.1-invalid-ignored"),
        pytest.param("pages=1-2", 200, None, TEXT, id="9110-14.2-unknown-unit-ignored"),
    ],
)
async def test_a_stored_response_answers_one_range(
    range_value: str, status: int, content_range: str | None, part: bytes | None
) -> None:
    origin, app = await stored_stack()
    result = await call_asgi(app, headers=[("range", range_value)])
    assert origin.calls == 1
    assert result.status == status
    assert result.headers.get("x-cache") == "HIT"
    assert result.headers.get("content-range") == content_range
    if part is not None:
        assert result.body == part
        assert result.headers["content-length"] == str(len(part))
    if status == 206:
        # §15.3.7: the fields a 200 would carry; the identity representation, so no Content-Encoding.
        assert result.headers["cache-control"] == "max-age=60"
        assert result.headers["etag"].startswith('"')
        assert "content-encoding" not in result.headers
        assert "age" in result.headers


async def test_ranges_are_of_the_identity_body_even_for_clients_accepting_br() -> None:
    _, app = await stored_stack()
    result = await call_asgi(app, headers=[("range", "bytes=0-4"), ("accept-encoding", "br, gzip")])
    assert (result.status, result.body) == (206, TEXT[:5])
    assert "content-encoding" not in result.headers
    assert result.headers["vary"] == "Accept-Encoding"
    # A client refusing identity gets the whole encoded response: the range is ignored (§14.2 allows it).
    refusing = await call_asgi(app, headers=[("range", "bytes=0-4"), ("accept-encoding", "br, identity;q=0")])
    assert refusing.status == 200 and refusing.headers["content-encoding"] == "br"


@pytest.mark.parametrize(
    ("if_range", "status"),
    [
        pytest.param("etag", 206, id="9110-13.1.5-strong-etag-matches"),
        pytest.param('"other"', 200, id="9110-13.1.5-other-etag-whole"),
        pytest.param("weak", 200, id="9110-13.1.5-weak-etag-whole"),
        pytest.param("Sun, 06 Nov 1994 08:49:37 GMT", 206, id="9110-13.1.5-date-equals-last-modified"),
        pytest.param("Sun, 06 Nov 1994 08:49:38 GMT", 200, id="9110-13.1.5-other-date-whole"),
        pytest.param("not a validator", 200, id="9110-13.1.5-invalid-whole"),
    ],
)
async def test_if_range(if_range: str, status: int) -> None:
    _, app = await stored_stack()
    etag = (await call_asgi(app)).headers["etag"]
    value = {"etag": etag, "weak": "W/" + etag}.get(if_range, if_range)
    result = await call_asgi(app, headers=[("range", "bytes=0-9"), ("if-range", value)])
    assert result.status == status
    assert result.body == (TEXT[:10] if status == 206 else TEXT)


async def test_preconditions_come_before_the_range() -> None:
    _, app = await stored_stack()
    etag = (await call_asgi(app)).headers["etag"]
    result = await call_asgi(app, headers=[("range", "bytes=0-9"), ("if-none-match", etag)])
    assert result.status == 304  # RFC 9110 §13.2.2: If-None-Match is evaluated before Range


async def test_head_ignores_range() -> None:
    _, app = await stored_stack()
    result = await call_asgi(app, "HEAD", headers=[("range", "bytes=0-9")])
    assert result.status == 200 and result.body == b""  # §14.2: Range is defined for GET only


async def test_a_stored_404_ignores_range() -> None:
    _, app = await stored_stack(Origin(STORED, status=404))
    result = await call_asgi(app, headers=[("range", "bytes=0-9")])
    assert (result.status, result.body) == (404, TEXT)


async def test_a_range_miss_goes_to_the_app_as_it_came_and_its_206_passes_with_its_own_fields() -> None:
    origin = Origin(
        [("cache-control", "max-age=60"), ("content-range", f"bytes 0-9/{LENGTH}"), ("x-origin", "part")],
        status=206,
        body=TEXT[:10],
    )
    app = stack(origin)
    for _ in range(2):
        result = await call_asgi(app, headers=[("range", "bytes=0-9"), ("if-range", '"v1"')])
        assert (result.status, result.body) == (206, TEXT[:10])
        assert result.headers["content-range"] == f"bytes 0-9/{LENGTH}"
        assert result.headers["x-origin"] == "part" and result.headers["x-cache"] == "MISS"
    assert origin.calls == 2  # RFC 9111 §3.3: a 206 is not stored as if it were the whole
    assert all(dict(scope["headers"])[b"range"] == b"bytes=0-9" for scope in origin.seen)
    assert all(dict(scope["headers"])[b"if-range"] == b'"v1"' for scope in origin.seen)


async def test_a_range_miss_does_not_keep_whole_requests_from_being_coalesced_or_stored() -> None:
    origin = Origin(STORED)
    app = stack(origin)
    # The app ignores the range (a plain Response does): its 200 is stored, and the next range is cut from it.
    first = await call_asgi(app, headers=[("range", "bytes=0-9")])
    assert (first.status, first.headers["x-cache"]) == (200, "MISS")
    second = await call_asgi(app, headers=[("range", "bytes=0-9")])
    assert (second.status, second.body, second.headers["x-cache"]) == (206, TEXT[:10], "HIT")
    assert origin.calls == 1


async def test_a_206_answer_does_not_mark_the_url_as_never_stored() -> None:
    cache_origin = Origin([("cache-control", "max-age=60"), ("content-range", "bytes 0-9/99")], status=206)
    app = stack(cache_origin)
    await call_asgi(app, headers=[("range", "bytes=0-9")])
    assert len(app.cache.uncacheable) == 0


async def test_several_ranges_go_to_the_app() -> None:
    origin, app = await stored_stack()
    result = await call_asgi(app, headers=[("range", "bytes=0-1, 5-6")])
    assert origin.calls == 2 and result.headers["x-cache"] == "MISS"  # a multipart answer is the app's to make


async def test_a_stale_entry_is_revalidated_whole_and_then_cut() -> None:
    origin = Origin([("cache-control", "max-age=0"), *STORED[1:]])
    app = stack(origin)
    await call_asgi(app)
    result = await call_asgi(app, headers=[("range", "bytes=0-9")])
    # The revalidation carries no Range: the app's 304 lets the stored response answer the range.
    assert b"range" not in dict(origin.seen[-1]["headers"])
    assert (result.status, result.body) == (206, TEXT[:10])


async def test_only_if_cached_range_miss_is_504() -> None:
    result = await call_asgi(
        stack(Origin(STORED)), headers=[("range", "bytes=0-9"), ("cache-control", "only-if-cached")]
    )
    assert result.status == 504
