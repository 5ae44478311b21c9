"""The service overview dashboard: traffic, errors, latency and time to first byte per route, the SLOs' burn
rates and budgets, body sizes, and the process (prometheus_client's default collectors; absent behind the sidecar).
"""

from __future__ import annotations

from slipstream.grafana.layout import dashboard
from slipstream.grafana.panels import (
    RATE,
    Json,
    Panel,
    Query,
    Row,
    here,
    histogram_mean,
    histogram_quantile,
    rate,
    stat,
    table,
    timeseries,
)
from slipstream.grafana.promql import REQUEST_DURATION, REQUESTS, SERVER_ERROR
from slipstream.grafana.service_levels import process_panels, slo_panels
from slipstream.grafana.values import GrafanaValues, le

__all__ = ["overview_dashboard"]

BUCKET = f"{REQUEST_DURATION}_bucket"
TTFB = "slipstream_http_server_time_to_first_byte_seconds_bucket"
RESPONSE_SIZE = "http_server_response_body_size_bytes"
# A data link on the exemplars' trace_id field: the trace, in Explore, on the data source the `traces` variable names.
TRACE_LINK = {
    "title": "Trace ${__value.raw}",
    "url": '/explore?left={"datasource":"${traces}","queries":[{"refId":"A","queryType":"traceql",'
    '"query":"${__value.raw}"}],"range":{"from":"now-1h","to":"now"}}',
    "targetBlank": True,
}


def quantile(q: float, metric: str = BUCKET, by: str = "") -> str:
    return histogram_quantile(q, metric, by)


def error_ratio(by: str = "") -> str:
    """5xx over all requests; 0 rather than no data where there was no 5xx (``or`` the same series times 0)."""
    requests = rate(REQUESTS, by=by)
    return f"(\n  {rate(REQUESTS, SERVER_ERROR, by=by)}\n  or\n  0 * {requests}\n)\n/\n{requests}"


def overview_dashboard(v: GrafanaValues) -> Json:
    p = v.latency_objective
    items: list[Panel | Row] = [Row("Summary"), *_summary(v), Row("Requests"), *_requests(v), Row("Latency")]
    items += [
        timeseries(
            "Request duration",
            "Request arrival to the last body byte, all routes: p50, p95 and p99 from the histogram. Exemplars link to "
            "the trace in the Traces data source (single-process apps only: multiprocess mode drops exemplars).",
            "s",
            *(Query(quantile(q), f"p{q * 100:g}", exemplar=q == p) for q in (0.5, p, 0.99)),
            threshold=v.latency_threshold,
            links=[TRACE_LINK],
        ),
        timeseries(
            "Time to first byte",
            "Request arrival to the response start (status and headers), all routes: p50, p95 and p99.",
            "s",
            *(Query(quantile(q, TTFB), f"p{q * 100:g}") for q in (0.5, p, 0.99)),
        ),
        timeseries(
            f"p{p * 100:g} duration by route",
            f"The p{p * 100:g} request duration of each route; the red line is the latency objective's threshold.",
            "s",
            Query(quantile(p, by="http_route"), "{{http_route}}", exemplar=True),
            threshold=v.latency_threshold,
            links=[TRACE_LINK],
        ),
        timeseries(
            f"p{p * 100:g} now and a week ago",
            f"The p{p * 100:g} request duration against the same time one week earlier (the latency regression "
            f"alert fires above {1 + v.latency_regression:g}x). The week-ago line is empty until there is a week of "
            "data.",
            "s",
            Query(quantile(p), "now"),
            Query(quantile(p).replace(RATE, f"{RATE} offset 1w"), "a week ago"),
        ),
        _routes(p),
        Row("Service level objectives"),
        *slo_panels(v),
        Row("Body sizes"),
        timeseries(
            "Response body size",
            "Response bodies as sent (after compression): p50 and p95 over all routes.",
            "bytes",
            *(Query(quantile(q, f"{RESPONSE_SIZE}_bucket"), f"p{q * 100:g}") for q in (0.5, 0.95)),
            width=8,
        ),
        timeseries(
            "Request body size",
            "Request bodies by route, p95 (requests without a body are not observed).",
            "bytes",
            Query(quantile(0.95, "http_server_request_body_size_bytes_bucket", "http_route"), "{{http_route}}"),
            width=8,
        ),
        timeseries(
            "Bytes sent",
            "Response body bytes sent per second, by route.",
            "Bps",
            Query(rate(f"{RESPONSE_SIZE}_sum", by="http_route"), "{{http_route}}"),
            width=8,
        ),
        Row("Process"),
        *process_panels(v),
    ]
    return dashboard(
        "slipstream-overview",
        "slipstream / Service overview",
        "Traffic, errors, latency, SLOs and the process of apps instrumented with slipstream.",
        v.selector,
        items,
        traces=True,
    )


