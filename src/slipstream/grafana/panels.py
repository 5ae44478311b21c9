"""Grafana panels built from plain Python: time series, stats and tables, and the PromQL helpers their queries use.

Every panel reads the ``$datasource`` variable, every query selects on ``$job`` and ``$instance`` (``here()``) and
every panel has a unit and a description; ``slipstream.grafana.layout`` places them and wraps them in a dashboard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from slipstream.grafana.promql import select

__all__ = [
    "DATASOURCE",
    "JOB",
    "RATE",
    "Json",
    "Panel",
    "Query",
    "Row",
    "here",
    "histogram_quantile",
    "rate",
    "ref",
    "stat",
    "table",
    "timeseries",
]

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# What every dashboard query selects on.
HERE = 'job=~"$job",instance=~"$instance"'
JOB = 'job=~"$job"'
RATE = "[$__rate_interval]"
Json = dict[str, Any]


def rate(metric: str, *matchers: str, by: str = "") -> str:
    """``sum [by (...)] (rate(metric{here, matchers}[$__rate_interval]))``."""
    grouping = f"sum by ({by}) " if by else "sum "
    return f"{grouping}(rate({here(metric, *matchers)}{RATE}))"


def histogram_quantile(q: float, bucket: str, by: str = "") -> str:
    """The ``q`` quantile of the histogram whose ``_bucket`` series is ``bucket``, per ``by`` labels."""
    return f"histogram_quantile({q:g}, {rate(bucket, by=', '.join(filter(None, (by, 'le'))))})"


def histogram_mean(metric: str, by: str = "") -> str:
    """The mean observation of the histogram ``metric`` (its ``_sum`` rate over its ``_count`` rate), per ``by``."""
    return f"{rate(f'{metric}_sum', by=by)}\n/\n{rate(f'{metric}_count', by=by)}"


def here(metric: str, *matchers: str) -> str:
    """``metric`` selected on the dashboard's job and instance variables, and ``matchers``."""
    return select(metric, HERE, *matchers)


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    # Tables and stats read one value per series; exemplars are asked for on request-duration panels.
    instant: bool = False
    exemplar: bool = False
    column: str = ""
    unit: str = ""


@dataclass(frozen=True)
class Panel:
    kind: str
    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]
    width: int = 12
    height: int = 8
    options: Json = field(default_factory=dict)
    defaults: Json = field(default_factory=dict)
    overrides: tuple[Json, ...] = ()
    transformations: tuple[Json, ...] = ()


@dataclass(frozen=True)
class Row:
    title: str


def _thresholds(*steps: tuple[str, float | None]) -> Json:
    return {"mode": "absolute", "steps": [{"color": color, "value": value} for color, value in steps]}


def timeseries(
    title: str,
    description: str,
    unit: str,
    *queries: Query,
    width: int = 12,
    stack: bool = False,
    threshold: float | None = None,
    links: Sequence[Json] = (),
) -> Panel:
    """A time series; ``threshold`` draws a red line at that value (an alert's threshold)."""
    custom: Json = {
        "drawStyle": "line",
        "lineWidth": 1,
        "fillOpacity": 20 if stack else 10,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "thresholdsStyle": {"mode": "line" if threshold is not None else "off"},
    }
    defaults: Json = {"custom": custom, "min": 0, "thresholds": _thresholds(("green", None), ("red", threshold))}
    if threshold is None:
        defaults["thresholds"] = _thresholds(("green", None))
    overrides: tuple[Json, ...] = ()
    if links:
        # Exemplars arrive as their own frame, with the trace id in a field of that name.
        overrides = (
            {"matcher": {"id": "byName", "options": "trace_id"}, "properties": [{"id": "links", "value": list(links)}]},
        )
    options = {
        "legend": {
            "displayMode": "table",
            "placement": "bottom",
            "showLegend": True,
            "calcs": ["mean", "max", "lastNotNull"],
        },
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return Panel("timeseries", title, description, unit, queries, width, 8, options, defaults, overrides)


def stat(
    title: str,
    description: str,
    unit: str,
    query: Query,
    *,
    width: int = 4,
    red_above: float | None = None,
    red_below: float | None = None,
) -> Panel:
    """One number (the last value of one series), green or red against a threshold."""
    if red_above is not None:
        thresholds = _thresholds(("green", None), ("red", red_above))
    elif red_below is not None:
        thresholds = _thresholds(("red", None), ("green", red_below))
    else:
        thresholds = _thresholds(("blue", None))
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "value",
        "graphMode": "area",
        "textMode": "auto",
        "justifyMode": "auto",
        "orientation": "auto",
    }
    return Panel("stat", title, description, unit, (query,), width, 4, options, {"thresholds": thresholds})


def table(title: str, description: str, unit: str, *queries: Query, sort_by: str, width: int = 24) -> Panel:
    """One row per series, one column per query (``Query.column``, ``Query.unit``), sortable by any column."""
    names = {f"Value #{ref(i)}": query.column for i, query in enumerate(queries)}
    overrides = tuple(
        {"matcher": {"id": "byName", "options": query.column}, "properties": [{"id": "unit", "value": query.unit}]}
        for query in queries
        if query.unit
    )
    transformations = (
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": names}},
    )
    options = {"showHeader": True, "cellHeight": "sm", "sortBy": [{"displayName": sort_by, "desc": True}]}
    return Panel("table", title, description, unit, queries, width, 10, options, {}, overrides, transformations)


def ref(index: int) -> str:
    return chr(ord("A") + index)
