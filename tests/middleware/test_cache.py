from __future__ import annotations

from collections.abc import Callable, Sequence

import anyio
import pytest
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slipstream import CacheMiddleware, CompressionMiddleware, ConditionalMiddleware, ResponseCache, Settings
from slipstream.cache.memory import MemoryStore
from slipstream.exporters.otel import Telemetry
from slipstream.instrumentation import Instrumentation
from tests.middleware.apps import TEXT, decode
from tests.support import Captured, call_asgi

pytestmark = pytest.mark.anyio


class Origin:
    """A scripted app: answers with the given status and headers, counts calls, optionally fails or waits."""

    def __init__(
        self,
        headers: Sequence[tuple[str, str]] = (("cache-control", "max-age=60"),),
        *,
        status: int = 200,
        body: bytes | list[bytes] = TEXT,
        content_type: str = "text/html",
    ) -> None:
        self.headers = list(headers)
        self.content_type = content_type.encode()
        self.status = status
        self.body = body
        self.calls = 0
        self.seen: list[Scope] = []
        self.gate: anyio.Event | None = None
        self.fail = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        self.seen.append(scope)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RuntimeError("origin down")
        raw = [(b"content-type", self.content_type)] + [(k.encode(), v.encode()) for k, v in self.headers]
        if scope["method"] == "POST":
            await send({"type": "http.response.start", "status": self.status, "headers": raw})
            await send({"type": "http.response.body", "body": b"posted"})
            return
        await send({"type": "http.response.start", "status": self.status, "headers": raw})
        chunks = self.body if isinstance(self.body, list) else [self.body]
        for index, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": index < len(chunks) - 1})


def stack(
    origin: ASGIApp,
    settings: Settings | None = None,
    cache: ResponseCache | None = None,
    registry: CollectorRegistry | None = None,
) -> CacheMiddleware:
    """The full request path, as ``install`` builds it: cache → compression → conditional → app."""
    settings = settings or Settings()
    instrumentation = Instrumentation(
        settings, registry=registry or CollectorRegistry(), telemetry=Telemetry(enabled=False), cache=cache
    )
    inner = CompressionMiddleware.from_settings(
        ConditionalMiddleware.from_settings(origin, settings, instrumentation), settings, instrumentation
    )
    return CacheMiddleware.from_settings(inner, settings, instrumentation)


async def twice(app: ASGIApp, first: Sequence[tuple[str, str]] = (), second: Sequence[tuple[str, str]] = ()) -> str:
    await call_asgi(app, headers=first)
    result = await call_asgi(app, headers=second)
    return result.headers.get("x-cache", "")


@pytest.mark.parametrize(
    ("response_headers", "request_headers", "outcome"),
    [
        ([("cache-control", "max-age=60")], [], "HIT"),
        ([("cache-control", "s-maxage=60, max-age=0")], [], "HIT"),
        # Expires == Date: stored already stale; the generated ETag revalidates it (the app runs, answers 304).
        ([("expires", "Thu, 01 Jan 2099 00:00:00 GMT"), ("date", "Thu, 01 Jan 2099 00:00:00 GMT")], [], "HIT"),
        ([("expires", "Thu, 01 Jan 2099 00:00:00 GMT")], [], "HIT"),
        ([], [], "MISS"),  # no freshness: the cache does not guess
        ([("cache-control", "no-store, max-age=60")], [], "MISS"),
        ([("cache-control", "private, max-age=60")], [], "MISS"),
        ([("cache-control", "max-age=60"), ("set-cookie", "id=1")], [], "MISS"),
        ([("cache-control", "max-age=60"), ("vary", "*")], [], "MISS"),
        ([("cache-control", "max-age=60")], [("authorization", "Bearer a")], "MISS"),
        ([("cache-control", "public, max-age=60")], [("authorization", "Bearer a")], "HIT"),
        ([("cache-control", "s-maxage=60")], [("authorization", "Bearer a")], "HIT"),
        ([("cache-control", "max-age=60")], [("cache-control", "no-store")], "BYPASS"),
    ],
)
async def test_what_is_stored(
    response_headers: list[tuple[str, str]], request_headers: list[tuple[str, str]], outcome: str
) -> None:
    origin = Origin(response_headers)
    assert await twice(stack(origin), request_headers, request_headers) == outcome
    revalidated = any(name == "date" for name, _ in response_headers)
    assert origin.calls == (1 if outcome == "HIT" and not revalidated else 2)


