"""``Instrumentation``: everything one app's slipstream owns, in one object that ``install()`` builds.

It holds the metrics of one registry, the OpenTelemetry providers, the response cache, the slow-query store, the
instrumented engines, the target of ``@timed`` and the report, and the receivers that finished requests are handed
to. Middlewares, the SQLAlchemy hooks and the decorators are given it, or find it through the request's record
(``current_instrumentation()``): nothing app-scoped is a module global, so two apps in one process never see
each other's requests, queries, operations or cache entries.
"""

from __future__ import annotations

import functools
import gc
import logging
import weakref
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from prometheus_client import REGISTRY, CollectorRegistry, Histogram

from slipstream.config import Settings
from slipstream.exporters.compat import compat_metrics
from slipstream.exporters.http_metrics import HttpServerMetrics, OtelHttpMetrics
from slipstream.exporters.live.app import AppLive
from slipstream.exporters.metrics import LabelledChildren, Metrics
from slipstream.exporters.otel import Telemetry, TracerSource, configure_opentelemetry
from slipstream.exporters.prometheus import MetricsServer
from slipstream.exporters.report import Report
from slipstream.exporters.server_timing import BottleneckLog, ServerTiming
from slipstream.middleware.routes import RouteTemplates
from slipstream.record import OTHER_OPERATIONS, Receiver, RequestRecord, current_record

if TYPE_CHECKING:
    from slipstream.cache.response_cache import ResponseCache
    from slipstream.outbound.calls import Outbound
    from slipstream.sqlalchemy.hooks import EngineHooks
    from slipstream.sqlalchemy.slow import SlowQueries

log = logging.getLogger("slipstream")

# Distinct @timed names kept as label values; later ones are counted as "other".
MAX_OPERATION_LABELS = 200


