from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
import xxhash
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from slipstream import ConditionalMiddleware
from tests.middleware.apps import TEXT, respond
from tests.support import asgi_client, call_asgi

pytestmark = pytest.mark.anyio

STRONG = '"' + xxhash.xxh3_128_hexdigest(TEXT) + '"'
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"


async def test_strong_etag_from_the_body_is_stable() -> None:
    app = ConditionalMiddleware(respond())
    first = await call_asgi(app)
    second = await call_asgi(ConditionalMiddleware(respond()))
    assert first.headers["etag"] == second.headers["etag"] == STRONG
    assert first.body == TEXT


async def test_weak_etag_option() -> None:
    result = await call_asgi(ConditionalMiddleware(respond(), weak_etags=True))
    assert result.headers["etag"] == "W/" + STRONG


@pytest.mark.parametrize(
    ("app", "method"),
    [
        (respond(headers=[("etag", '"app-set"')]), "GET"),
        (respond(status=201), "GET"),
        (respond(status=404), "GET"),
        (respond([b"streamed ", b"body"]), "GET"),
        (respond(), "POST"),
    ],
    ids=["app-etag", "201", "404", "streamed", "post"],
)
async def test_no_generated_etag(app: ConditionalMiddleware, method: str) -> None:
    result = await call_asgi(ConditionalMiddleware(app), method=method)
    assert result.header_list("etag") in ([], ['"app-set"'])


async def test_generation_can_be_switched_off() -> None:
    result = await call_asgi(ConditionalMiddleware(respond(), generate_etags=False))
    assert "etag" not in result.headers


async def test_head_carries_the_etag_and_length_of_get_without_a_body() -> None:
    async def page(request: Request) -> Response:
        return PlainTextResponse(TEXT.decode())

    app = Starlette(routes=[Route("/", page)])
    app.add_middleware(ConditionalMiddleware)
    async with asgi_client(app) as client:
        get = await client.get("/")
        head = await client.head("/")
        not_modified = await client.head("/", headers={"if-none-match": get.headers["etag"]})
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["etag"] == get.headers["etag"] == STRONG
    assert head.headers["content-length"] == get.headers["content-length"]
    assert not_modified.status_code == 304


@pytest.mark.parametrize(
    ("if_none_match", "status"),
    [
        (STRONG, 304),
        ("W/" + STRONG, 304),  # weak comparison
        (f'"other", {STRONG}', 304),
        (f'"a,b", W/{STRONG}', 304),  # commas inside a tag do not split it
        ("*", 304),
        ('"other"', 200),
        ("garbage without quotes", 200),
        (STRONG[:-1], 200),
        ("", 200),
    ],
)
async def test_if_none_match(if_none_match: str, status: int) -> None:
    result = await call_asgi(ConditionalMiddleware(respond()), headers=[("if-none-match", if_none_match)])
    assert result.status == status
    assert (result.body == b"") is (status == 304)


async def test_not_modified_keeps_only_the_headers_rfc_9110_lists() -> None:
    headers = [
        ("content-type", "text/html"),
        ("cache-control", "max-age=60"),
        ("content-location", "/doc.html"),
        ("date", "Thu, 22 Oct 2015 07:28:00 GMT"),
        ("expires", "Thu, 22 Oct 2015 08:28:00 GMT"),
        ("vary", "Cookie"),
        ("last-modified", LAST_MODIFIED),
        ("set-cookie", "session=abc"),
        ("x-custom", "dropped"),
        ("content-language", "en"),
    ]
    app = ConditionalMiddleware(respond(headers=headers))
    result = await call_asgi(app, headers=[("if-none-match", STRONG)])
    assert result.status == 304
    assert result.headers == {
        "cache-control": "max-age=60",
        "content-location": "/doc.html",
        "date": "Thu, 22 Oct 2015 07:28:00 GMT",
        "expires": "Thu, 22 Oct 2015 08:28:00 GMT",
        "vary": "Cookie",
        "set-cookie": "session=abc",
        "etag": STRONG,
    }
    # Without an ETag, Last-Modified is what lets caches update: it stays.
    no_etag = ConditionalMiddleware(respond(headers=headers), generate_etags=False)
    result = await call_asgi(no_etag, headers=[("if-modified-since", LAST_MODIFIED)])
    assert result.status == 304
    assert result.headers["last-modified"] == LAST_MODIFIED


