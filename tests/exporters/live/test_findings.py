"""The live page's receiver: cache results and bottlenecks by route as counters, the latest N+1 findings kept."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from slipstream import RequestRecord
from slipstream.config import DURATION_BUCKETS
from slipstream.exporters.live.findings import MAX_FINDINGS, LiveFindings
from slipstream.exporters.metrics import Metrics
from tests.support import http_scope, instrumented


def finished(
    route: str, cache: str | None = None, bottleneck: str | None = None, n_plus_one: str | None = None
) -> RequestRecord:
    record = RequestRecord(instrumented(), http_scope(), "GET", 0.0)
    record.label, record.status, record.cache, record.bottleneck = route, 200, cache, bottleneck
    if n_plus_one is not None:
        record.fingerprints = {n_plus_one: 7}
        record.n_plus_one = {n_plus_one: "app.py:12"}
    return record


def test_cache_results_and_bottlenecks_are_counted_by_route() -> None:
    registry = CollectorRegistry()
    findings = LiveFindings(Metrics.register(registry, DURATION_BUCKETS))
    for outcome in ("HIT", "HIT", "MISS", "STALE"):
        findings.request_finished(finished("/a", cache=outcome))
    findings.request_finished(finished("/b", bottleneck="render"))
    sample = registry.get_sample_value
    assert (
        sample(
            "slipstream_cache_route_requests_total", {"http_request_method": "GET", "http_route": "/a", "result": "hit"}
        )
        == 2
    )
    assert (
        sample(
            "slipstream_cache_route_requests_total",
            {"http_request_method": "GET", "http_route": "/a", "result": "stale"},
        )
        == 1
    )
    assert sample("slipstream_bottlenecks_total", {"http_route": "/b", "operation": "render"}) == 1
    assert findings.findings() == []


def test_n_plus_one_findings_keep_the_latest_ones_only() -> None:
    clock = iter(range(10_000))
    findings = LiveFindings(Metrics.register(CollectorRegistry(), DURATION_BUCKETS), clock=lambda: float(next(clock)))
    findings.request_finished(finished("/first", n_plus_one="SELECT a"))
    findings.request_finished(finished("/first", n_plus_one="SELECT a"))
    [first] = findings.findings()
    assert (first["route"], first["requests"], first["executions"], first["caller"]) == ("/first", 2, 7, "app.py:12")
    for index in range(MAX_FINDINGS + 5):
        findings.request_finished(finished(f"/r{index}", n_plus_one="SELECT b"))
    rows = findings.findings()
    assert len(rows) == MAX_FINDINGS
    assert rows[0]["route"] == f"/r{MAX_FINDINGS + 4}" and "/first" not in {row["route"] for row in rows}
    # Seen again, an old finding moves to the front instead of being dropped.
    findings.request_finished(finished("/r10", n_plus_one="SELECT b"))
    assert findings.findings()[0]["route"] == "/r10" and findings.findings()[0]["requests"] == 2
