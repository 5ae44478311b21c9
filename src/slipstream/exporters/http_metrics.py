"""Receivers recording finished requests as HTTP server metrics: Prometheus (with exemplars) and the OTel meter."""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import Histogram

from slipstream.exporters.metrics import LabelledChildren, Metrics, bucket_observer, gauge_adder
from slipstream.record import Receiver, RequestRecord

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter
    from opentelemetry.trace import Span

# Seconds between exemplars of one bucket of one series.
EXEMPLAR_INTERVAL = 1.0
Observe = Callable[[float], None]


class HttpServerMetrics(Receiver):
    """``http_server_*`` in Prometheus form: duration (with exemplars), TTFB, in flight, body sizes."""

    def __init__(self, metrics: Metrics, buckets: tuple[float, ...]) -> None:
        duration, response_size = metrics.request_duration, metrics.response_body_size
        time_to_first_byte, request_size = metrics.time_to_first_byte, metrics.request_body_size
        writes = metrics.writes  # in multiprocess mode, the file writes go in batches
        # One look-up per label set serves the metrics that share it, the by-route ones too (the same children for
        # every status); the duration child itself takes exemplars.
        self.by_response: LabelledChildren[tuple[Histogram, Observe, Observe, Observe, Observe]] = LabelledChildren(
            lambda method, route, status: (
                child := duration.labels(method, route, status),
                bucket_observer(child, writes),
                bucket_observer(response_size.labels(method, route, status), writes),
                bucket_observer(time_to_first_byte.labels(method, route), writes),
                bucket_observer(request_size.labels(method, route), writes),
            )
        )
        active = metrics.active_requests
        self.active: LabelledChildren[Observe] = LabelledChildren(
            lambda *values: gauge_adder(active.labels(*values), writes)
        )
        # When each (series, bucket) may take its next exemplar: Prometheus keeps one per bucket, so one a second
        # per bucket shows the same and skips most of the cost of attaching them.
        self._buckets = buckets
        self._exemplars_due: dict[tuple[int, int], float] = {}

    def request_started(self, record: RequestRecord) -> None:
        self.active[record.method](1)

    def request_finished(self, record: RequestRecord) -> None:
        method, seconds = record.method, record.seconds
        self.active[method](-1)
        # The by-route series exist once the route has been seen, observed or not.
        duration, observe_duration, observe_response_size, observe_time_to_first_byte, observe_request_size = (
            self.by_response[method, record.label, record.status]
        )
        span = record.span
        if span is None or not self._observe_with_exemplar(duration, seconds, span):
            observe_duration(seconds)
        observe_response_size(record.response_size)
        if record.first_byte:
            observe_time_to_first_byte(record.first_byte - record.start)
        if record.request_size >= 0:
            # Requests without a body (most GETs, size -1) are not observed: the histogram describes bodies.
            observe_request_size(record.request_size)

    def _observe_with_exemplar(self, series: Histogram, seconds: float, span: Span) -> bool:
        """Observes ``seconds`` with the span's trace as exemplar when its bucket may take one now (and the span is
        sampled); False when it did not. The bucket is asked first: most requests land where an exemplar was taken
        less than a second ago."""
        key = (id(series), bisect.bisect_left(self._buckets, seconds))
        if time.perf_counter() < self._exemplars_due.get(key, 0.0):
            return False
        context = span.get_span_context()
        if not context.trace_flags.sampled:
            return False
        self._exemplars_due[key] = time.perf_counter() + EXEMPLAR_INTERVAL
        series.observe(seconds, {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"})
        return True


class OtelHttpMetrics(Receiver):
    """``http.server.request.duration`` through the OpenTelemetry meter of our own providers."""

    def __init__(self, meter: Meter) -> None:
        self.duration = meter.create_histogram(
            "http.server.request.duration", unit="s", description="Duration of HTTP server requests."
        )

    def request_finished(self, record: RequestRecord) -> None:
        attributes: dict[str, str | int] = {
            "http.request.method": record.method,
            "http.response.status_code": record.status,
        }
        if record.route is not None:
            attributes["http.route"] = record.route
        self.duration.record(record.seconds, attributes)
