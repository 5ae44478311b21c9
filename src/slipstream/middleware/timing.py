"""TimingMiddleware: one server span, the HTTP metrics and Server-Timing for every request, measured outermost.

It opens the request's record (see ``slipstream.record``), which the cache, ``@timed`` and the database hooks
write to, and closes the books when the last body chunk has been handed to the server: background tasks,
which Starlette runs after that, are not part of the request's latency. Labels are bounded: the method
(unknown ones are ``_OTHER``), the route template (``__unmatched__`` when none matched), the status code.
"""

from __future__ import annotations

import bisect
import logging
import time
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.metrics import Histogram as OtelHistogram
from opentelemetry.metrics import Meter
from prometheus_client import REGISTRY, CollectorRegistry, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slipstream.config import Settings
from slipstream.exporters.compat import CompatMetrics, compat_metrics
from slipstream.exporters.metrics import metrics_for
from slipstream.exporters.otel import APP_PROVIDERS, Telemetry, TracerSource
from slipstream.exporters.report import Report
from slipstream.middleware.routes import UNMATCHED_ROUTE, RouteTemplates
from slipstream.record import DatabaseHooks, RequestRecord, close_record, open_record

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
_PROPAGATION_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})
_TOKEN_CHARACTERS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")

_DECODED_HEADERS = 1024
# Seconds between exemplars of one bucket of one series.
EXEMPLAR_INTERVAL = 1.0

log = logging.getLogger("slipstream.timing")
sql_log = logging.getLogger("slipstream.sql")


