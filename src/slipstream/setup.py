"""The one-call setup: every enabled middleware, composed in the order DESIGN.md gives, and the exporters."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client import REGISTRY, CollectorRegistry
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slipstream.cache.decorator import set_default_cache
from slipstream.cache.response_cache import ResponseCache
from slipstream.config import Settings
from slipstream.exporters.metrics import metrics_for
from slipstream.exporters.otel import configure_opentelemetry
from slipstream.exporters.prometheus import MetricsAccess, MetricsApp, MetricsServer
from slipstream.exporters.report import Report, ReportApp
from slipstream.middleware.cache import CacheMiddleware
from slipstream.middleware.compression import CompressionMiddleware
from slipstream.middleware.conditional import ConditionalMiddleware
from slipstream.middleware.timing import TimingMiddleware
from slipstream.sqlalchemy.hooks import instrument_sqlalchemy
from slipstream.timed import configure_timed

log = logging.getLogger("slipstream")


@dataclass
class Installation:
    """What ``install`` set up. The metrics server exists between the app's lifespan startup and shutdown."""

    settings: Settings
    cache: ResponseCache | None
    report: Report | None = None
    metrics_server: MetricsServer | None = None
    on_shutdown: list[Callable[[], object]] = field(default_factory=list)

    def start(self, registry: CollectorRegistry) -> None:
        """Lifespan startup: serve /metrics (and /report) on the metrics port, unless another process does."""
        s = self.settings
        if s.metrics_port is None or s.metrics_multiprocess_dir is not None or self.metrics_server is not None:
            return
        try:
            self.metrics_server = MetricsServer(
                s.metrics_port,
                s.metrics_host,
                registry,
                bearer_token=s.metrics_bearer_token,
                allow_networks=s.metrics_allow_networks,
                report=self.report.json if self.report is not None else None,
            )
        except OSError as error:
            # Another worker holds the port, say: the app serves on, and says how to fix it.
            log.warning(
                "slipstream: cannot serve metrics on %s:%s (%s); with several workers set PROMETHEUS_MULTIPROC_DIR "
                "and run `slipstream sidecar`",
                s.metrics_host,
                s.metrics_port,
                error,
            )

    def stop(self) -> None:
        """Lifespan shutdown: stop the metrics server and flush the exporters."""
        if self.metrics_server is not None:
            self.metrics_server.stop()
            self.metrics_server = None
        for hook in self.on_shutdown:
            try:
                hook()
            except Exception:
                log.exception("slipstream: a shutdown step failed")


def install(
    app: Starlette,
    settings: Settings | None = None,
    registry: CollectorRegistry = REGISTRY,
    *,
    engines: Iterable[Engine | AsyncEngine] = (),
) -> Installation:
    """Add slipstream's middlewares to a Starlette or FastAPI app, and instrument the SQLAlchemy ``engines`` given.

    Order, outermost first: the metrics/report endpoints and lifespan hooks, timing, cache, compression,
    conditional requests, then the app. Starlette puts the middleware added last outermost, so they are
    added inner first. The cache is also on ``app.state.slipstream_cache``, for purges from endpoints.
    """
    settings = settings or Settings.from_env()
    # First, so the histograms get the configured buckets whichever middleware asks for them first.
    metrics = metrics_for(registry, settings.timing_buckets)
    if settings.conditional_enabled:
        app.add_middleware(ConditionalMiddleware, settings=settings, registry=registry)
    if settings.compression_enabled:
        app.add_middleware(CompressionMiddleware, settings=settings, registry=registry)
    cache = None
    if settings.cache_enabled:
        cache = ResponseCache.from_settings(settings)
        app.add_middleware(CacheMiddleware, settings=settings, cache=cache, registry=registry)
        app.state.slipstream_cache = cache
        set_default_cache(cache)
    installation = Installation(settings, cache, Report(registry) if settings.report_enabled else None)
    # Our providers when otel_endpoint is set; otherwise the app's own, looked up at the first request.
    telemetry = configure_opentelemetry(settings)
    installation.on_shutdown.append(telemetry.shutdown)
    configure_timed(metrics.operation_duration, telemetry)
    for engine in engines:
        instrument_sqlalchemy(engine, settings=settings, registry=registry, tracer=telemetry)
    if settings.timing_enabled:
        app.add_middleware(
            TimingMiddleware,
            settings=settings,
            registry=registry,
            tracer=telemetry,
            meter=telemetry.meter("slipstream") if telemetry.meter_provider is not None else None,
            report=installation.report,
        )
    app.add_middleware(_Outermost, installation=installation, registry=registry)
    app.state.slipstream = installation
    return installation


class _Outermost:
    """Runs the installation's lifespan steps and answers its own paths (metrics, report) before anything else."""

    def __init__(self, app: ASGIApp, *, installation: Installation, registry: CollectorRegistry) -> None:
        self.app = app
        self.installation = installation
        self.registry = registry
        s = installation.settings
        self.endpoints: dict[str, ASGIApp] = {}
        if s.metrics_path is not None:
            self.endpoints[s.metrics_path] = MetricsApp(
                registry, bearer_token=s.metrics_bearer_token, allow_networks=s.metrics_allow_networks
            )
        if s.report_path is not None and installation.report is not None:
            access = MetricsAccess(s.metrics_bearer_token, s.metrics_allow_networks)
            self.endpoints[s.report_path] = ReportApp(installation.report, access)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._on_startup(receive), self._on_shutdown(send))
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
                self.installation.start(self.registry)
            return message

        return started

    def _on_shutdown(self, send: Send) -> Send:
        async def stopping(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                self.installation.stop()
            await send(message)

        return stopping
