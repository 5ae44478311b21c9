"""A dashboard around panels: ``layout()`` places them left to right on Grafana's 24-column grid and numbers them in
order, so ids are stable from one rendering to the next; ``dashboard()`` adds the variables and what Grafana's importer
and file provisioning read.
"""

from __future__ import annotations

from collections.abc import Sequence

from slipstream.grafana.panels import DATASOURCE, JOB, Json, Panel, Query, Row, ref
from slipstream.grafana.promql import select

__all__ = ["SCHEMA_VERSION", "dashboard", "layout"]

# Written by Grafana 10.4 and 11; Grafana 12 migrates it on load (versions 40-42 only normalise fields we write in
# their final form already: a string ``refresh``, no ``timepicker.time_options``, no hidden-from-viz overrides).
SCHEMA_VERSION = 39


def _target(index: int, query: Query) -> Json:
    target: Json = {
        "refId": ref(index),
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": query.expr,
        "legendFormat": query.legend or "__auto",
        "range": not query.instant,
        "instant": query.instant,
        "exemplar": query.exemplar,
    }
    if query.instant:
        target["format"] = "table"
    return target


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> Json:
    defaults = {"unit": panel.unit, **panel.defaults}
    built: Json = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "targets": [_target(i, query) for i, query in enumerate(panel.queries)],
        "fieldConfig": {"defaults": defaults, "overrides": list(panel.overrides)},
        "options": panel.options,
    }
    if panel.transformations:
        built["transformations"] = list(panel.transformations)
    return built


def layout(items: Sequence[Panel | Row]) -> list[Json]:
    """Panels and rows on the 24-column grid, in reading order, numbered from 1."""
    placed: list[Json] = []
    x = y = height = 0
    for number, item in enumerate(items, start=1):
        if isinstance(item, Row) or x + item.width > 24:
            x, y, height = 0, y + height, 0
        if isinstance(item, Row):
            grid = {"h": 1, "w": 24, "x": 0, "y": y}
            placed.append(
                {"id": number, "type": "row", "title": item.title, "collapsed": False, "gridPos": grid, "panels": []}
            )
            y += 1
            continue
        placed.append(_panel(item, number, x, y))
        x, height = x + item.width, max(height, item.height)
    return placed


def _variable(name: str, query: str) -> Json:
    """A multi-select query variable whose "All" is ``.+``, refreshed when the time range changes."""
    return {
        "name": name,
        "label": name.capitalize(),
        "type": "query",
        "datasource": DATASOURCE,
        "query": query,
        "definition": query,
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".+",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "regex": "",
        "sort": 1,
        "hide": 0,
    }


def _datasource_variable(name: str, label: str, plugin: str) -> Json:
    return {
        "name": name,
        "label": label,
        "type": "datasource",
        "query": plugin,
        "current": {},
        "options": [],
        "refresh": 1,
        "regex": "",
        "hide": 0,
    }


def dashboard(
    uid: str, title: str, description: str, selector: str, items: Sequence[Panel | Row], *, traces: bool = False
) -> Json:
    """The dashboard as Grafana's importer and file provisioning take it (``id`` null: a new dashboard)."""
    variables = [_datasource_variable("datasource", "Data source", "prometheus")]
    if traces:
        variables.append(_datasource_variable("traces", "Traces", "tempo"))
    variables += [
        _variable("job", f"label_values({select('up', selector)}, job)"),
        _variable("instance", f"label_values({select('up', selector, JOB)}, instance)"),
    ]
    panels = layout(items)
    kinds = sorted({panel["type"] for panel in panels if panel["type"] != "row"})
    requires = [
        {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.4.0"},
        {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
    ]
    requires += [{"type": "panel", "id": kind, "name": kind, "version": ""} for kind in kinds]
    return {
        "__inputs": [],
        "__requires": requires,
        "id": None,
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["slipstream"],
        "editable": False,
        "graphTooltip": 1,
        "timezone": "browser",
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {"refresh_intervals": ["30s", "1m", "5m", "15m", "1h"]},
        "refresh": "1m",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "links": [
            {
                "type": "dashboards",
                "tags": ["slipstream"],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
                "title": "slipstream",
                "icon": "external link",
                "targetBlank": False,
                "tooltip": "",
                "url": "",
            }
        ],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {"list": variables},
        "panels": panels,
    }
