"""The outbound calls and LLM usage dashboard: calls, failures and durations per upstream host and their share of
request time; tokens, cost and duration of LLM calls per model. Only the calls of instrumented httpx clients (and
``record_llm_usage``) are seen."""

from __future__ import annotations

from slipstream.grafana.layout import dashboard
from slipstream.grafana.panels import (
    Json,
    Panel,
    Query,
    Row,
    histogram_mean,
    histogram_quantile,
    rate,
    stat,
    table,
    timeseries,
)
from slipstream.grafana.promql import (
    CALL_FAILED,
    CLIENT_CALLS,
    CLIENT_DURATION,
    GEN_AI_COST,
    GEN_AI_DURATION,
    REQUEST_DURATION,
    TOKEN_USAGE,
)
from slipstream.grafana.values import GrafanaValues

__all__ = ["outbound_dashboard"]

HOST = "server_address"
ASKED = "gen_ai_request_model"
ANSWERED = "gen_ai_response_model"
TOKEN_LABELS = f"{ANSWERED}, gen_ai_token_type"
TOKEN_LEGEND = "{{gen_ai_response_model}} {{gen_ai_token_type}}"
# Calls made outside any request (startup, background tasks) are in the numerator too, and concurrent calls of one
# request add up: the share can pass 100%.
SHARE = (
    " Calls made outside requests (startup, background tasks) count too, and concurrent calls of one request add up, "
    "so it can pass 100%."
)
CURRENCY = " In the apps' gen_ai_currency, at their gen_ai_prices; models without a price cost nothing here."


def error_ratio(by: str = "") -> str:
    """Failed calls over all calls; 0 rather than no data where none failed."""
    calls = rate(CLIENT_CALLS, by=by)
    return f"(\n  {rate(CLIENT_CALLS, CALL_FAILED, by=by)}\n  or\n  0 * {calls}\n)\n/\n{calls}"


def request_time_share(by: str = "") -> str:
    return f"{rate(f'{CLIENT_DURATION}_sum', by=by)}\n/ scalar({rate(f'{REQUEST_DURATION}_sum')})"


def cost_per_hour(by: str = "") -> str:
    return f"{rate(GEN_AI_COST, by=by)} * 3600"


