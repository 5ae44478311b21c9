"""HTTP behaviour of a real FastAPI app, through ``install()`` and each middleware alone: the app's own answers
(its HEAD handlers, its 401 and 403) are not replaced by ours."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import anyio
import httpx
import pytest
from fastapi import Depends, FastAPI, Header, HTTPException, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CollectorRegistry

import slipstream
from slipstream import CacheMiddleware, CompressionMiddleware, ConditionalMiddleware, Settings
from slipstream.instrumentation import Instrumentation
from tests.middleware.apps import TEXT
from tests.support import asgi_client, run_uvicorn

pytestmark = pytest.mark.anyio


def user(authorization: Annotated[str | None, Header()] = None) -> str:
    """The caller: no token is 401 (with a challenge), an unknown one 403."""
    if authorization is None:
        raise HTTPException(401, "log in first", headers={"WWW-Authenticate": 'Bearer realm="items"'})
    if authorization not in ("Bearer reader", "Bearer writer"):
        raise HTTPException(403, "unknown user")
    return authorization.removeprefix("Bearer ")


def writer(name: Annotated[str, Depends(user)]) -> str:
    if name != "writer":
        raise HTTPException(403, "read only")
    return name


class Items:
    """A FastAPI app whose GET and PUT of an item need a token (the dependencies above), counting writes."""

    def __init__(self) -> None:
        self.writes = 0
        self.app = FastAPI()

        @self.app.get("/items/{item_id}")
        def read_item(item_id: int, response: Response, name: Annotated[str, Depends(user)]) -> str:
            response.headers["etag"] = '"v1"'
            return f"item {item_id}"

        @self.app.put("/items/{item_id}")
        def write_item(item_id: int, name: Annotated[str, Depends(writer)]) -> str:
            self.writes += 1
            return "written"

        slipstream.install(self.app, Settings(metrics_port=None), registry=CollectorRegistry())


@pytest.mark.parametrize(
    ("authorization", "status"),
    [(None, 401), ("Bearer stranger", 403)],
    ids=["no-credentials", "forbidden"],
)
@pytest.mark.parametrize("precondition", [{"if-match": '"v1"'}, {"if-match": '"v0"'}, {"if-match": "*"}])
async def test_a_refused_write_is_answered_by_the_app_not_412(
    authorization: str | None, status: int, precondition: dict[str, str]
) -> None:
    items = Items()
    headers = dict(precondition)
    if authorization is not None:
        headers["authorization"] = authorization
    async with asgi_client(items.app) as client:
        result = await client.put("/items/1", headers=headers)
    assert result.status_code == status
    if status == 401:
        assert result.headers["www-authenticate"] == 'Bearer realm="items"'
    assert items.writes == 0


async def test_preconditions_still_guard_writes_the_caller_may_make() -> None:
    items = Items()
    writer = {"authorization": "Bearer writer"}
    async with asgi_client(items.app) as client:
        stale = await client.put("/items/1", headers={**writer, "if-match": '"v0"'})
        fresh = await client.put("/items/1", headers={**writer, "if-match": '"v1"'})
        missing = await client.put("/items/x", headers={**writer, "if-match": '"v1"'})
        # A reader's GET succeeds: with a current If-Match the write goes to the app, which refuses it.
        reader = await client.put("/items/1", headers={"authorization": "Bearer reader", "if-match": '"v1"'})
    assert (stale.status_code, fresh.status_code, items.writes) == (412, 200, 1)
    assert reader.status_code == 403
    assert missing.status_code == 422  # FastAPI's own validation answer: the GET failing is not "no item"


class Heads:
    """A FastAPI app with HEAD handlers of its own (one beside a GET), and a cacheable GET-only page."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.app = FastAPI()

        @self.app.head("/exists")
        def exists() -> Response:
            self.calls.append("HEAD /exists")
            return Response(headers={"x-exists": "yes"})

        @self.app.get("/doc")
        def read_doc() -> PlainTextResponse:
            self.calls.append("GET /doc")
            return PlainTextResponse(TEXT.decode(), headers={"cache-control": "max-age=60"})

        @self.app.head("/doc")
        def doc_head() -> Response:
            self.calls.append("HEAD /doc")
            return Response(headers={"x-handler": "head", "cache-control": "max-age=60"})

        @self.app.get("/page")
        def page() -> PlainTextResponse:
            self.calls.append("GET /page")
            return PlainTextResponse(TEXT.decode(), headers={"cache-control": "max-age=60"})


def installed(heads: Heads) -> None:
    slipstream.install(heads.app, Settings(metrics_port=None), registry=CollectorRegistry())


def alone(middleware: type[CacheMiddleware | CompressionMiddleware | ConditionalMiddleware]) -> Callable[[Heads], None]:
    def add(heads: Heads) -> None:
        heads.app.add_middleware(middleware, instrumentation=Instrumentation(registry=CollectorRegistry()))

    return add


@pytest.mark.parametrize(
    "setup", [installed, alone(CacheMiddleware), alone(ConditionalMiddleware)], ids=["install", "cache", "conditional"]
)
async def test_the_apps_own_head_handler_runs_and_other_heads_carry_what_get_does(
    setup: Callable[[Heads], None],
) -> None:
    heads = Heads()
    setup(heads)
    gzip = {"accept-encoding": "gzip"}
    async with asgi_client(heads.app) as client:
        exists = await client.head("/exists")
        doc_head = await client.head("/doc")
        doc = await client.get("/doc")
        doc_head_again = await client.head("/doc")
        page_head = await client.head("/page", headers=gzip)
        page = await client.get("/page", headers=gzip)
    assert (exists.status_code, exists.headers["x-exists"]) == (200, "yes")
    for head in (doc_head, doc_head_again):
        assert (head.status_code, head.headers["x-handler"], head.content) == (200, "head", b"")
    # The HEAD answers were not stored as the GET entry, nor served from it.
    assert doc.text == TEXT.decode() and doc.headers.get("x-cache", "MISS") == "MISS"
    # FastAPI's GET routes take no HEAD: slipstream runs it as GET, so it gets GET's headers.
    assert page_head.status_code == page.status_code == 200
    assert page_head.content == b""
    for name in ("etag", "content-type", "content-encoding", "vary", "cache-control"):
        assert page_head.headers.get(name) == page.headers.get(name), name
    assert heads.calls[:4] == ["HEAD /exists", "HEAD /doc", "GET /doc", "HEAD /doc"]


async def test_head_over_a_real_server_through_install() -> None:
    heads = Heads()
    installed(heads)

    def exchange(base: str) -> list[httpx.Response]:
        with httpx.Client(base_url=base) as client:
            requests = [("HEAD", "/exists"), ("GET", "/doc"), ("HEAD", "/doc"), ("HEAD", "/page"), ("GET", "/page")]
            return [client.request(method, path) for method, path in requests]

    with run_uvicorn(heads.app) as base:
        exists, doc, doc_head, page_head, page = await anyio.to_thread.run_sync(exchange, base)
    assert (exists.status_code, exists.headers["x-exists"]) == (200, "yes")
    assert (doc.status_code, doc.headers["x-cache"]) == (200, "MISS")
    assert (doc_head.headers["x-handler"], doc_head.headers["x-cache"]) == ("head", "BYPASS")
    assert (page_head.status_code, page_head.headers["x-cache"], page_head.content) == (200, "MISS", b"")
    assert page.headers["x-cache"] == "HIT"  # the HEAD, run as GET, filled the entry
    assert page_head.headers["etag"] == page.headers["etag"]
    assert page_head.headers["content-encoding"] == page.headers["content-encoding"]