@pytest.mark.parametrize(
    ("if_modified_since", "status"),
    [
        (LAST_MODIFIED, 304),
        ("Thu, 22 Oct 2015 07:28:00 GMT", 304),
        ("Tue, 20 Oct 2015 07:28:00 GMT", 200),
        ("Wednesday, 21-Oct-15 07:28:00 GMT", 304),  # RFC 850
        ("Wed Oct 21 07:28:00 2015", 304),  # asctime
        ("not a date", 200),
        ("", 200),
    ],
)
async def test_if_modified_since(if_modified_since: str, status: int) -> None:
    app = ConditionalMiddleware(respond(headers=[("last-modified", LAST_MODIFIED)]))
    result = await call_asgi(app, headers=[("if-modified-since", if_modified_since)])
    assert result.status == status


async def test_if_modified_since_is_ignored_when_if_none_match_is_present() -> None:
    app = ConditionalMiddleware(respond(headers=[("last-modified", LAST_MODIFIED)]))
    result = await call_asgi(app, headers=[("if-none-match", '"stale"'), ("if-modified-since", LAST_MODIFIED)])
    assert result.status == 200


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([("if-match", STRONG)], 200),
        ([("if-match", "*")], 200),
        ([("if-match", '"other"')], 412),
        ([("if-match", "W/" + STRONG)], 412),  # strong comparison: weak tags never match
        ([("if-match", "nonsense")], 412),
        ([("if-unmodified-since", "Tue, 20 Oct 2015 07:28:00 GMT")], 412),
        ([("if-unmodified-since", LAST_MODIFIED)], 200),
        ([("if-unmodified-since", "garbage")], 200),
        ([("if-match", STRONG), ("if-unmodified-since", "Tue, 20 Oct 2015 07:28:00 GMT")], 200),
    ],
)
async def test_if_match_and_if_unmodified_since_on_get(headers: list[tuple[str, str]], status: int) -> None:
    app = ConditionalMiddleware(respond(headers=[("content-type", "text/html"), ("last-modified", LAST_MODIFIED)]))
    result = await call_asgi(app, headers=headers)
    assert result.status == status
    if status == 412:
        assert result.body == b"Precondition Failed\n"


async def test_preconditions_are_ignored_on_non_2xx_responses() -> None:
    result = await call_asgi(ConditionalMiddleware(respond(status=404)), headers=[("if-none-match", "*")])
    assert result.status == 404
    result = await call_asgi(ConditionalMiddleware(respond(status=500)), headers=[("if-match", '"x"')])
    assert result.status == 500


async def test_streamed_response_with_app_etag_gets_304_without_waiting_for_the_stream() -> None:
    async def forever() -> AsyncIterator[bytes]:
        while True:
            yield b"data: tick\n\n"
            await anyio.sleep(0.01)

    async def events(request: Request) -> Response:
        return StreamingResponse(forever(), media_type="text/event-stream", headers={"etag": '"feed-1"'})

    app = Starlette(routes=[Route("/", events)])
    app.add_middleware(ConditionalMiddleware)
    async with asgi_client(app) as client:
        with anyio.fail_after(5):
            result = await client.get("/", headers={"if-none-match": '"feed-1"'})
    assert result.status_code == 304


async def test_an_apps_own_head_handler_gets_no_etag_from_its_body_but_its_own_etag_is_honoured() -> None:
    async def head(request: Request) -> Response:
        tagged = request.url.path == "/tagged"
        return PlainTextResponse("null", headers={"etag": '"h1"'} if tagged else {"x-handler": "head"})

    async def get(request: Request) -> Response:
        return PlainTextResponse(TEXT.decode())

    app = Starlette(
        routes=[
            Route("/{name}", head, methods=["HEAD"]),  # first: the router sends HEAD here, not to GET's route
            Route("/{name}", get, methods=["GET"]),
        ]
    )
    app.add_middleware(ConditionalMiddleware)
    async with asgi_client(app) as client:
        plain = await client.head("/plain")
        tagged = await client.head("/tagged")
        revalidated = await client.head("/tagged", headers={"if-none-match": '"h1"'})
        refused = await client.head("/tagged", headers={"if-match": '"h0"'})
    assert (plain.status_code, plain.headers["x-handler"], plain.content) == (200, "head", b"")
    assert "etag" not in plain.headers  # a hash of "null" is no validator of the resource
    assert (tagged.headers["etag"], revalidated.status_code, refused.status_code) == ('"h1"', 304, 412)


