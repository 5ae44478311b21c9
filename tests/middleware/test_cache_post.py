"""A POST response stored as the GET entry of its URI (RFC 9110 §9.3.3, §8.7; RFC 9111 §3, §4, §4.4), through the
real stack: when it may be, and every case where it must not be."""

from __future__ import annotations

import time
from collections.abc import Sequence
from email.utils import formatdate

import pytest
from starlette.types import Message, Receive, Scope, Send

from slipstream import Settings
from tests.middleware.apps import TEXT, decode
from tests.middleware.test_cache import Origin, stack
from tests.support import Captured, call_asgi, http_scope

pytestmark = pytest.mark.anyio

FRESH = ("cache-control", "max-age=3600")
HERE = ("content-location", "http://testserver/items/1")


async def post_then_get(
    origin: Origin,
    post: Sequence[tuple[str, str]] = (),
    get: Sequence[tuple[str, str]] = (),
    settings: Settings | None = None,
    path: str = "/items/1",
) -> Captured:
    app = stack(origin, settings)
    posted = await call_asgi(app, method="POST", path=path, headers=post, body=b"name=new")
    assert posted.status == origin.status and "x-cache" not in posted.headers  # unsafe methods are not tagged
    return await call_asgi(app, path=path, headers=get)


@pytest.mark.parametrize(
    ("response", "post", "get", "status", "stored"),
    [
        ([FRESH, HERE], [], [], 200, True),
        ([("cache-control", "s-maxage=3600"), HERE], [], [], 200, True),
        ([("expires", formatdate(time.time() + 3600, usegmt=True)), HERE], [], [], 200, True),
        ([FRESH, ("content-location", "/items/1")], [], [], 200, True),
        ([FRESH, ("content-location", "1")], [], [], 200, True),
        ([FRESH, ("content-location", "../items/./1")], [], [], 200, True),
        ([FRESH, ("content-location", "HTTP://TESTSERVER:80/items/1")], [], [], 200, True),
        ([FRESH, HERE], [], [], 201, True),
        # Explicit freshness is required: neither heuristics nor no-cache alone.
        ([HERE], [], [], 200, False),
        ([("cache-control", "no-cache"), ("etag", '"p1"'), HERE], [], [], 200, False),
        ([("cache-control", "public"), HERE, ("last-modified", formatdate(0, usegmt=True))], [], [], 200, False),
        # RFC 9213: a targeted field in effect decides, in place of Cache-Control and Expires.
        ([("slipstream-cache-control", "max-age=3600"), ("cache-control", "no-store"), HERE], [], [], 200, True),
        ([FRESH, ("slipstream-cache-control", "public"), HERE], [], [], 200, False),
        ([FRESH, ("cdn-cache-control", "no-store"), HERE], [], [], 200, False),
        # Content-Location must name the target URI.
        ([FRESH], [], [], 200, False),
        ([FRESH, ("content-location", "/items/2")], [], [], 200, False),
        ([FRESH, ("content-location", "/items/1?v=2")], [], [], 200, False),
        ([FRESH, ("content-location", "http://evil.example/items/1")], [], [], 200, False),
        ([FRESH, ("content-location", "https://testserver/items/1")], [], [], 200, False),
        ([FRESH, ("content-location", "//evil.example/items/1")], [], [], 200, False),
        ([FRESH, HERE, HERE], [], [], 200, False),
        ([FRESH, ("content-location", "http://[::1/items/1")], [], [], 200, False),
        # Only a 2xx says its content is the target's representation (RFC 9110 §8.7).
        ([FRESH, HERE], [], [], 303, False),
        ([FRESH, HERE], [], [], 404, False),
        ([FRESH, HERE], [], [], 500, False),
        # Every rule a GET response follows.
        ([("cache-control", "max-age=3600, no-store"), HERE], [], [], 200, False),
        ([("cache-control", "max-age=3600, private"), HERE], [], [], 200, False),
        ([FRESH, HERE, ("set-cookie", "id=1")], [], [], 200, False),
        ([FRESH, HERE, ("vary", "*")], [], [], 200, False),
        ([FRESH, HERE], [("cache-control", "no-store")], [], 200, False),
        ([FRESH, HERE], [("authorization", "Bearer alice")], [], 200, False),
        ([("cache-control", "public, max-age=3600"), HERE], [("authorization", "Bearer alice")], [], 200, True),
        ([FRESH, HERE], [("cookie", "session=alice")], [], 200, False),
        ([FRESH, HERE, ("vary", "Cookie")], [("cookie", "session=alice")], [("cookie", "session=alice")], 200, True),
        ([FRESH, HERE, ("vary", "Cookie")], [("cookie", "session=alice")], [("cookie", "session=bob")], 200, False),
        (
            [FRESH, HERE, ("vary", "Accept-Language")],
            [("accept-language", "en")],
            [("accept-language", "en")],
            200,
            True,
        ),
        (
            [FRESH, HERE, ("vary", "Accept-Language")],
            [("accept-language", "en")],
            [("accept-language", "fr")],
            200,
            False,
        ),
        # Input the key leaves out reached the app: an ignored cookie (an ignored parameter is tested below).
        ([("cache-control", "public, max-age=3600"), HERE], [("cookie", "_ga=GA1.2")], [], 200, False),
    ],
    ids=[
        "9110-9.3.3-max-age",
        "9110-9.3.3-s-maxage",
        "9110-9.3.3-expires",
        "3986-5.2-absolute-path",
        "3986-5.2-relative-path",
        "3986-5.2-dot-segments",
        "3986-6.2.3-scheme-host-port-normalised",
        "9110-8.7-201",
        "9110-9.3.3-no-explicit-freshness",
        "9110-9.3.3-no-cache-alone",
        "9110-9.3.3-no-heuristics",
        "9213-targeted-max-age",
        "9213-targeted-without-freshness",
        "9213-targeted-no-store",
        "9110-9.3.3-no-content-location",
        "9110-9.3.3-another-path",
        "9110-9.3.3-another-query",
        "9110-9.3.3-another-origin",
        "9110-9.3.3-another-scheme",
        "9110-9.3.3-network-path-to-another-origin",
        "9110-5.3-two-content-locations",
        "9110-8.7-malformed-content-location",
        "9110-8.7-303",
        "9110-8.7-404",
        "9110-8.7-500",
        "9111-5.2.2.5-no-store",
        "9111-5.2.2.7-private",
        "set-cookie",
        "9111-4.1-vary-star",
        "9111-5.2.1.5-request-no-store",
        "9111-3.5-authorization",
        "9111-3.5-authorization-public",
        "cookie",
        "cookie-vary-same-user",
        "cookie-vary-other-user",
        "9111-4.1-vary-same",
        "9111-4.1-vary-other",
        "ignored-cookie-reached-the-app",
    ],
)
async def test_a_post_response_may_answer_a_later_get(
    response: list[tuple[str, str]],
    post: list[tuple[str, str]],
    get: list[tuple[str, str]],
    status: int,
    stored: bool,
) -> None:
    origin = Origin(response, status=status)
    # With heuristic freshness on, to show it never applies to a POST response.
    result = await post_then_get(origin, post, get, Settings(cache_heuristic_fraction=0.1))
    if stored:
        assert (result.headers["x-cache"], result.status, origin.calls) == ("HIT", status, 1)
        assert result.body == b"posted"
    else:
        assert (result.headers["x-cache"], result.body, origin.calls) == ("MISS", TEXT, 2)
        assert b"if-none-match" not in dict(origin.seen[-1]["headers"]), "nothing stored to revalidate either"


