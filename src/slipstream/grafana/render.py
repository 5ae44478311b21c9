"""The whole ``grafana/`` set for one ``GrafanaValues``: dashboards, rules, their promtool tests, the runbook, Grafana's
provisioning files and a Prometheus configuration that loads the rules. ``render(GrafanaValues())`` is the committed
``grafana/`` directory, byte for byte.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from slipstream.grafana.alerts import alert_rules, alerts
from slipstream.grafana.cache_dashboard import cache_dashboard
from slipstream.grafana.database_dashboard import database_dashboard
from slipstream.grafana.operations_dashboard import operations_dashboard
from slipstream.grafana.outbound_dashboard import outbound_dashboard
from slipstream.grafana.overview import overview_dashboard
from slipstream.grafana.rule_tests import alert_test_files
from slipstream.grafana.rules import recording_rules
from slipstream.grafana.slo_tests import slo_test_files
from slipstream.grafana.values import GrafanaValues, byte_size
from slipstream.grafana.yaml_text import Data, dump_yaml

__all__ = ["DASHBOARDS", "RULE_FILES", "render", "write"]

DASHBOARDS: dict[str, Callable[[GrafanaValues], dict[str, Any]]] = {
    "dashboards/slipstream-overview.json": overview_dashboard,
    "dashboards/slipstream-cache.json": cache_dashboard,
    "dashboards/slipstream-database.json": database_dashboard,
    "dashboards/slipstream-operations.json": operations_dashboard,
    "dashboards/slipstream-outbound.json": outbound_dashboard,
}
RULE_FILES = ("rules/slipstream-recording.rules.yml", "rules/slipstream-alerts.rules.yml")
HEADER = "# Rendered by `slipstream grafana render`: render again with your values rather than editing this file.\n"


def render(values: GrafanaValues) -> dict[str, str]:
    """``{path relative to the output directory: text}`` for every file of the set."""
    files = {path: json.dumps(build(values), indent=2, ensure_ascii=False) + "\n" for path, build in DASHBOARDS.items()}
    yaml: dict[str, Data] = {RULE_FILES[0]: recording_rules(values), RULE_FILES[1]: alert_rules(values)}
    from_tests = [f"../{path}" for path in RULE_FILES]
    for name, test in {**alert_test_files(values, from_tests), **slo_test_files(values, from_tests)}.items():
        yaml[f"tests/{name}"] = test
    yaml["prometheus.yml"] = _prometheus_config(values)
    yaml["provisioning/dashboards/slipstream.yml"] = _dashboard_provider()
    yaml["provisioning/datasources/slipstream.yml"] = _datasources()
    for path, data in yaml.items():
        assert isinstance(data, dict)
        files[path] = HEADER + dump_yaml(data)
    files["RUNBOOK.md"] = _runbook(values)
    return dict(sorted(files.items()))


def write(values: GrafanaValues, directory: Path) -> list[Path]:
    """Render into ``directory`` (created if needed); returns the files written."""
    written = []
    for relative, text in render(values).items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _prometheus_config(values: GrafanaValues) -> dict[str, Data]:
    """An example: one job whose name the default selector matches, and the rules (paths relative to this file)."""
    return {
        "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        "rule_files": list(RULE_FILES),
        "scrape_configs": [
            {
                "job_name": "slipstream",
                "metrics_path": "/metrics",
                # An app's metrics port (metrics_port), or the sidecar of a multi-worker host: one target each.
                "static_configs": [{"targets": ["127.0.0.1:9464"]}],
            }
        ],
    }


def _dashboard_provider() -> dict[str, Data]:
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "slipstream",
                "orgId": 1,
                "folder": "slipstream",
                "type": "file",
                "disableDeletion": False,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 60,
                "options": {"path": "/var/lib/grafana/dashboards/slipstream", "foldersFromFilesStructure": False},
            }
        ],
    }


def _datasources() -> dict[str, Data]:
    """Prometheus, with exemplars' trace ids linked to Tempo; the dashboards pick either through their variables."""
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Prometheus",
                "uid": "prometheus",
                "type": "prometheus",
                "access": "proxy",
                "url": "http://127.0.0.1:9090",
                "isDefault": True,
                "jsonData": {
                    "httpMethod": "POST",
                    # The scrape interval: Grafana's $__rate_interval is at least four of them.
                    "timeInterval": "15s",
                    "exemplarTraceIdDestinations": [{"name": "trace_id", "datasourceUid": "tempo"}],
                },
            },
            {"name": "Tempo", "uid": "tempo", "type": "tempo", "access": "proxy", "url": "http://127.0.0.1:3200"},
        ],
    }


def _runbook(values: GrafanaValues) -> str:
    template = resources.files("slipstream.grafana").joinpath("runbook.md").read_text(encoding="utf-8")
    pct = {
        name: f"{getattr(values, name) * 100:g}%"
        for name in (
            "availability_objective",
            "latency_objective",
            "error_ratio",
            "cache_hit_ratio",
            "pool_usage",
            "n_plus_one_share",
            "latency_regression",
            "upstream_error_ratio",
        )
    }
    fields = {
        **pct,
        "selector": values.selector,
        "latency_threshold": f"{values.latency_threshold:g} s",
        "slow_statement": f"{values.slow_statement:g} s",
        "memory_limit": byte_size(values.memory_limit),
        "quantile": f"p{values.latency_objective * 100:g}",
        "min_request_rate": f"{values.min_request_rate:g}",
        "llm_budget_per_hour": f"{values.llm_budget_per_hour:g}",
        "slo_period": values.slo_period,
        "windows": "\n".join(
            f"| {w.alert_severity} ({w.severity}) | {w.long} and {w.short} | {w.factor:g}x | "
            f"{values.budget_days(w.factor):.3g} days |"
            for w in values.burn_windows
        ),
        "alerts": "\n".join(f"- [{a.name}](#{a.name.lower()}) ({a.severity}): {a.summary}" for a in alerts(values)),
    }
    return string.Template(template).substitute(fields)