class Document:
    """A resource with a version ETag and a GET/PUT/DELETE handler that counts how often writes ran."""

    def __init__(self) -> None:
        self.body = "version 1"
        self.exists = True
        self.writes = 0
        self.reads = 0

    def app(self, etag_from_app: bool = True) -> Starlette:
        async def doc(request: Request) -> Response:
            if request.method == "GET":
                self.reads += 1
                if not self.exists:
                    return PlainTextResponse("missing", status_code=404)
                headers = {"last-modified": LAST_MODIFIED}
                if etag_from_app:
                    headers["etag"] = f'"{self.body}"'.replace(" ", "-")
                return PlainTextResponse(self.body, headers=headers)
            self.writes += 1
            if request.method == "DELETE":
                self.exists = False
                return Response(status_code=204)
            self.body = (await request.body()).decode()
            self.exists = True
            return PlainTextResponse("stored", status_code=200)

        async def boom(request: Request) -> Response:
            if request.method == "GET":
                raise RuntimeError("broken GET")
            self.writes += 1
            return PlainTextResponse("stored")

        app = Starlette(
            routes=[Route("/doc", doc, methods=["GET", "PUT", "DELETE"]), Route("/boom", boom, methods=["GET", "PUT"])]
        )
        app.add_middleware(ConditionalMiddleware)
        return app


@pytest.mark.parametrize(
    ("exists", "headers", "status", "writes"),
    [
        (True, {"if-match": '"version-1"'}, 200, 1),
        (True, {"if-match": '"version-0"'}, 412, 0),
        (True, {"if-match": "*"}, 200, 1),
        (False, {"if-match": "*"}, 412, 0),
        (False, {"if-match": '"version-1"'}, 412, 0),
        (True, {"if-none-match": "*"}, 412, 0),  # create-only PUT on an existing resource
        (False, {"if-none-match": "*"}, 200, 1),
        (True, {"if-none-match": 'W/"version-1"'}, 412, 0),
        (True, {"if-unmodified-since": "Tue, 20 Oct 2015 07:28:00 GMT"}, 412, 0),
        (True, {"if-unmodified-since": LAST_MODIFIED}, 200, 1),
        (True, {"if-modified-since": "Tue, 20 Oct 2015 07:28:00 GMT"}, 200, 1),  # GET/HEAD only
    ],
)
async def test_unsafe_methods_check_preconditions_before_the_app_runs(
    exists: bool, headers: dict[str, str], status: int, writes: int
) -> None:
    document = Document()
    document.exists = exists
    async with asgi_client(document.app()) as client:
        result = await client.put("/doc", content=b"version 2", headers=headers)
    assert result.status_code == status
    assert document.writes == writes
    if status == 200:
        assert document.body == "version 2"  # the probe did not eat the request body


async def test_unsafe_methods_use_the_generated_etag_when_the_app_sets_none() -> None:
    document = Document()
    async with asgi_client(document.app(etag_from_app=False)) as client:
        etag = (await client.get("/doc")).headers["etag"]
        stale = await client.delete("/doc", headers={"if-match": '"0000"'})
        fresh = await client.delete("/doc", headers={"if-match": etag})
    assert (stale.status_code, fresh.status_code) == (412, 204)
    assert document.writes == 1


async def test_unconditional_writes_do_not_probe() -> None:
    document = Document()
    async with asgi_client(document.app()) as client:
        await client.put("/doc", content=b"v2")
    assert (document.reads, document.writes) == (0, 1)


async def test_a_failing_get_leaves_the_preconditions_to_the_app() -> None:
    document = Document()
    async with asgi_client(document.app()) as client:
        result = await client.put("/boom", content=b"x", headers={"if-match": "*"})
        created = await client.put("/boom", content=b"x", headers={"if-none-match": "*"})
    assert (result.status_code, created.status_code, document.writes) == (200, 200, 2)


@pytest.mark.parametrize(
    ("get_status", "headers", "status"),
    [
        # No current representation: If-Match fails, If-None-Match: * passes (a create-only PUT).
        (404, {"if-match": '"v1"'}, 412),
        (410, {"if-match": "*"}, 412),
        (410, {"if-none-match": "*"}, 201),
        # The GET says nothing of the current state: the app answers as it would without preconditions.
        (401, {"if-match": '"v1"'}, 201),
        (403, {"if-match": "*"}, 201),
        (403, {"if-none-match": "*"}, 201),
        (307, {"if-match": '"v1"'}, 201),
        (500, {"if-match": '"v1"'}, 201),
    ],
)
async def test_only_404_and_410_mean_no_current_representation(
    get_status: int, headers: dict[str, str], status: int
) -> None:
    async def thing(request: Request) -> Response:
        if request.method == "GET":
            return PlainTextResponse("refused", status_code=get_status)
        return PlainTextResponse("created", status_code=201)

    app = Starlette(routes=[Route("/thing", thing, methods=["GET", "PUT"])])
    app.add_middleware(ConditionalMiddleware)
    async with asgi_client(app) as client:
        result = await client.put("/thing", content=b"x", headers=headers)
    assert result.status_code == status