class TimingMiddleware:
    """Times every HTTP request from the outside: spans, duration/TTFB/size histograms, Server-Timing."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings | None = None,
        server_timing: bool | None = None,
        bottleneck_share: float | None = None,
        buckets: tuple[float, ...] | None = None,
        metrics_names: str | None = None,
        registry: CollectorRegistry | None = None,
        tracer: trace.Tracer | Telemetry | None = APP_PROVIDERS,
        meter: Meter | None = None,
        report: Report | None = None,
    ) -> None:
        s = (settings or Settings()).with_options(
            "timing_", server_timing=server_timing, bottleneck_share=bottleneck_share, buckets=buckets
        )
        s = s.with_options("metrics_", names=metrics_names)
        self.app = app
        registry = registry or REGISTRY
        metrics = metrics_for(registry, s.timing_buckets)
        self.duration = metrics.request_duration
        self.time_to_first_byte = metrics.time_to_first_byte
        self.request_size = metrics.request_body_size
        self.response_size = metrics.response_body_size
        self.active = metrics.active_requests
        self.queries_per_request = metrics.db_queries_per_request
        self.n_plus_one = metrics.db_n_plus_one
        self.compat: CompatMetrics | None = compat_metrics(registry, s.metrics_names)
        self.server_timing = s.timing_server_timing
        self.bottleneck_share = s.timing_bottleneck_share
        self.tracing = s.tracing_enabled
        # By default the app's global provider (when it is a real one), looked up at the first request.
        self._tracer = TracerSource(tracer if s.tracing_enabled else None)
        self.otel_duration: OtelHistogram | None = None
        if meter is not None:
            self.otel_duration = meter.create_histogram(
                "http.server.request.duration", unit="s", description="Duration of HTTP server requests."
            )
        self.report = report
        self.templates = RouteTemplates()
        # Labelled children, bound once per label set (each set is bounded, so these are too).
        self._by_response: dict[tuple[str, str, int], tuple[Histogram, Histogram]] = {}
        self._by_route: dict[tuple[str, str], tuple[Histogram, Histogram]] = {}
        self._active: dict[str, Gauge] = {}
        self._queries: dict[str, Histogram] = {}
        self._operation_tokens: dict[str, str] = {}
        # Span attributes from Host and User-Agent values, decoded once (bounded).
        self.decoded_hosts: dict[bytes, dict[str, Any]] = {}
        self.decoded_agents: dict[bytes, dict[str, Any]] = {}
        # When each (series, bucket) may take its next exemplar: Prometheus keeps one per bucket, so one a second
        # per bucket shows the same and skips most of the cost of attaching them.
        self._buckets = s.timing_buckets
        self._exemplar_due: dict[tuple[int, int], float] = {}

    @property
    def tracer(self) -> trace.Tracer | None:
        return self._tracer.get()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(self, scope, receive, send)
        token = open_record(exchange.record)
        method = exchange.method
        active = self._active.get(method)
        if active is None:
            active = self._active[method] = self.active.labels(method)
        active.inc()
        if self.compat is not None:
            self.compat.started(method)
        tracer = self.tracer
        context_token = None
        if tracer is not None:
            context_token = exchange.start_span(tracer)
        try:
            await self.app(scope, exchange.receive if exchange.counting else receive, exchange.send)
        except BaseException as error:
            exchange.fail(error)
            raise
        finally:
            if not exchange.finished:
                exchange.finish()
            active.dec()
            if context_token is not None:
                otel_context.detach(context_token)
            close_record(token)

    def response_children(self, method: str, route: str, status: int) -> tuple[Histogram, Histogram]:
        key = (method, route, status)
        found = self._by_response.get(key)
        if found is None:
            labels = (method, route, str(status))
            found = self._by_response[key] = (self.duration.labels(*labels), self.response_size.labels(*labels))
        return found

    def queries_child(self, route: str) -> Histogram:
        found = self._queries.get(route)
        if found is None:
            found = self._queries[route] = self.queries_per_request.labels(route)
        return found

    def route_children(self, method: str, route: str) -> tuple[Histogram, Histogram]:
        key = (method, route)
        found = self._by_route.get(key)
        if found is None:
            found = self._by_route[key] = (
                self.time_to_first_byte.labels(method, route),
                self.request_size.labels(method, route),
            )
        return found

    def exemplar_due(self, series: Histogram, seconds: float, now: float) -> bool:
        key = (id(series), bisect.bisect_left(self._buckets, seconds))
        if now < self._exemplar_due.get(key, 0.0):
            return False
        self._exemplar_due[key] = now + EXEMPLAR_INTERVAL
        return True

    def operation_token(self, name: str) -> str:
        """A Server-Timing metric name for an operation: its name with non-token characters replaced."""
        found = self._operation_tokens.get(name)
        if found is None:
            found = "".join(c if c in _TOKEN_CHARACTERS else "-" for c in name) or "-"
            if len(self._operation_tokens) < 1000:
                self._operation_tokens[name] = found
        return found


class _Exchange:
    """One request's timing state; lives for the request only."""

    __slots__ = (
        "counting",
        "downstream",
        "error",
        "finished",
        "first_byte",
        "method",
        "middleware",
        "record",
        "request_size",
        "response_size",
        "scope",
        "span",
        "start_headers",
        "status",
        "upstream",
    )

    def __init__(self, middleware: TimingMiddleware, scope: Scope, receive: Receive, send: Send) -> None:
        self.middleware = middleware
        self.scope = scope
        self.upstream = receive
        self.downstream = send
        self.record = RequestRecord(scope, time.perf_counter())
        method: str = scope["method"]
        self.method = method if method in KNOWN_METHODS else "_OTHER"
        self.status = 0
        self.first_byte = 0.0
        self.response_size = 0
        self.request_size = 0
        self.counting = False
        self.finished = False
        self.error: BaseException | None = None
        self.span: trace.Span | None = None
        self.start_headers: Any = ()
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    self.request_size = int(value)
                except ValueError:
                    pass
                break
            if key == b"transfer-encoding":
                self.counting = True

    def start_span(self, tracer: trace.Tracer) -> Token[Context]:
        scope = self.scope
        attributes: dict[str, Any] = {
            "http.request.method": self.method,
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
            "network.protocol.version": scope.get("http_version", "1.1"),
        }
        if self.method == "_OTHER":
            attributes["http.request.method_original"] = scope["method"]
        client = scope.get("client")
        if client:
            attributes["client.address"] = client[0]
        carrier: dict[str, str] = {}
        middleware = self.middleware
        for key, value in scope["headers"]:
            if key == b"host" or key == b"user-agent":
                decoded = middleware.decoded_hosts if key == b"host" else middleware.decoded_agents
                found = decoded.get(value)
                if found is None:
                    found = _header_attributes(key, value)
                    if len(decoded) < _DECODED_HEADERS:
                        decoded[value] = found
                attributes.update(found)
            elif key in _PROPAGATION_HEADERS:
                carrier[key.decode()] = value.decode("latin-1")
        parent = propagate.extract(carrier) if carrier else None
        self.span = span = tracer.start_span(
            self.method if self.method != "_OTHER" else "HTTP",
            context=parent,
            kind=trace.SpanKind.SERVER,
            attributes=attributes,
        )
        return otel_context.attach(trace.set_span_in_context(span, parent))

    async def receive(self) -> Message:
        message: Message = await self.upstream()
        if message["type"] == "http.request":
            self.request_size += len(message.get("body", b""))
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            self.response_size += len(message.get("body", b""))
            await self.downstream(message)
            if not message.get("more_body", False):
                self.finish()
            return
        if kind == "http.response.start":
            self.status = message["status"]
            self.first_byte = time.perf_counter()
            if self.middleware.server_timing:
                header = (b"server-timing", self.server_timing(self.first_byte))
                message = {**message, "headers": [*message.get("headers", ()), header]}
            self.start_headers = message.get("headers", ())
            await self.downstream(message)
            return
        await self.downstream(message)
        if kind == "http.response.pathsend":
            self.response_size = next((int(v) for k, v in self.start_headers if k.lower() == b"content-length"), 0)
            self.finish()

    def server_timing(self, now: float) -> bytes:
        record = self.record
        elapsed = now - record.start
        if not record.operations and not record.db_queries:
            # The common case, in one step.
            if record.cache is None:
                return b"app;dur=%.3f" % (elapsed * 1000)
            return b'app;dur=%.3f, cache;desc="%s"' % (elapsed * 1000, record.cache.encode())
        parts = [f"app;dur={elapsed * 1000:.3f}"]
        if record.cache is not None:
            parts.append(f'cache;desc="{record.cache}"')
        if record.db_queries:
            parts.append(f'db;dur={record.db_time * 1000:.3f};desc="{record.db_queries} queries"')
        slowest = record.slowest_operation()
        bottleneck = slowest[0] if slowest and slowest[1] > self.middleware.bottleneck_share * elapsed else None
        for name, (calls, seconds) in record.operations.items():
            entry = f"{self.middleware.operation_token(name)};dur={seconds * 1000:.3f}"
            notes = [f"{int(calls)} calls"] if calls > 1 else []
            if name == bottleneck:
                notes.append("bottleneck")
            parts.append(f'{entry};desc="{", ".join(notes)}"' if notes else entry)
        return ", ".join(parts).encode("latin-1")

    def fail(self, error: BaseException) -> None:
        self.error = error
        if not self.status:
            # Nothing was sent: the server (or Starlette's ServerErrorMiddleware) answers 500.
            self.status = 500
        if not self.finished:
            self.finish()

    def finish(self) -> None:
        now = time.perf_counter()
        self.finished = True
        middleware = self.middleware
        record = self.record
        seconds = now - record.start
        status = self.status or 500
        route = record.route
        if route is None:
            route = record.route = middleware.templates.template(record.scope, self.scope)
        label = route or UNMATCHED_ROUTE
        method = self.method
        duration, response_size = middleware.response_children(method, label, status)
        span = self.span
        context = span.get_span_context() if span is not None else None
        if context is not None and context.trace_flags.sampled and middleware.exemplar_due(duration, seconds, now):
            duration.observe(seconds, {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"})
        else:
            duration.observe(seconds)
        response_size.observe(self.response_size)
        time_to_first_byte, request_size = middleware.route_children(method, label)
        if self.first_byte:
            time_to_first_byte.observe(self.first_byte - record.start)
        if self.request_size or self.counting:
            # Requests without a body (most GETs) are not observed: the histogram describes bodies.
            request_size.observe(self.request_size)
        if middleware.compat is not None:
            middleware.compat.finished(method, route, status, seconds, self.request_size, self.response_size)
        slowest = record.slowest_operation()
        if slowest is not None and slowest[1] > middleware.bottleneck_share * seconds:
            record.bottleneck = slowest[0]
            log.info(
                "bottleneck: %s took %.1f ms of %.1f ms in %s %s",
                slowest[0],
                slowest[1] * 1000,
                seconds * 1000,
                method,
                label,
                extra={"operation": slowest[0], "http_route": label, "share": slowest[1] / seconds},
            )
        if record.db_queries or DatabaseHooks.engines:
            middleware.queries_child(label).observe(record.db_queries)
        if record.n_plus_one:
            self._report_n_plus_one(label, span)
        if middleware.otel_duration is not None:
            attributes: dict[str, str | int] = {"http.request.method": method, "http.response.status_code": status}
            if route is not None:
                attributes["http.route"] = route
            middleware.otel_duration.record(seconds, attributes)
        if span is not None:
            self._end_span(span, route, status)
        if middleware.report is not None:
            middleware.report.observe(method, label, status, seconds, record)

    def _report_n_plus_one(self, route: str, span: trace.Span | None) -> None:
        """One SELECT fingerprint ran at least the threshold times: log it, count the request, mark the span."""
        record = self.record
        self.middleware.n_plus_one.labels(route).inc()
        for text, caller in record.n_plus_one.items():
            count = record.fingerprints.get(text, 0)
            sql_log.warning(
                "N+1: %d executions of %s in %s %s, first reaching the threshold from %s",
                count,
                text,
                self.method,
                route,
                caller,
                extra={"fingerprint": text, "count": count, "http_route": route, "caller": caller},
            )
            if span is not None:
                event: dict[str, Any] = {"db.query.text": text, "slipstream.count": count}
                if caller is not None:
                    event["code.location"] = caller
                span.add_event("slipstream.n_plus_one", event)

    def _end_span(self, span: trace.Span, route: str | None, status: int) -> None:
        attributes: dict[str, Any] = {"http.response.status_code": status}
        if route is not None:
            span.update_name(f"{self.method} {route}" if self.method != "_OTHER" else f"HTTP {route}")
            attributes["http.route"] = route
        record = self.record
        if record.cache is not None:
            attributes["slipstream.cache"] = record.cache
        if record.bottleneck is not None:
            attributes["slipstream.bottleneck"] = record.bottleneck
        span.set_attributes(attributes)
        error = self.error
        if error is not None:
            span.record_exception(error)
            span.set_attribute("error.type", type(error).__qualname__)
            span.set_status(trace.Status(trace.StatusCode.ERROR, type(error).__qualname__))
        elif status >= 500:
            span.set_attribute("error.type", str(status))
            span.set_status(trace.Status(trace.StatusCode.ERROR))
        span.end()


def _split_host(value: str) -> tuple[str, int | None]:
    """A Host field's name (IPv6 literals without brackets) and port."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, colon, port = value.rpartition(":")
        if not colon:
            host, port = value, ""
    return host, int(port) if port.isdigit() else None


def _header_attributes(key: bytes, value: bytes) -> dict[str, Any]:
    text = value.decode("latin-1")
    if key == b"user-agent":
        return {"user_agent.original": text}
    host, port = _split_host(text)
    return {"server.address": host} if port is None else {"server.address": host, "server.port": port}
