"""A real OTLP/HTTP receiver in the test process: what an OpenTelemetry collector would be sent, decoded.

``run_otlp_receiver()`` serves POST /v1/traces and /v1/metrics (protobuf, plain, gzip or deflate) on a free
loopback port from a thread, and keeps every span and metric point it is sent for the test to look at.
"""

from __future__ import annotations

import contextlib
import gzip
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

Attributes = dict[str, Any]
# An empty Export*ServiceResponse is a full success: no partial_success, nothing rejected.
EMPTY_TRACE_RESPONSE: bytes = ExportTraceServiceResponse().SerializeToString()
EMPTY_METRICS_RESPONSE: bytes = ExportMetricsServiceResponse().SerializeToString()


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str  # 32 hex digits, as in traceparent
    span_id: str
    parent_span_id: str | None
    attributes: Attributes
    resource: Attributes
    scope: str


@dataclass(frozen=True)
class ReceivedPoint:
    """One data point: ``value`` for sums and gauges; ``count``, ``sum`` and buckets for histograms."""

    attributes: Attributes
    value: float | None = None
    count: int | None = None
    sum: float | None = None
    bucket_counts: tuple[int, ...] = ()
    explicit_bounds: tuple[float, ...] = ()


@dataclass(frozen=True)
class ReceivedMetric:
    name: str
    kind: str  # the OTLP data field: "sum", "gauge", "histogram", "exponential_histogram" or "summary"
    unit: str
    points: tuple[ReceivedPoint, ...]
    resource: Attributes
    scope: str


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    content_type: str | None
    content_encoding: str | None


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return None if kind is None else getattr(value, kind)


def _attributes(pairs: Iterable[KeyValue]) -> Attributes:
    return {pair.key: _value(pair.value) for pair in pairs}


def _point(point: Any, kind: str) -> ReceivedPoint:
    if kind in ("sum", "gauge"):
        number = point.as_double if point.WhichOneof("value") == "as_double" else point.as_int
        return ReceivedPoint(_attributes(point.attributes), value=number)
    return ReceivedPoint(
        _attributes(point.attributes),
        count=point.count,
        sum=point.sum,
        bucket_counts=tuple(getattr(point, "bucket_counts", ())),
        explicit_bounds=tuple(getattr(point, "explicit_bounds", ())),
    )


class OTLPReceiver:
    """Collects OTLP/HTTP exports; ``endpoint`` is the base URL to give as ``otel_endpoint``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[ReceivedSpan] = []
        self._metrics: list[ReceivedMetric] = []
        self._requests: list[ReceivedRequest] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                """Every export would be logged to stderr."""

        # Port 0: the kernel picks a free port and no other process can take it between choosing and binding.
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_port}"
        # A short poll interval: stop() waits for the serving loop to notice.
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="otlp-receiver", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def __enter__(self) -> OTLPReceiver:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    @property
    def metrics(self) -> list[ReceivedMetric]:
        with self._lock:
            return list(self._metrics)

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    def metric(self, name: str) -> ReceivedMetric:
        """The last export of the metric ``name``; fails the test when none came."""
        found = [m for m in self.metrics if m.name == name]
        assert found, f"no metric {name!r} received; got {sorted({m.name for m in self.metrics})}"
        return found[-1]

    def wait_for_spans(self, count: int = 1, timeout: float = 10.0) -> list[ReceivedSpan]:
        """At least ``count`` spans, waiting for a background export; fails the test after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while len(spans := self.spans) < count:
            assert time.monotonic() < deadline, f"{len(spans)} span(s) received in {timeout}s, expected {count}"
            time.sleep(0.01)
        return spans

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
        encoding = handler.headers.get("Content-Encoding")
        with self._lock:
            self._requests.append(ReceivedRequest(handler.path, handler.headers.get("Content-Type"), encoding))
        if handler.path not in ("/v1/traces", "/v1/metrics"):
            self._answer(handler, 404, b"")
            return
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            traces = ExportTraceServiceRequest.FromString(body) if handler.path == "/v1/traces" else None
            metrics = ExportMetricsServiceRequest.FromString(body) if traces is None else None
        # Bad compression or not protobuf (google.protobuf's DecodeError has no type stubs to name it by).
        except Exception:
            self._answer(handler, 400, b"")
            return
        if traces is not None:
            self._keep_spans(traces)
            self._answer(handler, 200, EMPTY_TRACE_RESPONSE)
        elif metrics is not None:
            self._keep_metrics(metrics)
            self._answer(handler, 200, EMPTY_METRICS_RESPONSE)

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/x-protobuf")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _keep_spans(self, request: ExportTraceServiceRequest) -> None:
        spans = [
            ReceivedSpan(
                name=span.name,
                trace_id=span.trace_id.hex(),
                span_id=span.span_id.hex(),
                parent_span_id=span.parent_span_id.hex() or None,
                attributes=_attributes(span.attributes),
                resource=_attributes(resource_spans.resource.attributes),
                scope=scope_spans.scope.name,
            )
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]
        with self._lock:
            self._spans.extend(spans)

    def _keep_metrics(self, request: ExportMetricsServiceRequest) -> None:
        received = []
        for resource_metrics in request.resource_metrics:
            resource = _attributes(resource_metrics.resource.attributes)
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    kind = metric.WhichOneof("data") or ""
                    points = tuple(_point(p, kind) for p in getattr(metric, kind).data_points) if kind else ()
                    received.append(
                        ReceivedMetric(metric.name, kind, metric.unit, points, resource, scope_metrics.scope.name)
                    )
        with self._lock:
            self._metrics.extend(received)


@contextlib.contextmanager
def run_otlp_receiver() -> Iterator[OTLPReceiver]:
    """A started receiver, stopped (its thread joined, its socket closed) when the block ends."""
    with OTLPReceiver() as receiver:
        yield receiver