async def test_probe_of_an_endless_stream_stops_at_the_first_chunk() -> None:
    async def forever() -> AsyncIterator[bytes]:
        while True:
            yield b"data: tick\n\n"
            await anyio.sleep(0.01)

    writes = 0

    async def feed(request: Request) -> Response:
        nonlocal writes
        if request.method == "GET":
            return StreamingResponse(forever(), media_type="text/event-stream")
        writes += 1
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/feed", feed, methods=["GET", "POST"])])
    app.add_middleware(ConditionalMiddleware)
    async with asgi_client(app) as client:
        with anyio.fail_after(5):
            exists = await client.post("/feed", headers={"if-match": "*"})
            tagged = await client.post("/feed", headers={"if-match": '"x"'})
    assert (exists.status_code, tagged.status_code, writes) == (200, 412, 1)


async def test_unsafe_checks_can_be_left_to_the_app() -> None:
    document = Document()
    app = ConditionalMiddleware(document.app().router, check_unsafe_methods=False)
    result = await call_asgi(app, method="PUT", path="/doc", headers=[("if-match", '"nope"')], body=b"v9")
    assert result.status == 200
    assert document.writes == 1


async def test_head_412_has_no_body() -> None:
    result = await call_asgi(ConditionalMiddleware(respond()), method="HEAD", headers=[("if-match", '"x"')])
    assert result.status == 412
    assert result.body == b""


async def test_options_and_non_http_pass_through() -> None:
    calls: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append(scope["type"])
        if scope["type"] == "http":
            await respond()(scope, receive, send)

    result = await call_asgi(ConditionalMiddleware(app), method="OPTIONS", headers=[("if-match", '"x"')])
    assert result.status == 200
    await ConditionalMiddleware(app)({"type": "lifespan"}, call_asgi, call_asgi)  # type: ignore[arg-type]
    assert calls == ["http", "lifespan"]


async def test_interleaved_requests_get_their_own_etags() -> None:
    bodies = {"/a": TEXT, "/b": TEXT[::-1]}
    gate = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        if scope["path"] == "/a":
            await gate.wait()  # /a's body arrives after /b's whole response
        await send({"type": "http.response.body", "body": bodies[scope["path"]]})
        if scope["path"] == "/b":
            gate.set()

    middleware = ConditionalMiddleware(app)
    results = {}

    async def fetch(path: str) -> None:
        results[path] = await call_asgi(middleware, path=path)

    async with anyio.create_task_group() as tg:
        tg.start_soon(fetch, "/a")
        tg.start_soon(fetch, "/b")
    for path, body in bodies.items():
        assert results[path].body == body
        assert results[path].headers["etag"] == '"' + xxhash.xxh3_128_hexdigest(body) + '"'


async def test_probe_of_a_get_that_waits_for_disconnect_does_not_hang() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "GET":
            await respond(headers=[("etag", '"v1"')])(scope, receive, send)
            await receive()  # waits for the client to go away, as long-poll handlers do
            raise AssertionError("the probe ends the GET before this")
        await respond(b"written")(scope, receive, send)

    with anyio.fail_after(5):
        result = await call_asgi(ConditionalMiddleware(app), method="PUT", headers=[("if-match", '"v1"')])
    assert result.body == b"written"


async def test_head_of_a_streamed_response_sends_headers_and_an_empty_body() -> None:
    app = ConditionalMiddleware(respond([b"part one, ", b"part two"]))
    result = await call_asgi(app, method="HEAD")
    assert result.status == 200
    assert [m.get("body", b"") for m in result.bodies] == [b""]


async def test_pathsend_after_a_held_start_is_forwarded() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.pathsend", "path": "/etc/hostname"})

    result = await call_asgi(ConditionalMiddleware(app))
    assert [m["type"] for m in result.messages] == ["http.response.start", "http.response.pathsend"]