async def test_a_post_with_an_ignored_query_parameter_is_not_stored() -> None:
    origin = Origin([FRESH, HERE])
    app = stack(origin)
    scope = http_scope("POST", "/items/1")
    scope["query_string"] = b"utm_source=mail"
    posted = Captured()

    async def receive() -> Message:
        return {"type": "http.request", "body": b"name=new"}

    async def send(message: Message) -> None:
        posted.messages.append(message)

    await app(scope, receive, send)
    assert origin.seen[0]["query_string"] == b"utm_source=mail"  # unsafe requests reach the app untouched
    assert posted.status == 200
    result = await call_asgi(app, path="/items/1")
    assert (result.headers["x-cache"], result.body) == ("MISS", TEXT)


async def test_the_post_response_replaces_the_entry_it_invalidates() -> None:
    """RFC 9111 §4.4 invalidates the target on a successful POST; the POST's own response is stored after that."""
    origin = Origin([FRESH, HERE])
    app = stack(origin)
    await call_asgi(app, path="/items/1")
    assert (await call_asgi(app, path="/items/1")).body == TEXT
    await call_asgi(app, method="POST", path="/items/1", body=b"name=new")
    result = await call_asgi(app, path="/items/1")
    assert (result.headers["x-cache"], result.body, origin.calls) == ("HIT", b"posted", 2)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_only_post_responses_are_stored(method: str) -> None:
    origin = Origin([FRESH, HERE])
    app = stack(origin)
    await call_asgi(app, method=method, path="/items/1")
    assert (await call_asgi(app, path="/items/1")).headers["x-cache"] == "MISS"


async def test_a_streamed_or_oversized_post_response_is_not_stored() -> None:
    async def streamed(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"cache-control", b"max-age=3600"), (b"content-location", b"/items/1")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if scope["method"] == "POST":
            await send({"type": "http.response.body", "body": b"part 1 ", "more_body": True})
            await send({"type": "http.response.body", "body": b"part 2"})
        else:
            await send({"type": "http.response.body", "body": TEXT})

    app = stack(streamed)
    posted = await call_asgi(app, method="POST", path="/items/1")
    assert posted.body == b"part 1 part 2"
    assert (await call_asgi(app, path="/items/1")).body == TEXT  # stored by the GET, not the POST
    origin = Origin([FRESH, HERE])
    result = await post_then_get(origin, settings=Settings(cache_max_entry_bytes=4))
    assert (result.headers["x-cache"], origin.calls) == ("MISS", 2)


async def test_a_compressed_post_response_is_stored_for_every_coding() -> None:
    """The identity body is kept as for a GET: a later GET in another coding (or none) is answered from it."""
    body = b"representation " * 100

    async def poster(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/plain"), (b"cache-control", b"max-age=3600")]
        headers.append((b"content-location", b"/items/1"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body if scope["method"] == "POST" else b"from a GET"})

    app = stack(poster)
    posted = await call_asgi(app, method="POST", path="/items/1", headers=[("accept-encoding", "gzip")])
    assert decode("gzip", posted.body) == body
    identity = await call_asgi(app, path="/items/1")
    brotli = await call_asgi(app, path="/items/1", headers=[("accept-encoding", "br")])
    assert (identity.headers["x-cache"], identity.body) == ("HIT", body)
    assert (brotli.headers["x-cache"], decode("br", brotli.body)) == ("HIT", body)


async def test_fields_for_slipstream_alone_are_not_sent_on_unsafe_responses() -> None:
    origin = Origin([FRESH, HERE, ("surrogate-key", "item-1"), ("slipstream-cache-control", "max-age=60")])
    app = stack(origin)
    for method in ("PUT", "POST"):
        headers = (await call_asgi(app, method=method, path="/items/1")).headers
        assert "surrogate-key" not in headers and "slipstream-cache-control" not in headers
    assert app.cache.memory.purge_tags(["item-1"]) == 1
