"""The dashboard lint over every panel of every shipped dashboard, and the lint itself catching each kind of mistake."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.grafana.dashboard_lint import lint

GRAFANA = Path(__file__).resolve().parents[2] / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def test_the_five_dashboards_keep_their_uids() -> None:
    uids = {load(path)["uid"]: path.name for path in DASHBOARDS}
    assert uids == {
        "slipstream-overview": "slipstream-overview.json",
        "slipstream-cache": "slipstream-cache.json",
        "slipstream-database": "slipstream-database.json",
        "slipstream-operations": "slipstream-operations.json",
        "slipstream-outbound": "slipstream-outbound.json",
    }


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.stem)
def test_every_panel_passes_the_lint(path: Path) -> None:
    dashboard = load(path)
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert len(panels) >= 6, "a dashboard with few panels says little about the lint"
    assert lint(dashboard) == []


def first_target(dashboard: dict[str, Any]) -> dict[str, Any]:
    target: dict[str, Any] = next(p for p in dashboard["panels"] if p["type"] != "row")["targets"][0]
    return target


def variable(dashboard: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(v for v in dashboard["templating"]["list"] if v["name"] == name)
    return found


def first_panel(dashboard: dict[str, Any]) -> dict[str, Any]:
    panel: dict[str, Any] = next(p for p in dashboard["panels"] if p["type"] != "row")
    return panel


def set_expr(expr: str) -> Callable[[dict[str, Any]], None]:
    def change(dashboard: dict[str, Any]) -> None:
        first_target(dashboard)["expr"] = expr

    return change


HERE = '{job=~"$job",instance=~"$instance"}'
MISTAKES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "no instance matcher": (
        lambda d: first_target(d).update(expr=first_target(d)["expr"].replace(',instance=~"$instance"', "")),
        'does not select instance=~"$instance"',
    ),
    "job matched exactly": (
        set_expr(
            'sum(rate(http_server_request_duration_seconds_count{job="api",instance=~"$instance"}[$__rate_interval]))'
        ),
        'does not select job=~"$job"',
    ),
    "a fixed rate window": (
        set_expr(f"sum(rate(http_server_request_duration_seconds_count{HERE}[5m]))"),
        "not $__rate_interval",
    ),
    "a counter read raw": (
        set_expr(f"sum(slipstream_cache_requests_total{HERE})"),
        "counter slipstream_cache_requests_total is not inside rate()",
    ),
    "a histogram bucket without rate": (
        set_expr(f"histogram_quantile(0.9, sum by (le) (http_server_request_duration_seconds_bucket{HERE}))"),
        "counter http_server_request_duration_seconds_bucket",
    ),
    "an outbound histogram read raw": (
        set_expr(f"sum(http_client_request_duration_seconds_count{HERE})"),
        "counter http_client_request_duration_seconds_count is not inside rate()",
    ),
    "not PromQL": (set_expr('sum(rate(x{job=~"$job"}[$__rate_interval])'), "is not PromQL"),
    "no unit": (lambda d: first_panel(d)["fieldConfig"]["defaults"].pop("unit"), "unit None is not one of Grafana's"),
    "a made-up unit": (
        lambda d: first_panel(d)["fieldConfig"]["defaults"].update(unit="requests"),
        "unit 'requests' is not one of Grafana's",
    ),
    "no description": (lambda d: first_panel(d).update(description=""), "no description"),
    "a fixed data source": (
        lambda d: first_panel(d).update(datasource={"type": "prometheus", "uid": "prometheus"}),
        "is not the $datasource variable",
    ),
    "a target on another data source": (
        lambda d: first_target(d).update(datasource={"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}),
        "is not the $datasource variable",
    ),
    "all instances as .*": (lambda d: variable(d, "instance").update(allValue=".*"), "allValue is '.*', not '.+'"),
    "single-select job": (lambda d: variable(d, "job").update(multi=False), "job: multi is False"),
    "job values not refreshed with the time range": (lambda d: variable(d, "job").update(refresh=1), "refresh is 1"),
    "instances of every job": (
        lambda d: variable(d, "instance").update(query='label_values(up{job=~"slipstream.*"}, instance)'),
        "instance: its values are not those of the chosen jobs",
    ),
    "no datasource variable": (
        lambda d: d["templating"].update(list=[v for v in d["templating"]["list"] if v["name"] != "datasource"]),
        "datasource: missing",
    ),
    "an old schema": (lambda d: d.update(schemaVersion=36), "schemaVersion 36 is not 39"),
    "editable": (lambda d: d.update(editable=True), "editable"),
    "a uid with a space": (lambda d: d.update(uid="slipstream overview"), "uid 'slipstream overview'"),
    "a numeric refresh": (lambda d: d.update(refresh=False), "refresh is not a string"),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_the_lint_catches(mistake: str) -> None:
    dashboard = copy.deepcopy(load(GRAFANA / "dashboards" / "slipstream-overview.json"))
    change, message = MISTAKES[mistake]
    change(dashboard)
    problems = lint(dashboard)
    assert any(message in problem for problem in problems), problems
