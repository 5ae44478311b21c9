"""grafana/ against the real thing: the demo app under uvicorn (one process, and two workers behind the sidecar)
under a bounded load, scraped by a real Prometheus that loads the shipped rules.

Every rule evaluates without error; the route error-ratio alert is pending or firing while the load makes 5xx, and
the upstream one while the stand-in model answers 503 to a third of the calls; every
query of every panel, its variables substituted and ``$__rate_interval`` a concrete window, returns data from both
ways of serving, except what multiprocess mode cannot have (the per-process collectors and the pool gauges, which
must then be empty, not broken) and the week-ago comparison of a Prometheus a minute old. Each expression is parsed
with promql-parser before Prometheus runs it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import promql_parser
import pytest

from tests.grafana.live_stack import Load, Served, Stack, demo_stack
from tests.grafana.promql import vector_selectors
from tests.prometheus_server import PrometheusServer, run_prometheus_server

GRAFANA = Path(__file__).resolve().parents[2] / "grafana"
JOBS = {"single": "slipstream-app", "workers": "slipstream-workers"}
# What $__rate_interval stands for: four scrapes of 1 s would be its floor; a minute holds the whole test.
RATE_WINDOW = "1m"
# Series a process behind the sidecar cannot have: per-process collectors, and gauges read from its pools.
PER_PROCESS = (
    "process_",
    "python_",
    "db_client_connection_count",
    "db_client_connection_max",
    "db_client_connection_pending",
)
WAIT = 60.0


@dataclass(frozen=True)
class PanelQuery:
    where: str
    expr: str


def panel_queries() -> list[PanelQuery]:
    found = []
    for path in sorted((GRAFANA / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                where = f"{dashboard['uid']} / {panel['title']} / {target['refId']}"
                found.append(PanelQuery(where, target["expr"]))
    return found


def concrete(expr: str, job: str, instance: str) -> str:
    """The query Grafana sends for one job and instance; parsed here first, so a syntax error is ours, not the
    server's."""
    text = expr.replace("$__rate_interval", RATE_WINDOW).replace("$job", job).replace("$instance", instance)
    promql_parser.parse(text)
    return text


def expectation(expr: str, how: str) -> str:
    """``data``, ``empty`` (must be), or ``any`` (the week-ago line)."""
    names = {found.node.name for found in vector_selectors(promql_parser.parse(expr.replace("$__rate_interval", "1m")))}
    if "offset 1w" in expr:
        return "any"
    if how == "workers" and any(name.startswith(PER_PROCESS) for name in names):
        return "empty"
    if how == "single" and "slipstream_sidecar_workers" in names:
        return "empty"
    return "data"


def poll(what: str, check: Callable[[], list[str]], stack: Stack, prometheus: PrometheusServer) -> None:
    """Run ``check`` until it lists nothing wrong; fail with its last list after ``WAIT`` seconds."""
    deadline = time.monotonic() + WAIT
    for _ in range(math.ceil(WAIT / 0.5) + 1):
        wrong = check()
        if not wrong or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if wrong:
        pytest.fail(f"{what}:\n" + "\n".join(wrong[:30]) + f"\n{prometheus.log()}\n{stack.logs()}")


def rules_in_error(prometheus: PrometheusServer) -> list[str]:
    rules = prometheus.rules()
    broken = [f"{r['name']}: {r.get('lastError')}" for r in rules if r["health"] == "err"]
    if broken:
        pytest.fail("rules fail to evaluate:\n" + "\n".join(broken))
    assert len(rules) == 56, [r["name"] for r in rules]
    return [f"{r['name']} is {r['health']}" for r in rules if r["health"] != "ok"]


def error_alerts_missing(prometheus: PrometheusServer) -> list[str]:
    wanted = {
        ("SlipstreamRouteErrorRatioHigh", "http_route", "/reports/broken"),
        ("SlipstreamUpstreamErrorRatioHigh", "server_address", "model.demo.internal"),
    }
    seen = {
        (alert["labels"]["alertname"], label, value, alert["labels"]["job"])
        for alert in prometheus.alerts()
        for name, label, value in wanted
        if alert["labels"]["alertname"] == name
        and alert["labels"].get(label) == value
        and alert["state"] in {"pending", "firing"}
    }
    return [
        f"no {name} for {job}'s {value}"
        for name, label, value in sorted(wanted)
        for job in JOBS.values()
        if (name, label, value, job) not in seen
    ]


def panels_without_their_data(prometheus: PrometheusServer, served: dict[str, Served]) -> Callable[[], list[str]]:
    pending = {
        (query.where, how): (concrete(query.expr, JOBS[how], served[how].metrics), expectation(query.expr, how))
        for query in panel_queries()
        for how in JOBS
    }

    def check() -> list[str]:
        for key, (text, wanted) in list(pending.items()):
            result = prometheus.query(text)
            if wanted == "any" or (wanted == "data") == bool(result):
                del pending[key]
        return [
            f"{where} ({how}): expected {pending[where, how][1]}: {pending[where, how][0]}" for where, how in pending
        ]

    return check


def test_the_dashboards_and_rules_on_a_live_prometheus(tmp_path: Path) -> None:
    with demo_stack(tmp_path) as stack:
        served = {"single": stack.single, "workers": stack.workers}
        targets = {JOBS[how]: served[how].metrics for how in JOBS}
        rule_files = sorted((GRAFANA / "rules").glob("*.yml"))
        load = Load([stack.single.url, stack.workers.url])
        with run_prometheus_server(targets, rule_files=rule_files) as prometheus:
            load.start()
            try:
                poll("rules not evaluated", lambda: rules_in_error(prometheus), stack, prometheus)
                poll("the error-ratio alerts", lambda: error_alerts_missing(prometheus), stack, prometheus)
                poll("panels", panels_without_their_data(prometheus, served), stack, prometheus)
                # The variables list both jobs, and each job's instance.
                jobs = prometheus.api("label/job/values", **{"match[]": 'up{job=~"slipstream.*"}'})
                assert sorted(jobs) == sorted(JOBS.values())
                for how, job in JOBS.items():
                    instances = prometheus.api("label/instance/values", **{"match[]": f'up{{job=~"{job}"}}'})
                    assert instances == [served[how].metrics]
            finally:
                load.stop()
    assert not load.failures, load.failures[:5]
    assert load.statuses.get(500, 0) >= 2 and load.statuses.get(304, 0) >= 1 and load.statuses.get(412, 0) >= 1
    assert load.statuses.get(502, 0) >= 2, "the stand-in model never answered 503"
