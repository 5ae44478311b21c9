"""A dashboard linter: Grafana's dashboard-linter rules (datasource, job and instance variables; every target on the
templated datasource, selecting on job and instance, with ``$__rate_interval`` and counters inside rate/increase;
a title, a description and a valid unit on every panel; not editable) and the issue's own (stable uids, the schema
version, the migrations of later schema versions already applied). ``lint(dashboard)`` lists what is wrong.
"""

from __future__ import annotations

import re
from typing import Any

from slipstream.grafana.layout import SCHEMA_VERSION
from tests.grafana.promql import counter_problems, matchers, parse, range_problems, vector_selectors

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Grafana's unit ids (packages/grafana-data valueFormats) of the kinds these dashboards show.
UNITS = {
    "none", "short", "percent", "percentunit", "bytes", "decbytes", "bits", "Bps", "binBps", "bps",
    "ns", "µs", "ms", "s", "m", "h", "d", "dtdurations", "reqps", "rps", "ops", "wps", "iops", "cps", "bool",
}  # fmt: skip
UID = re.compile(r"[a-zA-Z0-9_-]{1,40}")
LABEL_VALUES = re.compile(r"label_values\((?P<selector>.+), (?P<label>[a-z_]+)\)", re.DOTALL)


def lint(dashboard: dict[str, Any]) -> list[str]:
    """Every broken rule of ``dashboard``, as ``where: what`` lines; empty when it passes."""
    problems = [f"dashboard: {p}" for p in _dashboard(dashboard)]
    problems += [f"variable {p}" for p in _variables(dashboard.get("templating", {}).get("list", []))]
    for panel in dashboard.get("panels", []):
        if panel.get("type") != "row":
            problems += [f"panel {panel.get('title')!r}: {p}" for p in _panel(panel)]
    return problems


def _dashboard(dashboard: dict[str, Any]) -> list[str]:
    problems = []
    if not UID.fullmatch(str(dashboard.get("uid", ""))):
        problems.append(f"uid {dashboard.get('uid')!r} is not 1-40 letters, digits, - or _")
    if dashboard.get("schemaVersion") != SCHEMA_VERSION:
        problems.append(f"schemaVersion {dashboard.get('schemaVersion')} is not {SCHEMA_VERSION}")
    if dashboard.get("editable") is not False:
        problems.append("editable: dashboards are rendered, not edited")
    # What schema versions 40-42 migrate, already in its final form.
    if not isinstance(dashboard.get("refresh"), str):
        problems.append("refresh is not a string (schema 40)")
    if "time_options" in dashboard.get("timepicker", {}):
        problems.append("timepicker.time_options is set (schema 41)")
    for panel in dashboard.get("panels", []):
        for override in panel.get("fieldConfig", {}).get("overrides", []):
            for prop in override.get("properties", []):
                hidden = prop.get("value") if prop.get("id") == "custom.hideFrom" else None
                if isinstance(hidden, dict) and hidden.get("viz") and not hidden.get("tooltip"):
                    problems.append(f"panel {panel.get('title')!r} hides a field from viz, not tooltip (schema 42)")
    return problems


def _variables(variables: list[dict[str, Any]]) -> list[str]:
    by_name = {variable.get("name"): variable for variable in variables}
    problems = []
    source = by_name.get("datasource")
    if source is None or source.get("type") != "datasource" or source.get("query") != "prometheus":
        problems.append("datasource: missing, or not a Prometheus data source variable")
    for name in ("job", "instance"):
        variable = by_name.get(name)
        if variable is None:
            problems.append(f"{name}: missing")
            continue
        wanted = {"type": "query", "datasource": DATASOURCE, "multi": True, "includeAll": True, "allValue": ".+"}
        wanted |= {"refresh": 2, "label": name.capitalize()}
        problems += [f"{name}: {key} is {variable.get(key)!r}, not {value!r}" for key, value in wanted.items()
                     if variable.get(key) != value]  # fmt: skip
        query = LABEL_VALUES.fullmatch(str(variable.get("query", "")))
        if query is None or query["label"] != name:
            problems.append(f"{name}: query {variable.get('query')!r} is not label_values(<selector>, {name})")
            continue
        try:
            (selector,) = vector_selectors(parse(query["selector"]))
        except ValueError as error:
            problems.append(f"{name}: {error}")
            continue
        if name == "instance" and matchers(selector.node).get("job") != ("=~", "$job"):
            problems.append('instance: its values are not those of the chosen jobs (job=~"$job")')
    return problems


def _panel(panel: dict[str, Any]) -> list[str]:
    problems = []
    if panel.get("datasource") != DATASOURCE:
        problems.append(f"datasource {panel.get('datasource')} is not the $datasource variable")
    for key in ("title", "description"):
        if not str(panel.get(key, "")).strip():
            problems.append(f"no {key}")
    field_config = panel.get("fieldConfig", {})
    units = [field_config.get("defaults", {}).get("unit")]
    units += [
        p.get("value")
        for o in field_config.get("overrides", [])
        for p in o.get("properties", [])
        if p.get("id") == "unit"
    ]
    problems += [f"unit {unit!r} is not one of Grafana's" for unit in units if unit not in UNITS]
    targets = panel.get("targets") or []
    if not targets:
        problems.append("no targets")
    if len({target.get("refId") for target in targets}) != len(targets):
        problems.append("two targets share a refId")
    for target in targets:
        problems += [f"target {target.get('refId')}: {p}" for p in _target(target)]
    return problems


def _target(target: dict[str, Any]) -> list[str]:
    if target.get("datasource") != DATASOURCE:
        return [f"datasource {target.get('datasource')} is not the $datasource variable"]
    try:
        tree = parse(str(target.get("expr", "")))
    except ValueError as error:
        return [str(error)]
    problems = counter_problems(tree) + range_problems(tree)
    for found in vector_selectors(tree):
        have = matchers(found.node)
        for label in ("job", "instance"):
            if have.get(label) != ("=~", f"${label}"):
                problems.append(f'{found.node.name} does not select {label}=~"${label}"')
    return problems
