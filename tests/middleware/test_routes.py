"""RouteTemplates on its own: the cases the middleware tests do not reach."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Host, Mount, Route, Router

from slipstream.middleware.routes import RouteTemplates
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
