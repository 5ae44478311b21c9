"""Cache keys through the middleware: no request can plant an answer for another URL."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Scope

from slipstream import CacheMiddleware, Settings
from tests.middleware.test_cache import Origin, stack
from tests.support import asgi_client, http_scope, run_uvicorn

pytestmark = pytest.mark.anyio
CACHED = {"cache-control": "max-age=60"}


async def item(request: Request) -> Response:
    name = request.path_params["name"]
    if name != "widget":
        return PlainTextResponse(f"no item {name}", status_code=404, headers=CACHED)
    return PlainTextResponse(f"widget {request.query_params.get('id', '')}", headers=CACHED)


async def call_asgi_scope(app: ASGIApp, scope: Scope) -> list[Message]:
    """Drive ``app`` with a hand-made scope (a server's quirks); the messages it sent."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def items_app() -> Starlette:
    return Starlette(routes=[Route("/items/{name:str}", item)])


async def test_an_escaped_question_mark_cannot_plant_an_answer_for_a_query() -> None:
    app = stack(items_app())
    with run_uvicorn(app) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            planted = await client.get("/items/widget%3Fid=1")
            assert (planted.status_code, planted.text) == (404, "no item widget?id=1")
            victim = await client.get("/items/widget?id=1")
            assert (victim.status_code, victim.text, victim.headers["x-cache"]) == (200, "widget 1", "MISS")
            again = await client.get("/items/widget%3fid=1")  # lower-case hex: the same target
            assert (again.status_code, again.headers["x-cache"]) == (404, "HIT")


async def test_repeated_parameters_in_another_order_are_another_entry() -> None:
    async with asgi_client(stack(items_app())) as client:
        first = await client.get("/items/widget?id=2&id=1")
        second = await client.get("/items/widget?id=1&id=2")
        third = await client.get("/items/widget?id=2&id=1")
    assert (first.text, second.text, third.text) == ("widget 1", "widget 2", "widget 1")
    assert [r.headers["x-cache"] for r in (first, second, third)] == ["MISS", "MISS", "HIT"]


async def test_purge_url_takes_the_url_as_a_client_requests_it() -> None:
    app = stack(Origin())
    async with asgi_client(app) as client:
        await client.get("/items/caf%C3%A9?b=1&a=2&utm_source=mail")
        await client.get("/items/a%3Fb")
        assert await app.cache.purge_url("http://TestServer:80/items/café?a=2&b=1") == 1
        assert await app.cache.purge_url("http://testserver/items/a%3fb") == 1
        assert await app.cache.purge_url("http://testserver/items/a?b") == 0
        await client.get("/items/caf%C3%A9/1")
        assert await app.cache.purge_prefix("http://testserver/items/café") == 1
        await client.get("/other")
        assert await app.cache.purge_prefix("http://") == 1
        assert len(app.cache.memory) == 0


async def test_location_purges_use_the_key_of_the_target() -> None:
    origin = Origin()
    app = stack(origin)
    async with asgi_client(app) as client:
        await client.get("/items/caf%C3%A9?a=2&b=1")
        origin.headers = [("location", "/items/caf%c3%a9?b=1&a=2")]
        await client.post("/items")
        origin.headers = list(CACHED.items())
        assert (await client.get("/items/caf%C3%A9?a=2&b=1")).headers["x-cache"] == "MISS"


async def test_ignored_parameters_never_reach_the_app() -> None:
    async def landing(request: Request) -> Response:
        campaign = request.query_params.get("utm_source", "none")
        return PlainTextResponse(f"campaign {campaign}, a={request.query_params['a']}", headers=CACHED)

    app = stack(Starlette(routes=[Route("/landing", landing)]))
    async with asgi_client(app) as client:
        planted = await client.get("/landing?utm_source=%3Cscript%3E&a=1&gclid=x")
        victim = await client.get("/landing?a=1")
    assert (planted.text, victim.text) == ("campaign none, a=1", "campaign none, a=1")
    assert victim.headers["x-cache"] == "HIT"

    origin = Origin()
    scope = http_scope(path="/p")
    scope["query_string"] = b"utm_source=x&a=1&utm_medium=y&a=2"
    scope["raw_path"] = b"/p?utm_source=x&a=1&utm_medium=y&a=2"  # a server leaving the query in raw_path
    await call_asgi_scope(stack(origin), scope)
    assert (origin.seen[0]["query_string"], origin.seen[0]["raw_path"]) == (b"a=1&a=2", b"/p?a=1&a=2")


async def forwarded_links(request: Request) -> Response:
    """Builds absolute links from the forwarded host and scheme, as apps behind a proxy do."""
    host = request.headers.get("x-forwarded-host", "testserver")
    scheme = request.headers.get("x-forwarded-proto", "http")
    return PlainTextResponse(f"<a href='{scheme}://{host}/next'>", headers=CACHED)


async def test_key_headers_key_every_entry_on_the_fields_the_app_trusts() -> None:
    settings = Settings(cache_key_headers=("X-Forwarded-Host", "x-forwarded-proto"))
    for app in (
        stack(Starlette(routes=[Route("/", forwarded_links)]), settings),
        CacheMiddleware(Starlette(routes=[Route("/", forwarded_links)]), key_headers=("X-Forwarded-Host",)),
    ):
        async with asgi_client(app) as client:
            await client.get("/", headers={"x-forwarded-host": "evil.example"})
            victim = await client.get("/", headers={"x-forwarded-host": "shop.example"})
            again = await client.get("/", headers={"x-forwarded-host": " shop.example "})
        assert (victim.text, victim.headers["x-cache"]) == ("<a href='http://shop.example/next'>", "MISS")
        assert (again.text, again.headers["x-cache"]) == ("<a href='http://shop.example/next'>", "HIT")
    async with asgi_client(stack(Starlette(routes=[Route("/", forwarded_links)]), settings)) as client:
        await client.get("/", headers={"x-forwarded-host": "shop.example", "x-forwarded-proto": "http"})
        secure = await client.get("/", headers={"x-forwarded-host": "shop.example", "x-forwarded-proto": "https"})
    assert (secure.text, secure.headers["x-cache"]) == ("<a href='https://shop.example/next'>", "MISS")