def outbound_dashboard(v: GrafanaValues) -> Json:
    bucket = f"{CLIENT_DURATION}_bucket"
    mean = histogram_mean(CLIENT_DURATION, HOST)
    tokens_per_call = histogram_mean(TOKEN_USAGE, TOKEN_LABELS)
    items: list[Panel | Row] = [
        Row("Summary"),
        *_summary(v),
        Row("Outbound HTTP calls"),
        timeseries(
            "Calls by host",
            "Calls per second by the host called (past outbound_max_hosts hosts: `other`).",
            "reqps",
            Query(rate(CLIENT_CALLS, by=HOST), "{{server_address}}"),
            width=8,
        ),
        timeseries(
            "Error ratio by host",
            "Share of each host's calls that failed: a status from 400 on, or no answer at all. The red line is the "
            "upstream error-ratio alert's.",
            "percentunit",
            Query(error_ratio(HOST), "{{server_address}}"),
            width=8,
            threshold=v.upstream_error_ratio,
        ),
        timeseries(
            "Failures by host and type",
            "Failed calls per second by host and error type: the status code (429 rate limited, 401 a revoked key, "
            "5xx the service's own failure) or the exception's class (ConnectError, ReadTimeout).",
            "reqps",
            Query(rate(CLIENT_CALLS, CALL_FAILED, by=f"{HOST}, error_type"), "{{server_address}} {{error_type}}"),
            width=8,
        ),
        timeseries(
            "Call duration by host",
            "p50 and p95 of each host's calls, from the request to the end of the response body as the caller read it "
            "(a streamed answer counts whole).",
            "s",
            Query(histogram_quantile(0.5, bucket, HOST), "{{server_address}} p50"),
            Query(histogram_quantile(0.95, bucket, HOST), "{{server_address}} p95"),
        ),
        timeseries(
            "Request time in outbound calls",
            "Time spent in outbound calls as a share of the time spent serving requests, by host." + SHARE,
            "percentunit",
            Query(request_time_share(HOST), "{{server_address}}"),
        ),
        table(
            "Hosts",
            "Every host called: calls per second, error ratio, p50, p95 and mean duration, and its calls' time as a "
            "share of request time. Click a header to sort.",
            "short",
            Query(rate(CLIENT_CALLS, by=HOST), instant=True, column="calls/s", unit="reqps"),
            Query(error_ratio(HOST), instant=True, column="errors", unit="percentunit"),
            Query(histogram_quantile(0.5, bucket, HOST), instant=True, column="p50", unit="s"),
            Query(histogram_quantile(0.95, bucket, HOST), instant=True, column="p95", unit="s"),
            Query(mean, instant=True, column="mean", unit="s"),
            Query(request_time_share(HOST), instant=True, column="share of request time", unit="percentunit"),
            sort_by="calls/s",
        ),
        Row("LLM usage"),
        timeseries(
            "Tokens per second by model and type",
            "Input and output tokens per second, as the APIs reported them, by the model that answered.",
            "short",
            Query(rate(f"{TOKEN_USAGE}_sum", by=TOKEN_LABELS), TOKEN_LEGEND),
            width=8,
        ),
        timeseries(
            "Cost per hour by model",
            "What LLM calls cost per hour at the current pace, by the model that answered, and per job; the red line "
            "is the spend alert's budget, which applies per job." + CURRENCY,
            "short",
            Query(cost_per_hour("model"), "{{model}}"),
            Query(cost_per_hour("job"), "{{job}} (all models)"),
            width=8,
            threshold=v.llm_budget_per_hour,
        ),
        timeseries(
            "LLM call duration p95 by model",
            "The p95 duration of LLM calls by the model asked for, to the last event of a streamed answer (failed "
            "calls included).",
            "s",
            Query(histogram_quantile(0.95, f"{GEN_AI_DURATION}_bucket", ASKED), "{{gen_ai_request_model}}"),
            width=8,
        ),
        timeseries(
            "LLM calls by model",
            "LLM calls per second by the model asked for, the provider and the operation (chat, text_completion, "
            "embeddings).",
            "ops",
            Query(
                rate(f"{GEN_AI_DURATION}_count", by=f"{ASKED}, gen_ai_provider_name, gen_ai_operation_name"),
                "{{gen_ai_request_model}} {{gen_ai_provider_name}} {{gen_ai_operation_name}}",
            ),
        ),
        timeseries(
            "Mean tokens per call",
            "Tokens per call on average, input and output, by the model that answered: a growing input is a growing "
            "context (conversation history, retrieved documents).",
            "short",
            Query(tokens_per_call, TOKEN_LEGEND),
        ),
    ]
    return dashboard(
        "slipstream-outbound",
        "slipstream / Outbound calls and LLM usage",
        "Calls of instrumented httpx clients by host (rate, failures, duration, share of request time) and LLM calls "
        "by model (tokens, cost, duration).",
        v.selector,
        items,
    )


def _summary(v: GrafanaValues) -> list[Panel]:
    return [
        stat("Outbound calls", "Calls per second, all hosts.", "reqps", Query(rate(CLIENT_CALLS))),
        stat(
            "Error ratio",
            "Share of calls that failed (a status from 400 on, or no answer), all hosts.",
            "percentunit",
            Query(error_ratio()),
            red_above=v.upstream_error_ratio,
        ),
        stat(
            "Request time in calls",
            "Time spent in outbound calls as a share of the time spent serving requests." + SHARE,
            "percentunit",
            Query(request_time_share()),
        ),
        stat("LLM calls", "LLM calls per second, all models.", "ops", Query(rate(f"{GEN_AI_DURATION}_count"))),
        stat("Tokens", "Input and output tokens per second, all models.", "short", Query(rate(f"{TOKEN_USAGE}_sum"))),
        stat(
            "Cost per hour",
            "What LLM calls cost per hour at the current pace, all selected jobs; red above the spend alert's budget "
            "(which applies per job)." + CURRENCY,
            "short",
            Query(cost_per_hour()),
            red_above=v.llm_budget_per_hour,
        ),
    ]
