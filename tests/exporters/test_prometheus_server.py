"""End to end with a real Prometheus: an installed app under uvicorn (lifespan on), its metrics port, PromQL.

The app runs in its own process (tests/exporters/prometheus_app.py) because it sets the global OpenTelemetry
tracer provider, which can be set once per process. Traffic goes in two rounds with a scrape in between:
``rate()`` only counts increases between scraped samples, so a series first scraped at its final value
would have a rate of zero and ``histogram_quantile`` over it would be NaN.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_open_metrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from tests.exporters.test_prometheus import promtool
from tests.prometheus_server import JOB, PrometheusServer, Sample, run_prometheus_server
from tests.support import free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]
OPEN_METRICS = "application/openmetrics-text; version=1.0.0"
DURATION = "http_server_request_duration_seconds"
ITEMS = "/items/{item_id}"
BROKEN = "/broken"
# (item requests, broken requests) per round.
ROUNDS = ((15, 2), (15, 3))
ITEM_REQUESTS = sum(items for items, _ in ROUNDS)
BROKEN_REQUESTS = sum(broken for _, broken in ROUNDS)


@dataclass
class ServedApp:
    url: str
    metrics_port: int
    log_path: Path
    exit_status: int | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""


@dataclass
class Scenario:
    """The app after both rounds of traffic, and the Prometheus scraping it."""

    app: ServedApp
    prometheus: PrometheusServer
    # Trace ids of the spans of every request sent, as the app reported them in its responses.
    trace_ids: set[str] = field(default_factory=set)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def serve_app(log_path: Path, metrics_port: int, timeout: float = 20.0) -> Iterator[ServedApp]:
    """``python -m uvicorn tests.exporters.prometheus_app:app --lifespan on`` on a free loopback port."""
    port = free_port()
    # Variables that would change the app (no SDK tracing, multiprocess metrics) are not passed on.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SLIPSTREAM_", "PROMETHEUS_"))}
    env["PROMETHEUS_APP_METRICS_PORT"] = str(metrics_port)
    command = [sys.executable, "-m", "uvicorn", "tests.exporters.prometheus_app:app", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--lifespan", "on", "--log-level", "info", "--no-access-log"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    served = ServedApp(f"http://127.0.0.1:{port}", metrics_port, log_path)
    try:
        # A bare connection, not a request, so the metrics count only the requests the tests send. Uvicorn
        # binds after the lifespan startup, so by then the metrics server has been started too.
        deadline = time.monotonic() + timeout
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the app did not listen on port {port} within {timeout}s:\n{served.log()}")
            time.sleep(0.05)
        yield served
    finally:
        served.exit_status = stop_process(process)


def send_round(client: httpx.Client, items: int, broken: int, trace_ids: set[str]) -> None:
    """The broken requests first: a scrape that shows all the item requests then shows them too."""
    for _ in range(broken):
        response = client.get(BROKEN)
        assert response.status_code == 500, response.text
        trace_ids.add(response.headers["x-trace-id"])
    for n in range(items):
        response = client.get(f"/items/{n % 3 + 1}")
        assert response.status_code == 200, response.text
        trace_ids.add(response.headers["x-trace-id"])
    assert "0" * 32 not in trace_ids


def count_of(route: str) -> str:
    return f'sum({DURATION}_count{{http_route="{route}"}})'


def equals(expected: float) -> Callable[[list[Sample]], bool]:
    def check(result: list[Sample]) -> bool:
        return len(result) == 1 and result[0].value == expected

    return check


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    log_path = tmp_path_factory.mktemp("prometheus-app") / "uvicorn.log"
    metrics_port = free_port()
    # Prometheus first: its first scrape comes about 5 s after it starts, whatever the interval, so the app's
    # start and the first round of traffic fit into that wait.
    with (
        run_prometheus_server(f"127.0.0.1:{metrics_port}") as prometheus,
        serve_app(log_path, metrics_port) as served,
        httpx.Client(base_url=served.url, timeout=5.0) as client,
    ):
        scenario = Scenario(served, prometheus)
        (items, broken), *later = ROUNDS
        send_round(client, items, broken, scenario.trace_ids)
        # Prometheus must hold a first value of the series before the rest arrive (see the module docstring).
        prometheus.wait_for(count_of(ITEMS), equals(items))
        for items, broken in later:
            send_round(client, items, broken, scenario.trace_ids)
        yield scenario
    # SIGTERM runs the lifespan shutdown, which stops the metrics server thread; a hang there would end in
    # SIGKILL. Uvicorn 0.29+ re-raises the SIGTERM it handled once shut down, so -SIGTERM is a clean exit.
    log = served.log()
    assert served.exit_status in (0, -signal.SIGTERM), log
    assert "Application shutdown complete." in log, log
    assert "Traceback" not in log, log


def test_the_live_exposition_passes_promtool_and_carries_trace_exemplars(scenario: Scenario) -> None:
    with httpx.Client(timeout=5.0) as client:
        plain = client.get(f"{scenario.app.metrics_url}/metrics")
        open_metrics = client.get(f"{scenario.app.metrics_url}/metrics", headers={"accept": OPEN_METRICS})
    assert plain.status_code == 200
    assert plain.headers["content-type"].startswith("text/plain")
    checked = subprocess.run([promtool(), "check", "metrics"], input=plain.content, capture_output=True, timeout=30)
    assert checked.returncode == 0, checked.stderr.decode() + checked.stdout.decode()
    counts = {
        (s.labels["http_route"], s.labels["http_request_method"], s.labels["http_response_status_code"]): s.value
        for family in parse_text(plain.text)
        for s in family.samples
        if s.name == f"{DURATION}_count"
    }
    assert counts == {(ITEMS, "GET", "200"): ITEM_REQUESTS, (BROKEN, "GET", "500"): BROKEN_REQUESTS}
    assert "# {trace_id=" not in plain.text

    assert open_metrics.status_code == 200
    assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
    assert open_metrics.text.endswith("# EOF\n")
    # The strict OpenMetrics parser (untyped in prometheus_client): a malformed exemplar or a missing # EOF raises.
    parsed = parse_open_metrics(open_metrics.text)  # type: ignore[no-untyped-call]
    families = {family.name: family for family in parsed}
    exemplars = [s.exemplar for s in families[DURATION].samples if s.name == f"{DURATION}_bucket" and s.exemplar]
    assert exemplars, open_metrics.text
    for exemplar in exemplars:
        assert set(exemplar.labels) == {"trace_id", "span_id"}
        assert exemplar.labels["trace_id"] in scenario.trace_ids
        assert re.fullmatch("[0-9a-f]{16}", exemplar.labels["span_id"]), exemplar


def test_prometheus_scrapes_routes_rates_and_quantiles(scenario: Scenario) -> None:
    prometheus = scenario.prometheus
    prometheus.wait_for(count_of(ITEMS), equals(ITEM_REQUESTS))
    broken = prometheus.wait_for(f'{DURATION}_count{{http_route="{BROKEN}"}}', equals(BROKEN_REQUESTS))
    assert broken[0].labels["http_response_status_code"] == "500"
    assert broken[0].labels["http_request_method"] == "GET"
    assert prometheus.query(f'up{{job="{JOB}"}}')[0].value == 1

    rates = prometheus.query(f"rate({DURATION}_count[1m])")
    items = [sample for sample in rates if sample.labels["http_route"] == ITEMS]
    assert len(items) == 1, rates
    assert items[0].labels["http_request_method"] == "GET"
    assert items[0].labels["http_response_status_code"] == "200"
    assert items[0].value > 0
    assert {sample.labels["http_route"] for sample in rates} == {ITEMS, BROKEN}

    quantile = prometheus.query(f"histogram_quantile(0.95, sum by (le) (rate({DURATION}_bucket[1m])))")
    assert len(quantile) == 1, quantile
    assert math.isfinite(quantile[0].value), quantile
    assert 0 < quantile[0].value <= 10


def test_prometheus_stores_exemplars_with_the_requests_trace_ids(scenario: Scenario) -> None:
    # One span, so one trace, per request.
    assert len(scenario.trace_ids) == ITEM_REQUESTS + BROKEN_REQUESTS
    prometheus = scenario.prometheus
    # Exemplars are only read from OpenMetrics scrapes: finding them shows Prometheus negotiated it.
    exemplars = prometheus.wait_for_exemplars(
        f"{DURATION}_bucket",
        lambda found: {e.series["http_route"] for e in found if "trace_id" in e.labels} == {ITEMS, BROKEN},
    )
    for exemplar in exemplars:
        assert exemplar.labels["trace_id"] in scenario.trace_ids
        assert exemplar.series["job"] == JOB
        # An exemplar is attached to the bucket its observation fell into.
        assert exemplar.value <= float(exemplar.series["le"])


def test_the_report_on_the_metrics_port(scenario: Scenario) -> None:
    with httpx.Client(timeout=5.0) as client:
        response = client.get(f"{scenario.app.metrics_url}/report")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    report = response.json()
    routes = {(row["method"], row["route"]): row for row in report["slowest_routes"]}
    assert set(routes) == {("GET", ITEMS), ("GET", BROKEN)}
    items = routes["GET", ITEMS]
    assert items["requests"] == ITEM_REQUESTS
    assert items["error_rate"] == 0
    assert 0 < items["p50"] <= items["p95"] <= items["p99"] <= items["max"]
    assert routes["GET", BROKEN]["requests"] == BROKEN_REQUESTS
    assert routes["GET", BROKEN]["error_rate"] == 1.0
    assert [row["route"] for row in report["error_routes"]] == [BROKEN]
