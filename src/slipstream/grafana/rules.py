"""Recording rules: what the alerts and the dashboards share.

Three groups. ``slipstream.http.rules``: per-route request and 5xx rates over 5 minutes (the error-ratio alert, the
overview's route panels). ``slipstream.slo.rules``: for every window a burn-rate condition reads, the request,
5xx and too-slow rates per job and instance, then the SLI error ratio per job and ``slo`` (``availability``,
``latency``), as Sloth records ``slo:sli_error:ratio_rate<window>``. The per-instance rates let the dashboards
select on job and instance and still agree with the alerts; the alerts read the per-job ratios.
``slipstream.outbound.rules``: per-host call and error rates of outbound calls, from ``outbound_rules``.

Rules of a group run in order and see what the rules before them recorded in the same evaluation, so each ratio
is computed from the rates just recorded.
"""

from __future__ import annotations

from slipstream.grafana.outbound_rules import outbound_group
from slipstream.grafana.promql import (
    REQUEST_DURATION,
    REQUESTS,
    ROUTE_ERRORS,
    ROUTE_REQUESTS,
    SERVER_ERROR,
    select,
    sli_errors,
    sli_ratio,
    sli_requests,
    sli_slow,
)
from slipstream.grafana.values import GrafanaValues, le
from slipstream.grafana.yaml_text import Data

__all__ = ["recording_rules"]


def recording_rules(values: GrafanaValues) -> dict[str, Data]:
    """The recording rules file: its groups, as Prometheus' ``rule_files`` reads them."""
    return {"groups": [_http_group(values), _slo_group(values), outbound_group(values)]}


def _http_group(values: GrafanaValues) -> dict[str, Data]:
    by = "sum by (job, instance, http_route)"
    requests = f"{by} (rate({select(REQUESTS, values.selector)}[5m]))"
    errors = f"{by} (rate({select(REQUESTS, values.selector, SERVER_ERROR)}[5m]))"
    return {
        "name": "slipstream.http.rules",
        "rules": [
            {"record": ROUTE_REQUESTS, "expr": requests},
            # A route without 5xx gets a 0, not no series: its error ratio is 0%, not "no data".
            {"record": ROUTE_ERRORS, "expr": f"{errors}\nor\n0 * {ROUTE_REQUESTS}"},
        ],
    }


def _slo_group(values: GrafanaValues) -> dict[str, Data]:
    by = "sum by (job, instance)"
    fast = select(f"{REQUEST_DURATION}_bucket", values.selector, f'le="{le(values.latency_threshold)}"')
    rules: list[Data] = []
    for window in values.windows:
        requests = f"{by} (rate({select(REQUESTS, values.selector)}[{window}]))"
        errors = f"{by} (rate({select(REQUESTS, values.selector, SERVER_ERROR)}[{window}]))"
        slow = f"clamp_min(\n  {sli_requests(window)}\n  - {by} (rate({fast}[{window}])),\n  0\n)"
        rules += [
            {"record": sli_requests(window), "expr": requests},
            {"record": sli_errors(window), "expr": f"{errors}\nor\n0 * {sli_requests(window)}"},
            {"record": sli_slow(window), "expr": slow},
        ]
        for slo, bad in (("availability", sli_errors(window)), ("latency", sli_slow(window))):
            ratio = f"sum by (job) ({bad})\n/\nsum by (job) ({sli_requests(window)})"
            rules.append({"record": sli_ratio(window), "expr": ratio, "labels": {"slo": slo}})
    return {"name": "slipstream.slo.rules", "rules": rules}
