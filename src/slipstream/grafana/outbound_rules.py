"""The rules on outbound calls: per-host call and error rates over 5 minutes (recorded, as the route rates are), the
upstream error-ratio alert they feed, and the LLM spend alert against the budget per hour.

A call is an error when slipstream gave it an ``error_type``: an answer from 400 on (429 rate limited, 401 a revoked
key, 5xx the service's own failure) or no answer at all (the exception's class: ``ConnectError``, ``ReadTimeout``).
The spend is what ``slipstream_gen_ai_cost_total`` counts from the token usage the APIs report, at the apps'
``gen_ai_prices``, per job: each app (or group of workers) has its own budget.
"""

from __future__ import annotations

from slipstream.grafana.alert_rule import Alert, label
from slipstream.grafana.promql import CALL_FAILED, CLIENT_CALLS, GEN_AI_COST, UPSTREAM_CALLS, UPSTREAM_ERRORS, select
from slipstream.grafana.values import GrafanaValues
from slipstream.grafana.yaml_text import Data

__all__ = ["outbound_alerts", "outbound_group"]


def outbound_group(values: GrafanaValues) -> dict[str, Data]:
    """``slipstream.outbound.rules``: calls and failed calls per second by job, instance and host."""
    by = "sum by (job, instance, server_address)"
    calls = f"{by} (rate({select(CLIENT_CALLS, values.selector)}[5m]))"
    errors = f"{by} (rate({select(CLIENT_CALLS, values.selector, CALL_FAILED)}[5m]))"
    return {
        "name": "slipstream.outbound.rules",
        "rules": [
            {"record": UPSTREAM_CALLS, "expr": calls},
            # A host without failures gets a 0, not no series: its error ratio is 0%, not "no data".
            {"record": UPSTREAM_ERRORS, "expr": f"{errors}\nor\n0 * {UPSTREAM_CALLS}"},
        ],
    }


def outbound_alerts(v: GrafanaValues) -> list[Alert]:
    by = "sum by (job, server_address)"
    ratio = f"{v.upstream_error_ratio * 100:g}%"
    budget = f"{v.llm_budget_per_hour:g} per hour"
    spend = f"sum by (job) (rate({select(GEN_AI_COST, v.selector)}[1h])) * 3600"
    return [
        Alert(
            "SlipstreamUpstreamErrorRatioHigh",
            f"(\n  {by} ({UPSTREAM_ERRORS})\n  /\n  {by} ({UPSTREAM_CALLS})\n) > {v.upstream_error_ratio:g}\n"
            f"and\n{by} ({UPSTREAM_CALLS}) > {v.min_request_rate:g}",
            "warning",
            f"More than {ratio} of the calls to an upstream service fail.",
            f"More than {ratio} of the calls {label('job')} made to {label('server_address')} over the last 5 minutes "
            f"failed: a status from 400 on, or no answer at all (hosts called less than {v.min_request_rate:g} times/s "
            "are left out).",
            "5m",
        ),
        Alert(
            "SlipstreamLlmSpendHigh",
            f"{spend} > {v.llm_budget_per_hour:g}",
            "warning",
            f"LLM calls cost more than the budget of {budget}.",
            f"The LLM calls of {label('job')} cost more than {budget} over the last hour, by the token usage the APIs "
            "reported and the prices in its gen_ai_prices (in its gen_ai_currency).",
            "10m",
        ),
    ]
