"""promtool tests for every alert that is not a burn rate: each fires on series that should wake someone and stays
silent on healthy ones. Rates, ratios and gauges are set from the user's thresholds (well above or below them), so a
rendering with other values tests itself: ``promtool test rules tests/*.test.yml`` in the rendered directory.
"""

from __future__ import annotations

import math

from slipstream.grafana.alerts import Alert, alerts
from slipstream.grafana.promql import CLIENT_CALLS, DB_DURATION, GEN_AI_COST, REQUEST_DURATION, REQUESTS
from slipstream.grafana.promtool_series import (
    GROUP_ORDER,
    Phase,
    counter,
    expected,
    gauge,
    selector_labels,
    series_name,
)
from slipstream.grafana.values import GrafanaValues, le
from slipstream.grafana.yaml_text import Data

__all__ = ["alert_test_files"]

Series = list[tuple[str, dict[str, str], str]]
WEEK = 7 * 24 * 60


def alert_test_files(values: GrafanaValues, rule_files: list[str]) -> dict[str, Data]:
    """``{file name: test file}``: ``alerts.test.yml`` (1-minute steps) and ``regression.test.yml`` (a week of data)."""
    tests = _Tests(values)
    groups = [*tests.http(), *tests.cache(), *tests.database(), *tests.outbound(), *tests.process()]
    return {
        "alerts.test.yml": {
            "rule_files": rule_files,
            "group_eval_order": GROUP_ORDER,
            "evaluation_interval": "1m",
            "tests": groups,
        },
        "regression.test.yml": {
            "rule_files": rule_files,
            "group_eval_order": GROUP_ORDER,
            "evaluation_interval": "1h",
            "tests": tests.regression(),
        },
    }