def _summary(v: GrafanaValues) -> list[Panel]:
    fast = here(BUCKET, f'le="{le(v.latency_threshold)}"')
    return [
        stat("Request rate", "Requests per second, all routes.", "reqps", Query(rate(REQUESTS))),
        stat(
            "5xx ratio",
            "Share of requests answered with a 5xx status.",
            "percentunit",
            Query(error_ratio()),
            red_above=v.error_ratio,
        ),
        stat(
            f"p{v.latency_objective * 100:g} duration",
            f"The p{v.latency_objective * 100:g} request duration, all routes.",
            "s",
            Query(quantile(v.latency_objective)),
            red_above=v.latency_threshold,
        ),
        stat(
            "Within latency threshold",
            f"Share of requests served within {v.latency_threshold:g} s (the latency SLI; objective "
            f"{v.latency_objective * 100:g}%).",
            "percentunit",
            Query(f"sum(rate({fast}{RATE}))\n/\n{rate(REQUESTS)}"),
            red_below=v.latency_objective,
        ),
        stat("In flight", "Requests being served now.", "short", Query(f"sum({here('http_server_active_requests')})")),
        stat("Targets up", "Scrape targets answering Prometheus.", "short", Query(f"sum({here('up')})")),
    ]


def _requests(v: GrafanaValues) -> list[Panel]:
    return [
        timeseries(
            "Requests by route",
            "Requests per second by route template.",
            "reqps",
            Query(rate(REQUESTS, by="http_route"), "{{http_route}}"),
        ),
        timeseries(
            "Responses by status",
            "Responses per second by status code.",
            "reqps",
            Query(rate(REQUESTS, by="http_response_status_code"), "{{http_response_status_code}}"),
            stack=True,
        ),
        timeseries(
            "5xx ratio by route",
            "Share of each route's requests answered with a 5xx; the red line is the route error-ratio alert's.",
            "percentunit",
            Query(error_ratio("http_route"), "{{http_route}}"),
            threshold=v.error_ratio,
        ),
        timeseries(
            "Requests in flight",
            "Requests being served, by instance and method (multiprocess: the sum over live workers).",
            "short",
            Query(
                f"sum by (instance, http_request_method) ({here('http_server_active_requests')})",
                "{{instance}} {{http_request_method}}",
            ),
        ),
    ]


def _routes(p: float) -> Panel:
    by = "http_route"
    sizes = histogram_mean(RESPONSE_SIZE, by)
    return table(
        "Routes",
        "Every route: request rate, 5xx ratio, duration quantiles and mean response size. Click a header to sort.",
        "short",
        Query(rate(REQUESTS, by=by), instant=True, column="req/s", unit="reqps"),
        Query(error_ratio(by), instant=True, column="5xx", unit="percentunit"),
        Query(quantile(0.5, by=by), instant=True, column="p50", unit="s"),
        Query(quantile(p, by=by), instant=True, column=f"p{p * 100:g}", unit="s"),
        Query(quantile(0.99, by=by), instant=True, column="p99", unit="s"),
        Query(sizes, instant=True, column="mean size", unit="bytes"),
        sort_by="req/s",
    )
