"""Route templates for labels and span names: ``/users/{id}``, mounts and included routers resolved, never raw paths.

Starlette's router records the route it matched in ``scope["route"]``; inside a mount the inner router
overwrites it with the inner route (FastAPI, which includes routers lazily, records the inclusion too).
The full template of a route is its own path format prefixed by the mounts above it, which one walk of
the route tree from the top router finds; the walk is cached by route object and repeated only when a
route turns up that the last walk did not see (routes added later).
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterable
from typing import Any

from starlette.routing import Host, Match, Mount
from starlette.types import Scope

from slipstream.record import UNMATCHED_ROUTE

_MOUNT_SUFFIX = "/{path}"


class RouteTemplates:
    """Maps the route a request matched to its full path template."""

    def __init__(self) -> None:
        # id(route) -> (route, template); the route is kept so its id cannot be reused while mapped.
        self._templates: dict[int, tuple[object, str]] = {}
        self._lock = threading.Lock()

    def template(self, scope: Scope, top_scope: Scope) -> str | None:
        """The template of the request's route, or None when no route matched.

        ``scope`` is the innermost scope known (where the router wrote ``route``); ``top_scope`` is the one the
        outermost middleware got, used to match again when a middleware between hid the route from us.
        """
        route = scope.get("route")
        router = scope.get("router")
        included = scope.get("fastapi")
        if isinstance(included, dict):
            # FastAPI includes routers lazily: the context of the inclusion knows the route's full path, and
            # tells apart one route included under two prefixes.
            context = included.get("effective_route_context")
            if context is not None and getattr(context, "original_route", None) is route:
                route = context
        if route is None:
            router = _top_router(top_scope)
            if router is None:
                return None
            route = _rematch(getattr(router, "routes", ()), top_scope)
            if route is None:
                return None
        found = self._templates.get(id(route))
        if found is not None and found[0] is route:
            return found[1]
        with self._lock:
            if router is not None:
                for item, template in _walk(getattr(router, "routes", ()), ""):
                    known = self._templates.get(id(item))
                    # A route reachable twice keeps its first template; an id reused by a new object is replaced.
                    if known is None or known[0] is not item:
                        self._templates[id(item)] = (item, template)
            found = self._templates.get(id(route))
            if found is None or found[0] is not route:
                # Not under the top router (a bare route app, say): its own format is the best we know.
                found = self._templates[id(route)] = (route, _own_template(route))
        return found[1]


def app_handles_head(scope: Scope) -> bool:
    """Whether the app's router sends this HEAD request to a HEAD handler of its own rather than to a GET handler.

    Starlette serves HEAD with the GET route (``Route(methods=["GET"])`` also lists HEAD), and FastAPI's GET routes
    do not take HEAD at all: both run as GET in slipstream. A route that takes HEAD but not GET (FastAPI's
    ``@app.head``, ``Route(methods=["HEAD"])``) or an ``HTTPEndpoint`` with a ``head`` method is the app's own.
    Called for HEAD requests only (one walk of the routes); False when the app has no router to ask.
    """
    router = _top_router(scope)
    route = None if router is None else _full_match(getattr(router, "routes", ()), scope)
    if route is None:
        return False
    methods = getattr(route, "methods", None)
    if methods:
        return "HEAD" in methods and "GET" not in methods
    # A route without methods takes them all: an HTTPEndpoint class sends HEAD to its `head` method when it has one.
    endpoint = getattr(route, "endpoint", None)
    return inspect.isclass(endpoint) and hasattr(endpoint, "head")


def _full_match(routes: Iterable[Any], scope: Scope) -> object | None:
    """The route the router picks for ``scope`` (its first full match), inside mounts, hosts and included routers."""
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            # FastAPI's lazily included router: its routes, in the order it matches them.
            found = _full_match(contexts(), scope)
            if found is not None:
                return found
            continue
        match, child = route.matches(scope)
        if match is Match.FULL:
            # A mount or host that matches is where the router goes, whatever its own routes then say.
            return _full_match(route.routes, {**scope, **child}) if isinstance(route, (Mount, Host)) else route
    return None


def _top_router(scope: Scope) -> Any:
    app = scope.get("app")
    return getattr(app, "router", None) or scope.get("router")


def _own_template(route: object) -> str:
    template = getattr(route, "path_format", None)
    if not isinstance(template, str):
        return UNMATCHED_ROUTE
    return template


def _walk(routes: Iterable[object], prefix: str) -> Iterable[tuple[object, str]]:
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            for context in contexts():
                yield context, prefix + _own_template(context)
        elif isinstance(route, Mount):
            inner = prefix + route.path_format.removesuffix(_MOUNT_SUFFIX)
            yield route, inner + _MOUNT_SUFFIX
            yield from _walk(route.routes, inner)
        elif isinstance(route, Host):
            yield route, prefix or "/"
            yield from _walk(route.routes, prefix)
        else:
            yield route, prefix + _own_template(route)


def _rematch(routes: Iterable[object], scope: Scope) -> object | None:
    """Match the request against the route tree again (the slow way, only when the router's note is missing)."""
    partial = None
    for route in routes:
        matches = getattr(route, "matches", None)
        if matches is None:
            continue
        match, child = matches(scope)
        if match is Match.FULL:
            if isinstance(route, (Mount, Host)):
                inner = _rematch(route.routes, {**scope, **child})
                return inner if inner is not None else route
            return route
        if match is Match.PARTIAL and partial is None:
            partial = route
    return partial