async def test_set_cookie_is_stored_only_when_allowed() -> None:
    origin = Origin([("cache-control", "max-age=60"), ("set-cookie", "id=1")])
    assert await twice(stack(origin, Settings(cache_allow_set_cookie=True))) == "HIT"


@pytest.mark.parametrize(
    ("origin", "outcome"),
    [
        (Origin(body=[TEXT * 6, TEXT * 6]), "MISS"),  # streamed, over max_entry_bytes below
        (Origin(status=206, headers=[("cache-control", "max-age=60"), ("content-range", "bytes 0-9/99")]), "MISS"),
        (Origin(status=404), "HIT"),
        (Origin(status=302), "MISS"),
        (Origin(body=TEXT * 50), "MISS"),  # over max_entry_bytes below
    ],
    ids=["streamed-too-big", "206", "404", "302-without-explicit-ok", "too-big"],
)
async def test_never_stored(origin: Origin, outcome: str) -> None:
    settings = Settings(cache_max_entry_bytes=len(TEXT) * 10)
    if origin.status == 302:
        origin.headers = []
    assert await twice(stack(origin, settings)) == outcome


@pytest.mark.parametrize(
    ("request_headers", "calls"),
    [
        ([("cache-control", "no-cache")], 2),
        ([("cache-control", "max-age=0")], 2),
        ([("pragma", "no-cache")], 2),
        ([("pragma", "no-cache"), ("cache-control", "max-stale=5")], 1),  # Pragma only counts alone
        ([("cache-control", "max-age=3600")], 1),
    ],
)
async def test_client_cache_control_is_honoured(request_headers: list[tuple[str, str]], calls: int) -> None:
    origin = Origin([("cache-control", "max-age=60")])
    await twice(stack(origin), [], request_headers)
    assert origin.calls == calls


async def test_client_no_cache_can_be_ignored() -> None:
    origin = Origin([("cache-control", "max-age=60")])
    app = stack(origin, Settings(cache_honour_client_no_cache=False))
    assert await twice(app, [], [("cache-control", "no-cache")]) == "HIT"


async def test_only_if_cached_is_504_unless_a_usable_entry_is_stored() -> None:
    origin = Origin([("cache-control", "max-age=0"), ("etag", '"v1"')])
    app = stack(origin)
    only_if_cached = [("cache-control", "only-if-cached")]
    assert (await call_asgi(app, headers=only_if_cached)).status == 504
    await call_asgi(app)
    assert (await call_asgi(app, headers=only_if_cached)).status == 504  # stored, but stale: no origin contact
    origin.headers = [("cache-control", "max-age=60")]
    await call_asgi(app, headers=[("cache-control", "no-cache")])
    assert (await call_asgi(app, headers=only_if_cached)).headers["x-cache"] == "HIT"
    assert origin.calls == 2


async def test_hits_serve_every_encoding_from_one_app_call() -> None:
    origin = Origin()
    app = stack(origin)
    first = await call_asgi(app, headers=[("accept-encoding", "br")])
    assert (first.headers["content-encoding"], first.headers["x-cache"]) == ("br", "MISS")
    for coding in ("gzip", "br", "zstd", None):
        result = await call_asgi(app, headers=[("accept-encoding", coding or "identity")])
        assert result.headers["x-cache"] == "HIT"
        assert result.headers.get("content-encoding") == coding
        assert decode(coding, result.body) == TEXT
        assert int(result.headers["content-length"]) == len(result.body)
        assert "accept-encoding" in result.headers["vary"].lower()
        assert int(result.headers["age"]) >= 0
        assert result.headers["etag"].startswith('W/"') is (coding is not None)
    assert origin.calls == 1


async def miss_and_hit(
    origin: Callable[[], ASGIApp], request_headers: list[tuple[str, str]], method: str = "GET"
) -> tuple[Captured, Captured]:
    """The answer of a cold cache (a miss) and of a warm one (a hit) to the same request."""
    miss = await call_asgi(stack(origin()), method, headers=request_headers)
    warm = stack(origin())
    await call_asgi(warm, headers=[("accept-encoding", "gzip")])
    hit = await call_asgi(warm, method, headers=request_headers)
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("MISS", "HIT")
    return miss, hit


