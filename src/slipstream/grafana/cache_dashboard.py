"""The cache and compression dashboard: the response cache's results by tier and its hit ratio, Redis errors,
bytes saved per coding, and the 304 / 412 answers of conditional requests."""

from __future__ import annotations

from slipstream.grafana.layout import dashboard
from slipstream.grafana.panels import Json, Panel, Query, Row, rate, stat, timeseries
from slipstream.grafana.promql import REQUESTS
from slipstream.grafana.values import GrafanaValues

__all__ = ["cache_dashboard"]

CACHE = "slipstream_cache_requests_total"
SERVED = 'result=~"hit|stale"'
LOOKUPS = 'result=~"hit|stale|miss"'
REDIS_ERRORS = "slipstream_cache_redis_errors_total"
GIVEN = "slipstream_compression_input_bytes_total"
MADE = "slipstream_compression_output_bytes_total"
CONDITIONAL = "slipstream_conditional_responses_total"
NOT_MODIFIED = 'http_response_status_code="304"'


def hit_ratio(by: str = "") -> str:
    """Lookups answered from a stored entry (fresh or stale) over hits and misses; bypassed requests left out."""
    lookups = rate(CACHE, LOOKUPS, by=by)
    return f"(\n  {rate(CACHE, SERVED, by=by)}\n  or\n  0 * {lookups}\n)\n/\n{lookups}"


def cache_dashboard(v: GrafanaValues) -> Json:
    items: list[Panel | Row] = [
        Row("Summary"),
        stat(
            "Hit ratio",
            "Share of hits and misses answered from a stored entry.",
            "percentunit",
            Query(hit_ratio()),
            red_below=v.cache_hit_ratio,
        ),
        stat("Cache lookups", "Requests the cache saw, bypassed ones included.", "reqps", Query(rate(CACHE))),
        stat(
            "Redis errors", "Failed or timed-out Redis calls per second.", "ops", Query(rate(REDIS_ERRORS)), red_above=0
        ),
        stat(
            "Bytes saved",
            "Bytes per second compression kept off the wire.",
            "Bps",
            Query(f"{rate(GIVEN)}\n-\n{rate(MADE)}"),
        ),
        stat(
            "Compressed size",
            "Compressor output as a share of its input, all codings.",
            "percentunit",
            Query(f"{rate(MADE)}\n/\n{rate(GIVEN)}"),
        ),
        stat(
            "Not modified",
            "304 answers per second, the cache's own included.",
            "reqps",
            Query(f"{rate(REQUESTS, NOT_MODIFIED)}\nor\n0 * {rate(REQUESTS)}"),
        ),
        Row("Response cache"),
        timeseries(
            "Results by tier",
            "Cache lookups per second by result (hit, miss, stale, bypass) and the tier that answered (l1 memory, "
            "l2 Redis, origin: revalidated with the app, none).",
            "reqps",
            Query(rate(CACHE, by="result, tier"), "{{result}} {{tier}}"),
            stack=True,
        ),
        timeseries(
            "Hit ratio",
            "Share of hits and misses answered from a stored entry, per instance; the red line is the hit-ratio "
            "alert's.",
            "percentunit",
            Query(hit_ratio("instance"), "{{instance}}"),
            threshold=v.cache_hit_ratio,
        ),
        timeseries(
            "Hits by tier",
            "Hits per second by the tier that had the entry. The Redis circuit breaker's state is not exported: an "
            "open breaker shows as l2 hits stopping while the Redis errors go on at its retry pace.",
            "reqps",
            Query(rate(CACHE, SERVED, by="tier"), "{{tier}}"),
        ),
        timeseries(
            "Redis errors",
            "Redis calls that failed or timed out, per instance: those requests were served as if Redis were absent.",
            "ops",
            Query(rate(REDIS_ERRORS, by="instance"), "{{instance}}"),
        ),
        Row("Compression"),
        timeseries(
            "Bytes saved by coding",
            "Bytes per second each content coding kept off the wire (input minus output).",
            "Bps",
            Query(f"{rate(GIVEN, by='encoding')}\n-\n{rate(MADE, by='encoding')}", "{{encoding}}"),
            width=8,
        ),
        timeseries(
            "Compressed size by coding",
            "Output as a share of input per coding: lower is better.",
            "percentunit",
            Query(f"{rate(MADE, by='encoding')}\n/\n{rate(GIVEN, by='encoding')}", "{{encoding}}"),
            width=8,
        ),
        timeseries(
            "Bytes in and out",
            "Bytes given to the compressors and bytes they produced, per second.",
            "Bps",
            Query(rate(GIVEN), "in"),
            Query(rate(MADE), "out"),
            width=8,
        ),
        Row("Conditional requests"),
        timeseries(
            "304 and 412 by ConditionalMiddleware",
            "Responses ConditionalMiddleware replaced: 304 Not Modified, 412 Precondition Failed (the cache's own 304s "
            "are hits, not counted here).",
            "reqps",
            Query(rate(CONDITIONAL, by="http_response_status_code"), "{{http_response_status_code}}"),
        ),
        timeseries(
            "All 304 answers",
            "Every 304 sent, ConditionalMiddleware's and the cache's, by route.",
            "reqps",
            Query(rate(REQUESTS, NOT_MODIFIED, by="http_route"), "{{http_route}}"),
        ),
    ]
    return dashboard(
        "slipstream-cache",
        "slipstream / Cache and compression",
        "The response cache by result and tier, Redis errors, compression savings and conditional requests.",
        v.selector,
        items,
    )
