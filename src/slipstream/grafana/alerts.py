"""Alert rules: each with a severity, a one-sentence summary, a description templated with the alert's labels, and
a ``runbook_url`` to its own section of RUNBOOK.md.

The SLO alerts are the multi-window, multi-burn-rate alerts of the Google SRE workbook in the shape Sloth generates:
for each window pair of a severity, the SLI error ratio over the long window and over the short one both above
``factor x budget``; the pairs of one severity are or-ed into one alert. The short window makes an alert stop soon
after the burn does. Descriptions use labels only (no ``$value``), so the promtool tests can state them exactly.
"""

from __future__ import annotations

from slipstream.grafana.alert_rule import Alert, label
from slipstream.grafana.outbound_rules import outbound_alerts
from slipstream.grafana.promql import (
    DB_DURATION,
    REQUEST_DURATION,
    REQUESTS,
    ROUTE_ERRORS,
    ROUTE_REQUESTS,
    select,
    sli_ratio,
)
from slipstream.grafana.values import GrafanaValues, byte_size, le
from slipstream.grafana.yaml_text import Data

__all__ = ["Alert", "alert_rules", "alerts", "label"]

CACHE = "slipstream_cache_requests_total"
DB_LABELS = "db_system_name, db_operation_name, db_collection_name"


def alert_rules(values: GrafanaValues) -> dict[str, Data]:
    """The alert rules file: one group."""
    return {"groups": [{"name": "slipstream.alerts", "rules": [a.rule(values) for a in alerts(values)]}]}


def alerts(values: GrafanaValues) -> list[Alert]:
    """Every alert, in the order of the runbook."""
    return [
        *_http(values),
        *_slo(values),
        *_cache(values),
        *_database(values),
        *outbound_alerts(values),
        *_process(values),
    ]


def _pct(ratio: float) -> str:
    return f"{ratio * 100:g}%"


def _http(v: GrafanaValues) -> list[Alert]:
    by = "sum by (job, http_route)"
    rate = f"{v.min_request_rate:g} requests/s"
    route_errors = Alert(
        "SlipstreamRouteErrorRatioHigh",
        f"(\n  {by} ({ROUTE_ERRORS})\n  /\n  {by} ({ROUTE_REQUESTS})\n) > {v.error_ratio:g}\n"
        f"and\n{by} ({ROUTE_REQUESTS}) > {v.min_request_rate:g}",
        "warning",
        f"A route answers more than {_pct(v.error_ratio)} of its requests with a server error.",
        f"{label('http_route')} on {label('job')} answered more than {_pct(v.error_ratio)} of its requests with a 5xx "
        f"status over the last 5 minutes (routes with fewer than {rate} are left out).",
        "5m",
    )
    bucket = select(f"{REQUEST_DURATION}_bucket", v.selector)
    quantile = f"histogram_quantile({v.latency_objective:g}, sum by (job, le) (rate({bucket}[1h]OFFSET)))"
    regression = Alert(
        "SlipstreamLatencyRegression",
        f"{quantile.replace('OFFSET', '')}\n> {1 + v.latency_regression:g} *\n"
        f"{quantile.replace('OFFSET', ' offset 1w')}\n"
        f"and\nsum by (job) (rate({select(REQUESTS, v.selector)}[1h])) > {v.min_request_rate:g}",
        "warning",
        f"The p{v.latency_objective * 100:g} request duration is more than {_pct(v.latency_regression)} above the "
        "same hour a week earlier.",
        f"The p{v.latency_objective * 100:g} request duration of {label('job')} over the last hour is more than "
        f"{_pct(v.latency_regression)} above the same hour one week earlier.",
        "30m",
    )
    return [route_errors, regression]


def _slo(v: GrafanaValues) -> list[Alert]:
    found: list[Alert] = []
    meaning = {
        "availability": f"{_pct(v.availability_objective)} of requests without a 5xx",
        "latency": f"{_pct(v.latency_objective)} of requests within {v.latency_threshold:g} s",
    }
    for slo in ("availability", "latency"):
        budget = v.budget(slo)
        for severity, speed in (("page", "Fast"), ("ticket", "Slow")):
            windows = [w for w in v.burn_windows if w.severity == severity]
            if not windows:
                continue
            conditions = []
            for w in windows:
                threshold = f"({w.factor:g} * {budget:g})"
                long, short = (f'{sli_ratio(window)}{{slo="{slo}"}} > {threshold}' for window in (w.long, w.short))
                conditions.append(f"(\n  {long}\nand\n  {short}\n)")
            said = " or ".join(f"{w.factor:g}x over {w.long} and {w.short}" for w in windows)
            days = min(v.budget_days(w.factor) for w in windows)
            found.append(
                Alert(
                    f"Slipstream{slo.capitalize()}BurnRate{speed}",
                    "\nor\n".join(conditions),
                    windows[0].alert_severity,
                    f"The {slo} error budget is burning fast enough to be spent in {days:.3g} days or less.",
                    f"{label('job')} is spending the error budget of its {slo} objective ({meaning[slo]} over "
                    f"{v.slo_period}) at least {said}.",
                    labels={"slo": slo},
                )
            )
    return found