@pytest.mark.parametrize("accept_encoding", ["identity;q=0", "*;q=0", "gzip;q=0, identity;q=0", "deflate, *;q=0"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("body", [TEXT, b"tiny"], ids=["compressible", "small"])
async def test_a_hit_refusing_every_coding_gets_the_406_a_miss_gets(
    accept_encoding: str, method: str, body: bytes
) -> None:
    miss, hit = await miss_and_hit(lambda: Origin(body=body), [("accept-encoding", accept_encoding)], method)
    assert hit.status == miss.status == 406
    assert hit.body == miss.body
    assert [h for h in hit.start["headers"] if h[0] != b"x-cache"] == [
        h for h in miss.start["headers"] if h[0] != b"x-cache"
    ]


@pytest.mark.parametrize(
    "origin",
    [lambda: Origin(body=b"tiny"), lambda: Origin(content_type="image/png")],
    ids=["small", "excluded-type"],
)
async def test_a_hit_refusing_identity_is_encoded_as_a_miss_is(origin: Callable[[], ASGIApp]) -> None:
    miss, hit = await miss_and_hit(origin, [("accept-encoding", "gzip, identity;q=0")])
    assert hit.headers.get("content-encoding") == miss.headers.get("content-encoding") == "gzip"
    assert decode("gzip", hit.body) == decode("gzip", miss.body)
    assert hit.headers["vary"] == miss.headers["vary"]


async def test_a_hit_answers_406_only_where_compression_answered_the_miss() -> None:
    refusing = [("accept-encoding", "identity;q=0")]
    # The cache alone (its default codings, no CompressionMiddleware inside): the app's 200 both times.
    alone = CacheMiddleware(Origin(), instrumentation=Instrumentation(registry=CollectorRegistry()))
    miss, hit = await call_asgi(alone, headers=refusing), await call_asgi(alone, headers=refusing)
    assert (miss.status, hit.status, hit.headers["x-cache"]) == (200, 200, "HIT")
    assert hit.body == miss.body == TEXT
    # A path compression leaves alone: the same.
    settings = Settings(compression_exclude_paths=("/raw",))
    excluded = stack(Origin(), settings)
    await call_asgi(excluded, path="/raw/a")
    assert (await call_asgi(excluded, path="/raw/a", headers=refusing)).status == 200
    # Everywhere else, the 406 CompressionMiddleware answers misses with.
    await call_asgi(excluded, path="/page")
    assert (await call_asgi(excluded, path="/page", headers=refusing)).status == 406


async def test_head_is_served_from_the_get_entry_and_fills_it() -> None:
    origin = Origin()
    app = stack(origin)
    head = await call_asgi(app, method="HEAD", headers=[("accept-encoding", "gzip")])
    get = await call_asgi(app, headers=[("accept-encoding", "gzip")])
    head_again = await call_asgi(app, method="HEAD", headers=[("accept-encoding", "gzip")])
    assert head.body == b"" and head_again.body == b""
    assert get.headers["x-cache"] == head_again.headers["x-cache"] == "HIT"
    assert decode("gzip", get.body) == TEXT
    assert origin.calls == 1


async def test_conditional_hits_are_answered_by_the_cache() -> None:
    origin = Origin()
    app = stack(origin)
    first = await call_asgi(app, headers=[("accept-encoding", "br")])
    etag = first.headers["etag"]
    for coding in ("br", "gzip", "identity"):
        result = await call_asgi(app, headers=[("accept-encoding", coding), ("if-none-match", etag)])
        assert (result.status, result.body, result.headers["x-cache"]) == (304, b"", "HIT")
    failed = await call_asgi(app, headers=[("if-match", '"nope"')])
    assert failed.status == 412
    assert origin.calls == 1


@pytest.mark.parametrize(
    ("first", "second", "outcome"),
    [
        ("en", "en", "HIT"),
        ("en, fr", "en,fr", "HIT"),
        ("en", "fr", "MISS"),
        ("en", None, "MISS"),
    ],
)
async def test_vary_keys_on_normalised_request_fields(first: str, second: str | None, outcome: str) -> None:
    origin = Origin([("cache-control", "max-age=60"), ("vary", "Accept-Language")])
    app = stack(origin)
    await call_asgi(app, headers=[("accept-language", first)])
    result = await call_asgi(app, headers=[("accept-language", second)] if second else [])
    assert result.headers["x-cache"] == outcome


async def test_one_users_cookie_response_never_reaches_another() -> None:
    async def per_user(scope: Scope, receive: Receive, send: Send) -> None:
        cookie = dict(scope["headers"]).get(b"cookie", b"anonymous")
        headers = [(b"cache-control", b"max-age=60"), (b"vary", b"Cookie")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"hello " + cookie})

    app = stack(per_user)
    alice = await call_asgi(app, headers=[("cookie", "user=alice")])
    bob = await call_asgi(app, headers=[("cookie", "user=bob")])
    alice_again = await call_asgi(app, headers=[("cookie", "user=alice")])
    assert (alice.body, bob.body, alice_again.body) == (b"hello user=alice", b"hello user=bob", b"hello user=alice")
    assert (bob.headers["x-cache"], alice_again.headers["x-cache"]) == ("MISS", "HIT")


@pytest.mark.parametrize(
    ("first", "second", "outcome"),
    [
        ("/p?b=2&a=1", "/p?a=1&b=2", "HIT"),
        ("/p?a=1", "/p?a=1&utm_source=mail&gclid=x", "HIT"),
        ("/p?a=1", "/p?a=2", "MISS"),
    ],
)
async def test_query_normalisation(first: str, second: str, outcome: str) -> None:
    app = stack(Origin())

    async def get(target: str) -> str:
        path, _, query = target.partition("?")
        captured: list[Message] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b""}

        async def send(message: Message) -> None:
            captured.append(message)

        from tests.support import http_scope

        scope = http_scope(path=path)
        scope["query_string"] = query.encode()
        await app(scope, receive, send)
        return str(dict(captured[0]["headers"])[b"x-cache"].decode())

    await get(first)
    assert await get(second) == outcome


