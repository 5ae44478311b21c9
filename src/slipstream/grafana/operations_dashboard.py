"""The @timed operations dashboard: each operation's rate and duration, and where request time goes (operations,
the database, the slowest routes): the bottlenecks."""

from __future__ import annotations

from slipstream.grafana.layout import dashboard
from slipstream.grafana.panels import (
    Json,
    Panel,
    Query,
    Row,
    histogram_mean,
    histogram_quantile,
    rate,
    table,
    timeseries,
)
from slipstream.grafana.promql import DB_DURATION, REQUEST_DURATION
from slipstream.grafana.values import GrafanaValues

__all__ = ["operations_dashboard"]

OPERATION = "slipstream_operation_duration_seconds"


def operations_dashboard(v: GrafanaValues) -> Json:
    mean = histogram_mean(OPERATION, "operation")
    request_time = f"scalar({rate(f'{REQUEST_DURATION}_sum')})"
    share = f"{rate(f'{OPERATION}_sum', by='operation')}\n/ {request_time}"
    p = v.latency_objective
    items: list[Panel | Row] = [
        Row("@timed operations"),
        timeseries(
            "Operations per second",
            "Runs of each @timed / `with timed(...)` operation per second (past 200 names: `other`).",
            "ops",
            Query(rate(f"{OPERATION}_count", by="operation"), "{{operation}}"),
            width=8,
        ),
        timeseries(
            "p95 duration by operation",
            "The p95 duration of each operation.",
            "s",
            Query(histogram_quantile(0.95, f"{OPERATION}_bucket", "operation"), "{{operation}}"),
            width=8,
        ),
        timeseries(
            "Mean duration by operation",
            "The mean duration of each operation.",
            "s",
            Query(mean, "{{operation}}"),
            width=8,
        ),
        table(
            "Operations",
            "Every operation: runs per second, mean and p95 duration, and its share of all request time (the "
            "bottleneck is the largest share). Click a header to sort.",
            "short",
            Query(rate(f"{OPERATION}_count", by="operation"), instant=True, column="runs/s", unit="ops"),
            Query(mean, instant=True, column="mean", unit="s"),
            Query(histogram_quantile(0.95, f"{OPERATION}_bucket", "operation"), instant=True, column="p95", unit="s"),
            Query(share, instant=True, column="share of request time", unit="percentunit"),
            sort_by="share of request time",
        ),
        Row("Bottlenecks: where request time goes"),
        timeseries(
            "Request time by operation",
            "Time spent in each operation as a share of the time spent serving requests. An operation above "
            "timing_bottleneck_share of its request is flagged as the bottleneck in Server-Timing and the span.",
            "percentunit",
            Query(share, "{{operation}}"),
            width=8,
        ),
        timeseries(
            "Request time in the database",
            "Time spent in database statements as a share of the time spent serving requests.",
            "percentunit",
            Query(f"{rate(f'{DB_DURATION}_sum')}\n/ {request_time}", "database"),
            width=8,
        ),
        timeseries(
            f"Slowest routes (p{p * 100:g})",
            f"The five routes with the highest p{p * 100:g} request duration.",
            "s",
            Query(f"topk(5, {histogram_quantile(p, f'{REQUEST_DURATION}_bucket', 'http_route')})", "{{http_route}}"),
            width=8,
        ),
    ]
    return dashboard(
        "slipstream-operations",
        "slipstream / Operations and bottlenecks",
        "Operations timed with @timed or `with timed(...)`, and where request time goes.",
        v.selector,
        items,
    )
