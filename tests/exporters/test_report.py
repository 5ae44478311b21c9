"""The JSON report: percentiles, error rates, cache and compression figures, and its bounds."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from slipstream import RequestRecord
from slipstream.config import DURATION_BUCKETS
from slipstream.exporters import report as report_module
from slipstream.exporters.metrics import Metrics
from slipstream.exporters.prometheus import MetricsAccess
from slipstream.exporters.report import OVERFLOW, Report, ReportApp
from slipstream.sqlalchemy.slow import SlowQueries
from tests.support import call_asgi, http_scope, instrumented

pytestmark = pytest.mark.anyio


def make_report(registry: CollectorRegistry | None = None, clock: Callable[[], float] = time.time) -> Report:
    return Report(Metrics.register(registry or CollectorRegistry(), DURATION_BUCKETS), clock=clock)


def observe(
    report: Report,
    method: str,
    route: str,
    status: int,
    seconds: float,
    cache: str | None = None,
    /,
    **operations: float,
) -> None:
    """Hand ``report`` a finished request, as timing does."""
    record = RequestRecord(instrumented(), http_scope(method), method, 0.0)
    record.label, record.status, record.seconds, record.cache = route, status, seconds, cache
    for name, operation_seconds in operations.items():
        record.add_operation(name, operation_seconds)
    record.finished = True
    report.request_finished(record)


def test_percentiles_error_rates_cache_and_compression() -> None:
    registry = CollectorRegistry()
    report = make_report(registry, clock=lambda: 1234.0)
    metrics = report.metrics
    metrics.compression_input_bytes.labels("br").inc(1000)
    metrics.compression_output_bytes.labels("br").inc(250)
    metrics.compression_input_bytes.labels("gzip").inc(0)
    for ms in range(1, 101):
        observe(report, "GET", "/items/{id}", 200, ms / 1000, "HIT" if ms % 4 else "MISS", render=0.001)
    observe(report, "POST", "/items", 503, 0.5, "BYPASS")
    snapshot = report.snapshot()
    slowest = snapshot["slowest_routes"]
    assert [row["route"] for row in slowest] == ["/items", "/items/{id}"]
    items = slowest[1]
    assert (items["p50"], items["p95"], items["p99"], items["max"]) == (0.05, 0.095, 0.099, 0.1)
    assert items["requests"] == 100 and items["error_rate"] == 0
    assert snapshot["error_routes"] == [slowest[0]] and slowest[0]["error_rate"] == 1.0
    assert snapshot["cache"]["hit_ratio"] == 0.75
    assert snapshot["cache"]["outcomes"] == {"HIT": 75, "MISS": 25, "BYPASS": 1}
    assert snapshot["compression"]["br"] == {"input_bytes": 1000.0, "output_bytes": 250.0, "savings_ratio": 0.75}
    assert snapshot["compression"]["gzip"]["savings_ratio"] is None
    (render,) = snapshot["slowest_operations"]
    assert render["operation"] == "render" and render["calls"] == 100
    assert snapshot["generated_at"] == 1234.0


def test_no_traffic_means_no_ratio() -> None:
    snapshot = make_report().snapshot()
    assert snapshot["cache"]["hit_ratio"] is None
    assert snapshot["slowest_routes"] == []


def test_memory_is_bounded_in_routes_operations_and_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_module, "MAX_ROUTES", 3)
    monkeypatch.setattr(report_module, "MAX_OPERATIONS", 2)
    monkeypatch.setattr(report_module, "SAMPLES", 5)
    report = make_report()
    for n in range(10):
        observe(report, "GET", f"/r{n}", 200, 0.01, None, **{f"op{n}": 0.001})
    assert len(report.routes) == 4 and report.routes[OVERFLOW, OVERFLOW].count == 7
    assert len(report.operations) == 3 and report.operations[OVERFLOW].count == 8
    assert all(len(series.samples) <= 5 for series in report.routes.values())


async def test_report_app_guards_like_the_metrics() -> None:
    report = make_report()
    observe(report, "GET", "/", 200, 0.01)
    app = ReportApp(report, MetricsAccess(bearer_token="t"))
    refused = await call_asgi(app, path="/report")
    allowed = await call_asgi(app, path="/report", headers=[("authorization", "Bearer t")])
    lower_case_scheme = await call_asgi(app, path="/report", headers=[("authorization", "bearer t")])
    assert refused.status == 401
    assert lower_case_scheme.status == 200
    assert allowed.status == 200 and json.loads(allowed.body)["slowest_routes"][0]["route"] == "/"
    assert (await call_asgi(ReportApp(report), path="/report")).status == 200


def test_the_report_lists_its_apps_slow_queries_and_index_hints() -> None:
    from slipstream.sqlalchemy.fingerprint import fingerprint

    ours, theirs = instrumented(report_enabled=True), instrumented(report_enabled=True)
    ours.slow_queries = SlowQueries()
    ours.slow_queries.add(fingerprint("select * from users where email = 'x'"), "sqlite", 0.25, "/users")
    assert ours.report is not None and theirs.report is not None
    snapshot = ours.report.snapshot()
    (row,) = snapshot["slow_queries"]
    assert row["fingerprint"] == "select * from users where email = ?"
    assert (row["route"], row["count"], row["max"]) == ("/users", 1, 0.25)
    assert snapshot["index_hints"] == []
    assert theirs.report.snapshot()["slow_queries"] == []