@pytest.mark.parametrize(("status", "invalidated"), [(200, True), (303, True), (404, False), (500, False)])
async def test_unsafe_methods_invalidate_on_success(status: int, invalidated: bool) -> None:
    origin = Origin()
    app = stack(origin)
    await call_asgi(app)
    origin.status = status
    await call_asgi(app, method="POST")
    origin.status = 200
    result = await call_asgi(app)
    assert result.headers["x-cache"] == ("MISS" if invalidated else "HIT")


async def test_location_on_the_same_origin_is_invalidated_too() -> None:
    origin = Origin()
    app = stack(origin)
    await call_asgi(app, path="/items/1")
    origin.headers = [("location", "/items/1")]
    await call_asgi(app, method="POST", path="/items")
    origin.headers = [("cache-control", "max-age=60")]
    assert (await call_asgi(app, path="/items/1")).headers["x-cache"] == "MISS"


async def test_validator_only_responses_are_revalidated_and_freshened() -> None:
    origin = Origin([("etag", '"v1"'), ("cache-control", "no-cache")])
    app = stack(origin)
    await call_asgi(app)
    second = await call_asgi(app)
    assert origin.calls == 2
    assert dict(origin.seen[1]["headers"])[b"if-none-match"] == b'"v1"'
    assert (second.status, second.headers["x-cache"], second.body) == (200, "HIT", TEXT)


async def test_stale_while_revalidate_serves_stale_and_refreshes_once() -> None:
    origin = Origin([("cache-control", "max-age=0, stale-while-revalidate=60")])
    app = stack(origin)
    await call_asgi(app)
    origin.gate = anyio.Event()
    results = [await call_asgi(app) for _ in range(5)]
    assert {r.headers["x-cache"] for r in results} == {"STALE"}
    origin.gate.set()
    with anyio.fail_after(5):
        while app.cache.refreshing:
            await anyio.sleep(0.01)
    assert origin.calls == 2  # one refresh for five stale hits


@pytest.mark.parametrize("failure", ["raise", "503"])
async def test_stale_if_error_answers_for_a_failing_origin(failure: str) -> None:
    origin = Origin([("cache-control", "max-age=0, stale-if-error=60"), ("etag", '"v1"')])
    app = stack(origin)
    await call_asgi(app)
    if failure == "raise":
        origin.fail = True
    else:
        origin.status = 503
    result = await call_asgi(app)
    assert (result.status, result.headers["x-cache"], result.body) == (200, "STALE", TEXT)