class _Tests:
    def __init__(self, values: GrafanaValues) -> None:
        self.values = values
        self.alerts = {alert.name: alert for alert in alerts(values)}
        self.base = selector_labels(values.selector)
        # Fast enough that every minimum-traffic guard is passed by far.
        self.rate = float(max(60, math.ceil(values.min_request_rate * 60 * 20)))

    def group(
        self, name: str, alert: str, minutes: int, series: Series, firing: list[dict[str, str]], step: int = 1
    ) -> Data:
        found: Alert = self.alerts[alert]
        return {
            "name": name,
            "interval": f"{step}m",
            "input_series": [
                {"series": series_name(metric, {**self.base, **labels}), "values": text}
                for metric, labels, text in series
            ],
            "alert_rule_test": [
                {
                    "eval_time": f"{minutes}m",
                    "alertname": alert,
                    "exp_alerts": [expected(found, self.values, labels) for labels in firing],
                }
            ],
        }

    def grow(self, per_minute: float, minutes: int) -> str:
        return counter([Phase(minutes, per_minute)], 1)

    def http(self) -> list[Data]:
        v, job = self.values, self.base["job"]
        bad = min(v.error_ratio * 5, (v.error_ratio + 1) / 2)
        routes = {"/checkout": bad, "/items": v.error_ratio * 0.3}
        series: Series = []
        for route, share in routes.items():
            for status, part in (("200", 1 - share), ("500", share)):
                labels = {"http_route": route, "http_request_method": "GET", "http_response_status_code": status}
                series.append((REQUESTS, labels, self.grow(self.rate * part, 30)))
        # Every request of a quiet route fails, but it is under the minimum request rate.
        quiet = {"http_route": "/admin", "http_request_method": "GET", "http_response_status_code": "500"}
        series.append((REQUESTS, quiet, self.grow(v.min_request_rate * 60 * 0.3, 30)))
        name = f"5xx on /checkout at {bad:.3g}, /items at {routes['/items']:.3g}, every request of a quiet route"
        return [
            self.group(name, "SlipstreamRouteErrorRatioHigh", 30, series, [{"job": job, "http_route": "/checkout"}])
        ]

    def cache(self) -> list[Data]:
        v, job, instance = self.values, self.base["job"], self.base["instance"]
        cache = "slipstream_cache_requests_total"
        groups = []
        for name, share, fires in (
            ("hit ratio halved", v.cache_hit_ratio / 2, True),
            ("no hit at all", 0.0, True),
            ("healthy hit ratio", (1 + v.cache_hit_ratio) / 2, False),
        ):
            series: Series = [(cache, {"result": "miss", "tier": "none"}, self.grow(self.rate * (1 - share), 40))]
            if share:
                series.append((cache, {"result": "hit", "tier": "l1"}, self.grow(self.rate * share, 40)))
            series.append((cache, {"result": "bypass", "tier": "none"}, self.grow(self.rate, 40)))
            firing = [{"job": job}] if fires else []
            groups.append(self.group(name, "SlipstreamCacheHitRatioLow", 40, series, firing))
        errors = "slipstream_cache_redis_errors_total"
        for name, per_minute in (("Redis failing", 2.0), ("Redis healthy", 0.0)):
            firing = [{"job": job, "instance": instance}] if per_minute else []
            groups.append(
                self.group(name, "SlipstreamRedisErrors", 15, [(errors, {}, self.grow(per_minute, 15))], firing)
            )
        return groups

    def database(self) -> list[Data]:
        v, job, instance = self.values, self.base["job"], self.base["instance"]
        share = min(v.n_plus_one_share * 3, 1.0)
        series: Series = []
        for route, part in (("/authors", share), ("/authors/eager", v.n_plus_one_share / 3)):
            labels = {"http_route": route, "http_request_method": "GET", "http_response_status_code": "200"}
            series.append((REQUESTS, labels, self.grow(self.rate, 40)))
            series.append(("slipstream_db_n_plus_one_total", {"http_route": route}, self.grow(self.rate * part, 40)))
        groups = [
            self.group(
                "N+1 on /authors", "SlipstreamNPlusOneSurge", 40, series, [{"job": job, "http_route": "/authors"}]
            )
        ]
        statements: Series = []
        for operation, table, slow in (("SELECT", "books", 1.0), ("INSERT", "orders", 0.0)):
            labels = {"db_system_name": "postgresql", "db_operation_name": operation, "db_collection_name": table}
            statements.append((f"{DB_DURATION}_count", labels, self.grow(10, 15)))
            statements.append(
                (f"{DB_DURATION}_bucket", {**labels, "le": le(v.slow_statement)}, self.grow(10 - slow, 15))
            )
        slowed = {
            "job": job,
            "db_system_name": "postgresql",
            "db_operation_name": "SELECT",
            "db_collection_name": "books",
        }
        groups.append(self.group("one slow SELECT a minute", "SlipstreamSlowStatements", 15, statements, [slowed]))
        pools: Series = []
        timeouts: Series = []
        for pool, used, timing_out in (
            ("postgresql://app@db/shop", (1 + v.pool_usage) / 2, 1.0),
            ("sqlite:///x.db", v.pool_usage / 2, 0.0),
        ):
            pools.append(("db_client_connection_count", {"pool_name": pool, "state": "used"}, gauge(100 * used, 20)))
            pools.append(("db_client_connection_max", {"pool_name": pool}, gauge(100, 20)))
            timeouts.append(("db_client_connection_timeouts_total", {"pool_name": pool}, self.grow(timing_out, 10)))
        saturated = {"job": job, "instance": instance, "pool_name": "postgresql://app@db/shop"}
        groups.append(self.group("one pool saturated", "SlipstreamPoolSaturated", 20, pools, [saturated]))
        groups.append(self.group("one pool timing out", "SlipstreamPoolTimeouts", 10, timeouts, [saturated]))
        return groups

    def outbound(self) -> list[Data]:
        """One host failing (by status and by exception), one failing rarely, a quiet one always; then twice the LLM
        budget per hour spread over two models, and half of it."""
        v, job = self.values, self.base["job"]
        bad = min(v.upstream_error_ratio * 5, (v.upstream_error_ratio + 1) / 2)
        series: Series = []
        for host, share in (("api.openai.com", bad), ("payments.internal", v.upstream_error_ratio * 0.3)):
            call = {"http_request_method": "POST", "server_address": host}
            series.append(
                (CLIENT_CALLS, {**call, "http_response_status_code": "200"}, self.grow(self.rate * (1 - share), 30))
            )
            failed = {**call, "http_response_status_code": "503", "error_type": "503"}
            series.append((CLIENT_CALLS, failed, self.grow(self.rate * share / 2, 30)))
            series.append((CLIENT_CALLS, {**call, "error_type": "ReadTimeout"}, self.grow(self.rate * share / 2, 30)))
        quiet = {"http_request_method": "GET", "server_address": "cron.internal", "error_type": "ConnectError"}
        series.append((CLIENT_CALLS, quiet, self.grow(v.min_request_rate * 60 * 0.3, 30)))
        name = f"calls to api.openai.com failing at {bad:.3g}, payments.internal rarely, a quiet host always"
        firing = [{"job": job, "server_address": "api.openai.com"}]
        groups = [self.group(name, "SlipstreamUpstreamErrorRatioHigh", 30, series, firing)]
        for name, times, fires in (("twice the LLM budget", 2.0, True), ("half the LLM budget", 0.5, False)):
            per_minute = v.llm_budget_per_hour * times / 60
            spend: Series = [
                (GEN_AI_COST, {"model": "gpt-4o-2024-08-06"}, self.grow(per_minute * 0.6, 70)),
                (GEN_AI_COST, {"model": "claude-sonnet-4-5"}, self.grow(per_minute * 0.4, 70)),
            ]
            groups.append(self.group(name, "SlipstreamLlmSpendHigh", 70, spend, [{"job": job}] if fires else []))
        return groups

    def process(self) -> list[Data]:
        v = self.values
        groups = []
        for alert, metric, minutes, bad, good in (
            ("SlipstreamTargetDown", "up", 10, 0, 1),
            ("SlipstreamSidecarNoWorkers", "slipstream_sidecar_workers", 6, 0, 2),
            (
                "SlipstreamProcessMemoryHigh",
                "process_resident_memory_bytes",
                20,
                2 * v.memory_limit,
                v.memory_limit // 2,
            ),
        ):
            for name, value, firing in (
                (f"{metric} at {bad}", bad, [dict(self.base)]),
                (f"{metric} at {good}", good, []),
            ):
                groups.append(self.group(name, alert, minutes, [(metric, {}, gauge(value, minutes))], firing))
        return groups

    def regression(self) -> list[Data]:
        """A week and two hours at 10-minute steps; one group slows down for its last two hours, the other does not."""
        v, job = self.values, self.base["job"]
        bounds = [*v.latency_buckets, float("inf")]
        # All requests in one finite bucket: histogram_quantile interpolates within it.
        lowers = [0.0, *v.latency_buckets[:-1]]
        quantile = [low + (up - low) * v.latency_objective for low, up in zip(lowers, v.latency_buckets, strict=True)]
        pair = next(
            (
                (i, j)
                for i in range(len(quantile))
                for j in range(i + 1, len(quantile))
                if quantile[j] > quantile[i] * (1 + v.latency_regression) * 1.1
            ),
            None,
        )
        if pair is None:
            return []
        groups = []
        for name, slow_bucket, firing in (("slower for two hours", pair[1], [{"job": job}]), ("steady", pair[0], [])):
            series: Series = [(REQUESTS, {}, counter([Phase(WEEK + 120, self.rate)], 10))]
            for index, bound in enumerate(bounds):
                phases = [
                    Phase(WEEK, self.rate if index >= pair[0] else 0),
                    Phase(120, self.rate if index >= slow_bucket else 0),
                ]
                label = "+Inf" if bound == float("inf") else le(bound)
                series.append((f"{REQUEST_DURATION}_bucket", {"le": label}, counter(phases, 10)))
            groups.append(self.group(name, "SlipstreamLatencyRegression", WEEK + 120, series, firing, step=10))
        return groups
