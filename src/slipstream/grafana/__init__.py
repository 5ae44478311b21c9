"""Grafana dashboards, Prometheus recording and alert rules, their promtool tests and the runbook, rendered from
the user's values (``slipstream grafana render``); the repository's ``grafana/`` is the rendering of the defaults.

Plain Python builds the JSON and YAML: no template engine and no dashboard SDK, so rendering needs nothing beyond
the core install.
"""

from __future__ import annotations

from slipstream.grafana.render import render, write
from slipstream.grafana.values import BurnWindow, GrafanaValues

__all__ = ["BurnWindow", "GrafanaValues", "render", "write"]
