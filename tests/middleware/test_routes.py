"""RouteTemplates on its own: the cases the middleware tests do not reach."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Host, Mount, Route, Router
from starlette.types import ASGIApp

from slipstream.middleware.routes import RouteTemplates, app_handles_head
from slipstream.record import UNMATCHED_ROUTE
from tests.support import http_scope


async def endpoint(request: Request) -> Response:
    return PlainTextResponse("")


def test_a_route_outside_any_known_router_keeps_its_own_format() -> None:
    route = Route("/alone/{x}", endpoint)
    scope = {**http_scope(), "route": route}
    assert RouteTemplates().template(scope, scope) == "/alone/{x}"


def test_a_route_without_a_path_format_is_unmatched() -> None:
    scope = {**http_scope(), "route": BaseRoute()}
    assert RouteTemplates().template(scope, scope) == UNMATCHED_ROUTE


def test_routes_added_after_the_first_walk_are_found() -> None:
    app = Starlette(routes=[Route("/a", endpoint)])
    templates = RouteTemplates()
    first = {**http_scope(), "router": app.router, "route": app.router.routes[0]}
    assert templates.template(first, first) == "/a"
    app.router.routes.append(Mount("/late", routes=[Route("/{n}", endpoint)]))
    late = app.router.routes[-1].routes[0]  # type: ignore[attr-defined]
    second = {**http_scope(), "router": app.router, "route": late}
    assert templates.template(second, second) == "/late/{n}"


def test_matching_again_walks_hosts_and_mounts_and_prefers_full_matches() -> None:
    inner = Router([Route("/panel", endpoint, methods=["POST"]), Route("/panel", endpoint, methods=["GET"])])
    app = Starlette(routes=[Host("admin.example", inner), Mount("/files", routes=[])])
    templates = RouteTemplates()

    def template(path: str, host: str = "example") -> str | None:
        scope = {**http_scope(path=path, headers=[("host", host)]), "app": app}
        return templates.template(scope, scope)

    assert template("/panel", "admin.example") == "/panel"
    assert template("/files/x") == "/files/{path}"
    assert template("/nothing") is None
    no_app = http_scope()
    assert templates.template(no_app, no_app) is None


class WithHead(HTTPEndpoint):
    async def get(self, request: Request) -> Response:
        return PlainTextResponse("get")

    async def head(self, request: Request) -> Response:
        return Response(headers={"x-head": "own"})


class WithoutHead(HTTPEndpoint):
    async def get(self, request: Request) -> Response:
        return PlainTextResponse("get")


def fastapi_app() -> FastAPI:
    app = FastAPI()
    router = APIRouter()

    @router.get("/both")
    def both_get() -> str:
        return "get"

    @router.head("/both")
    def both_head() -> None:
        return None

    @router.get("/get-only")
    def get_only() -> str:
        return "get"

    app.include_router(router, prefix="/api")
    inner = APIRouter()
    inner.add_api_route("/deep", both_head, methods=["HEAD"])
    outer = APIRouter()
    outer.include_router(inner, prefix="/inner")
    app.include_router(outer, prefix="/outer")

    @app.head("/exists")
    def exists() -> None:
        return None

    @app.get("/page")
    def page() -> str:
        return "page"

    return app


STARLETTE = Starlette(
    routes=[
        Route("/get", endpoint),
        Route("/head", endpoint, methods=["HEAD"]),
        Route("/shadowed", endpoint, methods=["GET"]),
        Route("/shadowed", endpoint, methods=["HEAD"]),
        Route("/post-then-head", endpoint, methods=["POST"]),
        Route("/post-then-head", endpoint, methods=["HEAD"]),
        Route("/with-head", WithHead),
        Route("/without-head", WithoutHead),
        Mount("/sub", routes=[Route("/head", endpoint, methods=["HEAD"])]),
        Mount("/raw", app=PlainTextResponse("raw")),
        Route("/sub/unreachable", endpoint, methods=["HEAD"]),  # the mount above takes /sub/...
        Host("admin.example", Router([Route("/head", endpoint, methods=["HEAD"])])),
    ]
)


@pytest.mark.parametrize(
    ("app", "path", "own"),
    [
        (STARLETTE, "/get", False),  # Starlette adds HEAD to GET routes: the GET handler answers HEAD
        (STARLETTE, "/head", True),
        (STARLETTE, "/shadowed", False),  # the router picks the first route taking HEAD
        (STARLETTE, "/post-then-head", True),
        (STARLETTE, "/with-head", True),
        (STARLETTE, "/without-head", False),
        (STARLETTE, "/sub/head", True),
        (STARLETTE, "/sub/unreachable", False),
        (STARLETTE, "/raw/x", False),
        (STARLETTE, "/nothing", False),
        (fastapi_app(), "/exists", True),
        (fastapi_app(), "/page", False),  # FastAPI's GET routes take no HEAD: slipstream runs HEAD as GET
        (fastapi_app(), "/api/both", True),
        (fastapi_app(), "/api/get-only", False),
        (fastapi_app(), "/outer/inner/deep", True),
        (fastapi_app(), "/api/nothing", False),
        (PlainTextResponse("no router"), "/", False),
    ],
)
def test_app_handles_head(app: ASGIApp, path: str, own: bool) -> None:
    scope = {**http_scope("HEAD", path), "app": app}
    assert app_handles_head(scope) is own


def test_app_handles_head_on_a_host() -> None:
    scope = {**http_scope("HEAD", "/head", headers=[("host", "admin.example")]), "app": STARLETTE}
    assert app_handles_head(scope) is True
    assert app_handles_head(http_scope("HEAD", "/head")) is False  # no app in the scope: nothing to ask