def _cache(v: GrafanaValues) -> list[Alert]:
    hits, lookups = 'result=~"hit|stale"', 'result=~"hit|stale|miss"'
    served = f"sum by (job) (rate({select(CACHE, v.selector, hits)}[15m]))"
    seen = f"sum by (job) (rate({select(CACHE, v.selector, lookups)}[15m]))"
    errors = f"sum by (job, instance) (rate({select('slipstream_cache_redis_errors_total', v.selector)}[5m])) > 0"
    return [
        Alert(
            "SlipstreamCacheHitRatioLow",
            f"(\n  {served}\n  or\n  0 * {seen}\n)\n/\n{seen}\n< {v.cache_hit_ratio:g}\n"
            f"and\n{seen} > {v.min_request_rate:g}",
            "warning",
            f"The response cache answers less than {_pct(v.cache_hit_ratio)} of the requests it could answer.",
            f"Over the last 15 minutes the response cache of {label('job')} answered less than "
            f"{_pct(v.cache_hit_ratio)} of its hits and misses from a stored entry (bypassed requests left out).",
            "15m",
        ),
        Alert(
            "SlipstreamRedisErrors",
            errors,
            "warning",
            "Calls to the Redis cache tier fail or time out.",
            f"{label('instance')} of {label('job')} has had failing or timed-out Redis calls for 5 minutes; it "
            "serves as if Redis were absent (memory tier only) and its circuit breaker retries now and then.",
            "5m",
        ),
    ]


def _database(v: GrafanaValues) -> list[Alert]:
    n_plus_one = select("slipstream_db_n_plus_one_total", v.selector)
    statements = f"sum by (job, {DB_LABELS}) (rate({select(f'{DB_DURATION}_count', v.selector)}[10m]))"
    fast = select(f"{DB_DURATION}_bucket", v.selector, f'le="{le(v.slow_statement)}"')
    pool = "sum by (job, instance, pool_name)"
    used = select("db_client_connection_count", v.selector, 'state="used"')
    timeouts = select("db_client_connection_timeouts_total", v.selector)
    return [
        Alert(
            "SlipstreamNPlusOneSurge",
            f"sum by (job, http_route) (rate({n_plus_one}[15m]))\n/\n"
            f"sum by (job, http_route) (rate({select(REQUESTS, v.selector)}[15m]))\n> {v.n_plus_one_share:g}",
            "warning",
            f"More than {_pct(v.n_plus_one_share)} of a route's requests run an N+1 query pattern.",
            f"Over the last 15 minutes more than {_pct(v.n_plus_one_share)} of the requests to {label('http_route')} "
            f"on {label('job')} ran one SELECT many times over (an N+1 finding).",
            "15m",
        ),
        Alert(
            "SlipstreamSlowStatements",
            f"{statements}\n-\n{statements.replace(select(f'{DB_DURATION}_count', v.selector), fast)}\n> 0",
            "warning",
            f"Database statements take longer than {v.slow_statement:g} s.",
            f"{label('db_operation_name')} statements on {label('db_collection_name')} ({label('db_system_name')}) "
            f"of {label('job')} took longer than {v.slow_statement:g} s in the last 10 minutes.",
        ),
        Alert(
            "SlipstreamPoolSaturated",
            f"{pool} ({used})\n/\n{pool} ({select('db_client_connection_max', v.selector)})\n> {v.pool_usage:g}",
            "warning",
            f"A connection pool has more than {_pct(v.pool_usage)} of its connections in use.",
            f"Pool {label('pool_name')} of {label('instance')} ({label('job')}) has had more than "
            f"{_pct(v.pool_usage)} of its connections checked out for 10 minutes.",
            "10m",
        ),
        Alert(
            "SlipstreamPoolTimeouts",
            f"{pool} (rate({timeouts}[5m])) > 0",
            "warning",
            "Connection checkouts time out waiting for the pool.",
            f"Requests of {label('instance')} ({label('job')}) waited for a connection of pool {label('pool_name')} "
            "until the pool's timeout, over the last 5 minutes.",
            "2m",
        ),
    ]


def _process(v: GrafanaValues) -> list[Alert]:
    return [
        Alert(
            "SlipstreamTargetDown",
            f"{select('up', v.selector)} == 0",
            "critical",
            "Prometheus cannot scrape a slipstream metrics endpoint.",
            f"{label('instance')} of {label('job')} has not answered Prometheus' scrapes for 5 minutes (an app's "
            "metrics port, or the sidecar of a multi-worker host).",
            "5m",
        ),
        Alert(
            "SlipstreamSidecarNoWorkers",
            f"{select('slipstream_sidecar_workers', v.selector)} == 0",
            "critical",
            "A slipstream sidecar sees no live worker process.",
            f"The sidecar {label('instance')} of {label('job')} has found no live worker writing to its multiprocess "
            "directory for 2 minutes.",
            "2m",
        ),
        Alert(
            "SlipstreamProcessMemoryHigh",
            f"{select('process_resident_memory_bytes', v.selector)} > {v.memory_limit}",
            "warning",
            f"A process uses more than {byte_size(v.memory_limit)} of resident memory.",
            f"{label('instance')} of {label('job')} has used more than {byte_size(v.memory_limit)} of resident memory "
            "for 15 minutes.",
            "15m",
        ),
    ]