async def test_without_stale_if_error_the_error_goes_through() -> None:
    origin = Origin([("cache-control", "max-age=0"), ("etag", '"v1"')])
    app = stack(origin)
    await call_asgi(app)
    origin.status = 503
    assert (await call_asgi(app)).status == 503


async def test_a_stampede_of_misses_calls_the_app_once() -> None:
    origin = Origin()
    origin.gate = anyio.Event()
    app = stack(origin)
    results = []

    async def fetch() -> None:
        results.append(await call_asgi(app, headers=[("accept-encoding", "gzip")]))

    async with anyio.create_task_group() as tg:
        for _ in range(100):
            tg.start_soon(fetch)
        await anyio.sleep(0.05)
        origin.gate.set()
    assert origin.calls == 1
    assert sorted(r.headers["x-cache"] for r in results).count("HIT") == 99
    assert all(decode("gzip", r.body) == TEXT for r in results)


async def test_surrogate_keys_tag_entries_for_purge_and_are_not_sent() -> None:
    origin = Origin([("cache-control", "max-age=60"), ("surrogate-key", "product-1 listing")])
    app = stack(origin)
    first = await call_asgi(app, path="/a")
    await call_asgi(app, path="/b")
    assert "surrogate-key" not in first.headers
    assert await app.cache.purge_tags("product-1") == 2
    assert (await call_asgi(app, path="/a")).headers["x-cache"] == "MISS"


async def test_purges_by_url_prefix_and_all() -> None:
    app = stack(Origin())
    for path in ("/docs/a", "/docs/b", "/blog/c"):
        await call_asgi(app, path=path)
    assert await app.cache.purge_url("http://testserver/docs/a") == 1
    assert await app.cache.purge_prefix("http://testserver/docs/") == 1
    assert (await call_asgi(app, path="/blog/c")).headers["x-cache"] == "HIT"
    assert await app.cache.purge_all() == 1
    assert (await call_asgi(app, path="/blog/c")).headers["x-cache"] == "MISS"


async def test_excluded_paths_bypass_and_the_status_header_can_be_off() -> None:
    origin = Origin()
    bypass = await call_asgi(stack(origin, Settings(cache_exclude_paths=("/admin",))), path="/admin/x")
    assert bypass.headers["x-cache"] == "BYPASS"
    quiet = stack(origin, Settings(cache_status_header=""))
    assert "x-cache" not in (await call_asgi(quiet)).headers


async def test_route_default_ttl_opts_in_responses_without_freshness() -> None:
    origin = Origin([])
    app = stack(origin, Settings(cache_route_ttls=("/api/.*=30",)))
    for path, outcome in [("/api/x", "MISS"), ("/api/x", "HIT"), ("/other", "MISS"), ("/other", "MISS")]:
        assert (await call_asgi(app, path=path)).headers["x-cache"] == outcome


async def test_memory_tier_stays_within_its_byte_budget() -> None:
    import tracemalloc

    budget = 2 * 1024 * 1024
    cache = ResponseCache(MemoryStore(budget))
    app = stack(Origin(body=TEXT * 4), cache=cache)
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    per_entry = len(TEXT) * 4
    for index in range(10 * budget // per_entry):
        await call_asgi(app, path=f"/page/{index}", headers=[("accept-encoding", "gzip")])
    held = tracemalloc.get_traced_memory()[0] - baseline
    tracemalloc.stop()
    assert cache.memory.bytes <= budget
    assert cache.memory.evictions > 0
    assert held <= budget * 1.25, f"{held} bytes held for a {budget} byte budget"


async def test_lifespan_shutdown_closes_the_cache_and_other_scopes_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
                await send({"type": "lifespan.startup.complete"})

    middleware = CacheMiddleware(app)
    closed: list[bool] = []
    original_close = middleware.cache.close

    async def close() -> None:
        closed.append(True)
        await original_close()

    middleware.cache.close = close  # type: ignore[method-assign]
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[Message] = []

    async def receive() -> Message:
        return next(messages)

    async def send(message: Message) -> None:
        sent.append(message)

    await middleware({"type": "lifespan"}, receive, send)
    await middleware({"type": "websocket"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert closed == [True]
    assert seen == ["lifespan", "websocket"]


async def test_an_error_after_the_response_started_is_not_hidden() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"cache-control", b"max-age=60")]})
        raise RuntimeError("mid-body failure")

    with pytest.raises(RuntimeError, match="mid-body"):
        await call_asgi(stack(broken))