class Instrumentation:
    """What one app's slipstream owns. ``install()`` builds one; a middleware added alone builds its own."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        registry: CollectorRegistry = REGISTRY,
        telemetry: Telemetry | None = None,
        cache: ResponseCache | None = None,
    ) -> None:
        self.settings = s = settings if settings is not None else Settings()
        self.registry = registry
        self.metrics = Metrics.register(registry, s.timing_buckets, s.metrics_multiprocess_flush_interval)
        # Our providers when otel_endpoint is set; otherwise the app's own, looked up at the first request.
        self.telemetry = telemetry if telemetry is not None else configure_opentelemetry(s)
        self.tracer_source = TracerSource(self.telemetry if s.tracing_enabled else None)
        self.cache = cache
        self.templates = RouteTemplates()
        self.operation_durations: LabelledChildren[Histogram] = LabelledChildren(
            self.metrics.operation_duration.labels, MAX_OPERATION_LABELS, OTHER_OPERATIONS
        )
        # The SQLAlchemy side, filled in by the first instrumented engine (the extra may not be installed).
        self.engines: weakref.WeakSet[EngineHooks] = weakref.WeakSet()
        self.slow_queries: SlowQueries | None = None
        self.report: Report | None = None
        if s.report_enabled:
            self.report = Report(self.metrics, slow_queries=self._slow_rows, index_hints=self._index_hints)
        self.metrics_server: MetricsServer | None = None
        # The live page's history and findings (live_enabled).
        self.live = AppLive(self) if s.live_enabled else None
        self.on_shutdown: list[Callable[[], object]] = [self.telemetry.shutdown]
        self.receivers: list[Receiver] = []
        # Whether any receiver adds response headers (timing copies the start message only then).
        self.adds_response_headers = False
        # The overridden hooks of the receivers, in order: timing calls these.
        self.on_request: list[Callable[[RequestRecord], None]] = []
        self.on_response: list[Callable[[RequestRecord, list[tuple[bytes, bytes]]], None]] = []
        self.on_finish: list[Callable[[RequestRecord], None]] = []
        for receiver in self._default_receivers():
            self.add_receiver(receiver)

    def _default_receivers(self) -> list[Receiver]:
        s = self.settings
        receivers: list[Receiver] = [HttpServerMetrics(self.metrics, s.timing_buckets)]
        compat = compat_metrics(self.registry, s.metrics_names)
        if compat is not None:
            receivers.append(compat)
        # Only with our own meter provider: the app's would count what its own instrumentation counts already.
        meter = self.telemetry.meter("slipstream") if self.telemetry.meter_provider is not None else None
        if meter is not None:
            receivers.append(OtelHttpMetrics(meter))
        if self.report is not None:
            receivers.append(self.report)
        # Server-Timing explains the request in a header as well as in the bottleneck log.
        explain = ServerTiming if s.timing_server_timing else BottleneckLog
        receivers.append(explain(s.timing_bottleneck_share))
        if self.live is not None:
            # After the explaining receiver, which names the bottleneck.
            receivers.append(self.live.findings)
        return receivers

    # Requests ------------------------------------------------------------------------------------------------

    def add_receiver(self, receiver: Receiver) -> None:
        """Hand every later request to ``receiver``: its overridden hooks are called, in the order added."""
        self.receivers.append(receiver)
        kind = type(receiver)
        if kind.request_started is not Receiver.request_started:
            self.on_request.append(receiver.request_started)
        if kind.response_started is not Receiver.response_started:
            self.on_response.append(receiver.response_started)
            self.adds_response_headers = True
        if kind.request_finished is not Receiver.request_finished:
            self.on_finish.append(receiver.request_finished)

    @property
    def tracer(self) -> trace.Tracer | None:
        return self.tracer_source.get()

    @functools.cached_property
    def outbound(self) -> Outbound:
        """The outbound-call metrics and rules (instrumented httpx clients, LLM usage), made on first use."""
        from slipstream.outbound.calls import Outbound

        return Outbound(self)

    # The database --------------------------------------------------------------------------------------------

    def _slow_rows(self) -> list[dict[str, Any]]:
        return self.slow_queries.snapshot() if self.slow_queries is not None else []

    def _index_hints(self) -> list[dict[str, Any]]:
        return [
            {
                "table": hint.table,
                "columns": list(hint.columns),
                "fingerprint": hint.fingerprint,
                "plan": hint.plan,
                "db_system_name": hint.dialect,
            }
            for hooks in list(self.engines)
            if hooks.index_advisor is not None
            for hint in hooks.index_advisor.hints
        ]

    # The app's lifespan --------------------------------------------------------------------------------------

    def start(self) -> None:
        """Lifespan startup: freeze the startup heap (``gc_freeze``); serve /metrics (and /report, the live page) on
        the metrics port, unless another process does; keep the live page's history when it is served anywhere."""
        s = self.settings
        if s.gc_freeze:
            # What the app built to start (modules, routes, settings) lives as long as the process: collecting
            # first leaves only that, which no collection need walk again.
            gc.collect()
            gc.freeze()
        serves_port = s.metrics_port is not None and s.metrics_multiprocess_dir is None
        if self.live is not None and (serves_port or s.live_path is not None):
            self.live.history.start()
        if s.metrics_port is None or s.metrics_multiprocess_dir is not None or self.metrics_server is not None:
            return
        try:
            self.metrics_server = MetricsServer(
                s.metrics_port,
                s.metrics_host,
                self.registry,
                bearer_token=s.metrics_bearer_token,
                allow_networks=s.metrics_allow_networks,
                report=self.report.json if self.report is not None else None,
                live=self.live.port_page if self.live is not None else None,
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
        self.metrics.writes.stop()
        if self.metrics_server is not None:
            self.metrics_server.stop()
            self.metrics_server = None
        if self.live is not None:
            self.live.history.stop()
        for hook in self.on_shutdown:
            try:
                hook()
            except Exception:
                log.exception("slipstream: a shutdown step failed")


_ambient: ContextVar[Instrumentation | None] = ContextVar("slipstream_instrumentation", default=None)


def current_instrumentation() -> Instrumentation | None:
    """The instrumentation of the request being served here, else of the app whose lifespan started this code."""
    record = current_record()
    return record.instrumentation if record is not None else _ambient.get()


def enter_app(instrumentation: Instrumentation) -> Token[Instrumentation | None]:
    """Make ``instrumentation`` the one code started from here finds (the app's lifespan calls this)."""
    return _ambient.set(instrumentation)


def leave_app(token: Token[Instrumentation | None]) -> None:
    _ambient.reset(token)
