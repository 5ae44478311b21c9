"""The database dashboard: statement rate and latency by operation and table, slow statements, statement errors,
N+1 findings and queries per request by route, and the connection pools."""

from __future__ import annotations

from slipstream.grafana.layout import dashboard
from slipstream.grafana.panels import (
    Json,
    Panel,
    Query,
    Row,
    here,
    histogram_mean,
    histogram_quantile,
    rate,
    timeseries,
)
from slipstream.grafana.promql import DB_DURATION
from slipstream.grafana.values import GrafanaValues, le

__all__ = ["database_dashboard"]

STATEMENT = "db_operation_name, db_collection_name"
STATEMENT_LEGEND = "{{db_operation_name}} {{db_collection_name}}"
QUERIES = "slipstream_db_queries_per_request"
WAIT = "db_client_connection_wait_time_seconds_bucket"
USED = 'state="used"'
# Read from each process's pools at scrape time: absent behind the sidecar.
SCRAPE_TIME = " Absent behind `slipstream sidecar`: the pool gauges are read in the worker processes."


def database_dashboard(v: GrafanaValues) -> Json:
    slow_bucket = here(f"{DB_DURATION}_bucket", f'le="{le(v.slow_statement)}"')
    over_slow = (
        f"{rate(f'{DB_DURATION}_count', by=STATEMENT)}\n-\nsum by ({STATEMENT}) (rate({slow_bucket}[$__rate_interval]))"
    )
    pool = "instance, pool_name"
    used = f"sum by ({pool}) ({here('db_client_connection_count', USED)})"
    items: list[Panel | Row] = [
        Row("Statements"),
        timeseries(
            "Statements by operation and table",
            "Statements per second as the driver ran them, by operation (SELECT, INSERT, …) and table.",
            "ops",
            Query(rate(f"{DB_DURATION}_count", by=STATEMENT), STATEMENT_LEGEND),
        ),
        timeseries(
            "Statement duration p95",
            f"The p95 statement duration by operation and table; the red line is the slow-statement alert's "
            f"{v.slow_statement:g} s.",
            "s",
            Query(histogram_quantile(0.95, f"{DB_DURATION}_bucket", STATEMENT), STATEMENT_LEGEND),
            threshold=v.slow_statement,
        ),
        timeseries(
            "Slow statements",
            "Statements over the app's slow-query threshold (db_slow_query_threshold, logged and kept in the report), "
            "per second.",
            "ops",
            Query(rate("slipstream_db_slow_queries_total", by=STATEMENT), STATEMENT_LEGEND),
            width=8,
        ),
        timeseries(
            f"Statements over {v.slow_statement:g} s",
            f"Statements slower than {v.slow_statement:g} s per second, from the duration histogram (what the "
            "slow-statement alert reads).",
            "ops",
            Query(over_slow, STATEMENT_LEGEND),
            width=8,
        ),
        timeseries(
            "Statement errors",
            "Statements that raised, per second, by the driver's error class.",
            "ops",
            Query(rate("slipstream_db_client_errors_total", by="db_system_name, error_type"), "{{error_type}}"),
            width=8,
        ),
        Row("Per request"),
        timeseries(
            "N+1 findings by route",
            "Requests per second in which one SELECT fingerprint ran at least db_n_plus_one_threshold times.",
            "ops",
            Query(rate("slipstream_db_n_plus_one_total", by="http_route"), "{{http_route}}"),
            width=8,
        ),
        timeseries(
            "Queries per request p95",
            "The p95 number of statements one request ran, by route.",
            "short",
            Query(histogram_quantile(0.95, f"{QUERIES}_bucket", "http_route"), "{{http_route}}"),
            width=8,
        ),
        timeseries(
            "Mean queries per request",
            "Statements per request on average, by route.",
            "short",
            Query(
                histogram_mean(QUERIES, "http_route"),
                "{{http_route}}",
            ),
            width=8,
        ),
        Row("Connection pools"),
        timeseries(
            "Connections",
            "Connections of each pool by state, and the most it allows (size + overflow)." + SCRAPE_TIME,
            "short",
            Query(f"sum by (pool_name, state) ({here('db_client_connection_count')})", "{{pool_name}} {{state}}"),
            Query(f"sum by (pool_name) ({here('db_client_connection_max')})", "{{pool_name}} max"),
            width=8,
        ),
        timeseries(
            "Pool use",
            "Connections in use as a share of the most the pool allows; the red line is the saturation alert's."
            + SCRAPE_TIME,
            "percentunit",
            Query(f"{used}\n/\nsum by ({pool}) ({here('db_client_connection_max')})", "{{instance}} {{pool_name}}"),
            width=8,
            threshold=v.pool_usage,
        ),
        timeseries(
            "Waiting for a connection",
            "Checkouts waiting for a free connection now." + SCRAPE_TIME,
            "short",
            Query(f"sum by ({pool}) ({here('db_client_connection_pending_requests')})", "{{instance}} {{pool_name}}"),
            width=8,
        ),
        timeseries(
            "Connection wait p95",
            "The p95 time to get a connection from the pool (merged across workers behind the sidecar).",
            "s",
            Query(histogram_quantile(0.95, WAIT, "pool_name"), "{{pool_name}}"),
        ),
        timeseries(
            "Checkout timeouts",
            "Checkouts per second that gave up waiting for a connection.",
            "ops",
            Query(rate("db_client_connection_timeouts_total", by="pool_name"), "{{pool_name}}"),
        ),
    ]
    return dashboard(
        "slipstream-database",
        "slipstream / Database",
        "SQLAlchemy statements, slow statements, N+1 findings and connection pools, as slipstream's hooks record them.",
        v.selector,
        items,
    )
