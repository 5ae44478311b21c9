"""What Grafana's importer and file provisioning need of the shipped files, checked without a Grafana server (none
can be installed here): the dashboard model's shape, a grid without overlaps, and provisioning files that refer to
each other and to the dashboards consistently."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

GRAFANA = Path(__file__).resolve().parents[2] / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
PANEL_TYPES = {"row", "timeseries", "stat", "table"}


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.stem)
def test_the_dashboard_model_is_what_the_importer_reads(path: Path) -> None:
    dashboard = load(path)
    # A new dashboard for the importer: no database id; a uid, a title, a time range, variables and panels.
    assert dashboard["id"] is None
    assert isinstance(dashboard["uid"], str) and dashboard["title"].startswith("slipstream / ")
    assert isinstance(dashboard["schemaVersion"], int) and isinstance(dashboard["version"], int)
    assert dashboard["time"] == {"from": "now-1h", "to": "now"}
    assert isinstance(dashboard["templating"]["list"], list) and isinstance(dashboard["panels"], list)
    assert dashboard["annotations"]["list"][0]["builtIn"] == 1
    used = {panel["type"] for panel in dashboard["panels"] if panel["type"] != "row"}
    required = {(item["type"], item["id"]) for item in dashboard["__requires"]}
    assert {("panel", kind) for kind in used} | {("datasource", "prometheus"), ("grafana", "grafana")} == required
    for variable in dashboard["templating"]["list"]:
        assert {"name", "type", "label", "hide"} <= set(variable)
        assert variable["type"] in {"datasource", "query"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.stem)
def test_panels_have_unique_ids_and_tile_the_grid(path: Path) -> None:
    panels = load(path)["panels"]
    assert [panel["id"] for panel in panels] == list(range(1, len(panels) + 1))
    taken: set[tuple[int, int]] = set()
    for panel in panels:
        assert panel["type"] in PANEL_TYPES
        grid = panel["gridPos"]
        assert set(grid) == {"h", "w", "x", "y"} and all(isinstance(v, int) for v in grid.values())
        assert 1 <= grid["w"] and grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] >= 1
        cells = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"panel {panel['title']!r} overlaps another"
        taken |= cells
        if panel["type"] == "row":
            # An expanded row: its panels follow it at the top level, as Grafana saves them.
            assert panel["collapsed"] is False and panel["panels"] == [] and grid["w"] == 24
        else:
            assert [t["refId"] for t in panel["targets"]] == [chr(ord("A") + i) for i in range(len(panel["targets"]))]
            assert set(panel["fieldConfig"]) == {"defaults", "overrides"}
    # Panels come in reading order: Grafana lays rows out by y, then x.
    assert [(p["gridPos"]["y"], p["gridPos"]["x"]) for p in panels] == sorted(
        (p["gridPos"]["y"], p["gridPos"]["x"]) for p in panels
    )


def test_the_tables_merge_their_queries_into_sortable_columns() -> None:
    tables = [panel for path in DASHBOARDS for panel in load(path)["panels"] if panel["type"] == "table"]
    assert len(tables) == 3
    for table in tables:
        columns = table["transformations"][1]["options"]["renameByName"]
        assert table["transformations"][0]["id"] == "merge"
        assert len(columns) == len(table["targets"]) and all(
            t["instant"] and t["format"] == "table" for t in table["targets"]
        )
        assert table["options"]["sortBy"][0]["displayName"] in columns.values()


def test_the_latency_panels_link_exemplars_to_the_traces_variable() -> None:
    overview = load(GRAFANA / "dashboards/slipstream-overview.json")
    traces = [v for v in overview["templating"]["list"] if v["name"] == "traces"]
    assert traces and traces[0]["type"] == "datasource" and traces[0]["query"] == "tempo"
    linked = [panel for panel in overview["panels"] if any(t.get("exemplar") for t in panel.get("targets", []))]
    assert len(linked) == 2
    for panel in linked:
        (override,) = panel["fieldConfig"]["overrides"]
        assert override["matcher"] == {"id": "byName", "options": "trace_id"}
        (link,) = override["properties"][0]["value"]
        assert '"datasource":"${traces}"' in link["url"] and "${__value.raw}" in link["url"]


def read_yaml(relative: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((GRAFANA / relative).read_text())
    return loaded


def test_the_dashboard_provider_reads_a_folder_of_files() -> None:
    provider = read_yaml("provisioning/dashboards/slipstream.yml")
    assert provider["apiVersion"] == 1
    (only,) = provider["providers"]
    assert only["type"] == "file" and only["name"] and only["folder"] == "slipstream"
    assert only["options"]["path"].startswith("/") and only["allowUiUpdates"] is False


def test_the_datasources_link_exemplars_to_the_tracing_source() -> None:
    sources = {source["uid"]: source for source in read_yaml("provisioning/datasources/slipstream.yml")["datasources"]}
    assert {source["type"] for source in sources.values()} == {"prometheus", "tempo"}
    for source in sources.values():
        assert source["access"] == "proxy" and source["url"].startswith("http") and source["name"]
    prometheus = sources["prometheus"]
    (destination,) = prometheus["jsonData"]["exemplarTraceIdDestinations"]
    # The trace id label slipstream puts on its exemplars, sent to the provisioned Tempo.
    assert destination == {"name": "trace_id", "datasourceUid": "tempo"} and sources["tempo"]["type"] == "tempo"


def test_the_prometheus_example_scrapes_a_job_the_rules_select() -> None:
    config = read_yaml("prometheus.yml")
    assert config["rule_files"] == ["rules/slipstream-recording.rules.yml", "rules/slipstream-alerts.rules.yml"]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "slipstream" and job["metrics_path"] == "/metrics"