async def test_tag_response_feeds_tag_purges() -> None:
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from slipstream import tag_response

    async def product(request: Request) -> Response:
        response = JSONResponse({"id": 1}, headers={"cache-control": "max-age=60", "surrogate-key": "all"})
        return tag_response(response, "product-1", "all")

    from starlette.applications import Starlette

    app = stack(Starlette(routes=[Route("/p", product)]))
    first = await call_asgi(app, path="/p")
    assert "surrogate-key" not in first.headers
    assert app.cache.memory.purge_tags(["product-1"]) == 1
    with pytest.raises(ValueError, match="one non-empty word"):
        tag_response(Response(), "two words")


@pytest.mark.parametrize(
    "expires",
    [
        "Thu, 01 Jan 2099 00:00:00 UTC",  # a zone name other than GMT
        "Thu, 01 Jan 99 00:00:00 GMT",  # a two-digit year
        "Thu 01 Jan 2099 00:00:00 GMT",  # a missing comma
        "Thu,  01 Jan 2099 00:00:00 GMT",  # doubled spaces
        "Thu, 01-Jan-2099 00:00:00 GMT",  # dashes in the date
        "Thu, 01 Jan 2099 00.00.00 GMT",  # dots in the time
        "Thu, 01 Jan 2099 0:00:00 GMT",  # a one-digit hour
    ],
)
async def test_an_invalid_expires_is_stale_on_arrival(expires: str) -> None:
    origin = Origin([("expires", expires)])
    app = stack(origin)
    await call_asgi(app)
    await call_asgi(app)
    assert origin.calls == 2, "an invalid Expires is a time in the past (RFC 9111 §5.3): never served as fresh"


async def test_two_expires_fields_are_invalid() -> None:
    origin = Origin([("expires", "Thu, 01 Jan 2099 00:00:00 GMT"), ("expires", "Fri, 02 Jan 2099 00:00:00 GMT")])
    app = stack(origin)
    await call_asgi(app)
    await call_asgi(app)
    assert origin.calls == 2


@pytest.mark.parametrize("ages", [[("age", "7200, 0")], [("age", "7200"), ("age", "0")]])
async def test_an_age_list_is_read_by_its_first_value(ages: list[tuple[str, str]]) -> None:
    origin = Origin([("cache-control", "max-age=3600"), *ages])
    app = stack(origin)
    await call_asgi(app)
    await call_asgi(app)
    assert origin.calls == 2, "Age 7200 against max-age=3600: stale on arrival (RFC 9111 §5.1: the first value)"


async def test_a_304_updates_the_stored_fields_clients_get() -> None:
    """RFC 9111 §4.3.4 / §3.2: on a revalidation's 304, every field the 304 carries replaces the stored one."""
    revalidations = 0

    async def origin(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal revalidations
        if dict(scope["headers"]).get(b"if-none-match") == b'"v1"':
            revalidations += 1
            value = b"B%d" % revalidations
            headers = [(b"etag", b'"v1"'), (b"cache-control", b"no-cache")]
            headers += [(b"test-header", value), (b"x-test-header", value), (b"content-foo", value)]
            headers += [(b"set-cookie", b"session=theirs")]  # never handed on to other clients
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        headers = [(b"content-type", b"text/plain"), (b"etag", b'"v1"'), (b"cache-control", b"no-cache")]
        headers += [(b"test-header", b"A"), (b"x-test-header", b"A"), (b"content-foo", b"A")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": TEXT})

    app = stack(origin)
    first = await call_asgi(app)
    second = await call_asgi(app)
    third = await call_asgi(app)
    assert first.headers["test-header"] == "A"
    for response, value in ((second, "B1"), (third, "B2")):
        assert (response.status, response.headers["x-cache"], response.body) == (200, "HIT", TEXT)
        assert [response.headers[name] for name in ("test-header", "x-test-header", "content-foo")] == [value] * 3
        assert "set-cookie" not in response.headers
        assert response.header_list("test-header") == [value]  # replaced, not added
