"""HTTP metrics under the names other exporters use, so dashboards built for them keep working.

``metrics_names="starlette_exporter"`` or ``"instrumentator"`` adds these series next to slipstream's own
(OpenTelemetry names), which the shipped dashboards read. Routes are templates as in slipstream's metrics;
a request no route matched is labelled as the other exporter labels it when it groups unmatched paths.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary

from slipstream.exporters.metrics import LabelledChildren, reuse_or_register
from slipstream.record import Receiver, RequestRecord

# prometheus-fastapi-instrumentator's default buckets for its two duration histograms.
_INSTRUMENTATOR_BUCKETS = (0.1, 0.5, 1.0)
_INSTRUMENTATOR_HIGHR_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    2.5,
    3.0,
    3.5,
    4.0,
    4.5,
    5.0,
    7.5,
    10.0,
    30.0,
    60.0,
)


# The instrumentator's status groups; a status outside 1xx-5xx keeps its first digit the same way.
_STATUS_CLASSES = {digit: f"{digit}xx" for digit in range(10)}


class StarletteExporterMetrics(Receiver):
    """starlette_exporter's defaults: ``starlette_requests_total``, ``…_duration_seconds`` and ``…_in_progress``."""

    app_name = "starlette"
    unmatched = "__unknown__"

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("method", "path", "status_code", "app_name")
        requests = reuse_or_register(Counter, registry, "starlette_requests_total", "Total HTTP requests", labels)
        duration = reuse_or_register(
            Histogram, registry, "starlette_request_duration_seconds", "HTTP request duration, in seconds", labels
        )
        self.by_response = LabelledChildren(lambda *values: (requests.labels(*values), duration.labels(*values)))
        self.in_progress = LabelledChildren(
            reuse_or_register(
                Gauge,
                registry,
                "starlette_requests_in_progress",
                "Total HTTP requests currently in progress",
                ("method", "app_name"),
                multiprocess_mode="livesum",
            ).labels
        )

    def request_started(self, record: RequestRecord) -> None:
        self.in_progress[record.method, self.app_name].inc()

    def request_finished(self, record: RequestRecord) -> None:
        requests, duration = self.by_response[
            record.method, record.route or self.unmatched, record.status, self.app_name
        ]
        requests.inc()
        duration.observe(record.seconds)
        self.in_progress[record.method, self.app_name].dec()


class InstrumentatorMetrics(Receiver):
    """prometheus-fastapi-instrumentator's default metrics, with status codes grouped as it does (``2xx``)."""

    unmatched = "none"

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = LabelledChildren(reuse_or_register(
            Counter, registry, "http_requests_total", "Total number of requests by method, status and handler.",
            ("method", "status", "handler"),
        ).labels)  # fmt: skip
        self.request_size = LabelledChildren(reuse_or_register(
            Summary, registry, "http_request_size_bytes", "Content length of incoming requests by handler.",
            ("handler",),
        ).labels)  # fmt: skip
        self.response_size = LabelledChildren(reuse_or_register(
            Summary, registry, "http_response_size_bytes", "Content length of outgoing responses by handler.",
            ("handler",),
        ).labels)  # fmt: skip
        self.latency = LabelledChildren(reuse_or_register(
            Histogram, registry, "http_request_duration_seconds", "Latency with only few buckets by handler.",
            ("method", "handler"), buckets=_INSTRUMENTATOR_BUCKETS,
        ).labels)  # fmt: skip
        self.latency_highr = reuse_or_register(
            Histogram, registry, "http_request_duration_highr_seconds", "Latency with many buckets but no labels.",
            (), buckets=_INSTRUMENTATOR_HIGHR_BUCKETS,
        )  # fmt: skip

    def request_finished(self, record: RequestRecord) -> None:
        handler = record.route or self.unmatched
        self.requests[record.method, _STATUS_CLASSES[record.status // 100], handler].inc()
        self.request_size[handler].observe(max(0, record.request_size))
        self.response_size[handler].observe(record.response_size)
        self.latency[record.method, handler].observe(record.seconds)
        self.latency_highr.observe(record.seconds)


def compat_metrics(registry: CollectorRegistry, names: str) -> Receiver | None:
    """The extra series for ``names`` ("semconv" needs none)."""
    if names == "starlette_exporter":
        return StarletteExporterMetrics(registry)
    if names == "instrumentator":
        return InstrumentatorMetrics(registry)
    return None
