"""The one-call setup: every enabled middleware, composed in the order DESIGN.md gives, around one Instrumentation."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slipstream.config import Settings
from slipstream.exporters.prometheus import MetricsAccess, MetricsApp
from slipstream.exporters.report import ReportApp
from slipstream.extras import needs_extra
from slipstream.instrumentation import Instrumentation, enter_app, leave_app
from slipstream.middleware.cache import CacheMiddleware
from slipstream.middleware.compression import CompressionMiddleware
from slipstream.middleware.conditional import ConditionalMiddleware
from slipstream.middleware.timing import TimingMiddleware

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine


def install(
    app: Starlette,
    settings: Settings | None = None,
    registry: CollectorRegistry = REGISTRY,
    *,
    engines: Iterable[Engine | AsyncEngine] = (),
    http_clients: Iterable[Any] = (),
) -> Instrumentation:
    """Add slipstream's middlewares to a Starlette or FastAPI app, and instrument the SQLAlchemy ``engines`` and
    the httpx clients (``httpx.Client`` / ``httpx.AsyncClient``) given.

    Order, outermost first: the metrics/report endpoints and lifespan hooks, timing, cache, compression,
    conditional requests, then the app. Starlette puts the middleware added last outermost, so they are
    added inner first. Returns the app's ``Instrumentation`` (also ``app.state.slipstream``); its cache is also
    ``app.state.slipstream_cache``, for purges from endpoints.
    """
    settings = settings if settings is not None else Settings.from_env()
    instrumentation = Instrumentation(settings, registry=registry)
    engines = list(engines)
    if engines:
        _instrument_engines(instrumentation, engines)
    clients = list(http_clients)
    if clients:
        from slipstream.outbound.httpx_client import instrument_httpx

        for client in clients:
            instrument_httpx(client, instrumentation=instrumentation)
        instrumentation.outbound  # noqa: B018 - registers the outbound metrics now, so a scrape shows them
    if settings.conditional_enabled:
        app.add_middleware(ConditionalMiddleware.from_settings, settings=settings, instrumentation=instrumentation)
    if settings.compression_enabled:
        app.add_middleware(CompressionMiddleware.from_settings, settings=settings, instrumentation=instrumentation)
    if settings.cache_enabled:
        from slipstream.cache.response_cache import ResponseCache

        instrumentation.cache = ResponseCache.from_settings(settings)
        app.add_middleware(CacheMiddleware.from_settings, settings=settings, instrumentation=instrumentation)
        app.state.slipstream_cache = instrumentation.cache
    if settings.timing_enabled:
        app.add_middleware(TimingMiddleware, instrumentation=instrumentation)
    app.add_middleware(_Outermost, instrumentation=instrumentation)
    app.state.slipstream = instrumentation
    return instrumentation


def _instrument_engines(instrumentation: Instrumentation, engines: list[Engine | AsyncEngine]) -> None:
    with needs_extra("engines=[...]", "sqlalchemy"):
        from slipstream.sqlalchemy.hooks import instrument_sqlalchemy
    for engine in engines:
        if not hasattr(engine, "dialect") and not hasattr(engine, "sync_engine"):
            raise TypeError(f"engines must be SQLAlchemy Engine or AsyncEngine objects, got {engine!r}")
        instrument_sqlalchemy(engine, instrumentation=instrumentation)


class _Outermost:
    """Runs the instrumentation's lifespan steps and answers its own paths (metrics, report, live page) before
    anything else."""

    def __init__(self, app: ASGIApp, *, instrumentation: Instrumentation) -> None:
        self.app = app
        self.instrumentation = instrumentation
        s = instrumentation.settings
        self.endpoints: dict[str, ASGIApp] = {}
        if s.metrics_path is not None:
            self.endpoints[s.metrics_path] = MetricsApp(
                instrumentation.registry, bearer_token=s.metrics_bearer_token, allow_networks=s.metrics_allow_networks
            )
        if s.report_path is not None and instrumentation.report is not None:
            access = MetricsAccess(s.metrics_bearer_token, s.metrics_allow_networks)
            self.endpoints[s.report_path] = ReportApp(instrumentation.report, access)
        live = instrumentation.live.app_page if instrumentation.live is not None else None
        if live is not None:
            self.endpoints.update(dict.fromkeys(live.paths, live))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            # Code the app's startup starts (background workers, say) runs for this app: @timed and @cached
            # find its instrumentation.
            token = enter_app(self.instrumentation)
            try:
                await self.app(scope, self._on_startup(receive), self._on_shutdown(send))
            finally:
                leave_app(token)
            return
        if self.endpoints and scope["type"] == "http":
            endpoint = self.endpoints.get(scope["path"])
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _on_startup(self, receive: Receive) -> Receive:
        async def started() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.instrumentation.start()
            return message

        return started

    def _on_shutdown(self, send: Send) -> Send:
        async def stopping(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                self.instrumentation.stop()
            await send(message)

        return stopping
