"""PromQL text shared by the rules and the dashboards: metric names, selectors and the recorded series' names.

The names are slipstream's own series (``slipstream.exporters.metrics``); recorded names follow Prometheus'
``level:metric:operations`` convention, with ``slipstream`` in the metric part so they never collide with others.
"""

from __future__ import annotations

__all__ = [
    "CALL_FAILED",
    "CLIENT_CALLS",
    "CLIENT_DURATION",
    "DB_DURATION",
    "GEN_AI_COST",
    "GEN_AI_DURATION",
    "REQUESTS",
    "REQUEST_DURATION",
    "ROUTE_ERRORS",
    "ROUTE_REQUESTS",
    "SERVER_ERROR",
    "TOKEN_USAGE",
    "UPSTREAM_CALLS",
    "UPSTREAM_ERRORS",
    "select",
    "sli_errors",
    "sli_ratio",
    "sli_requests",
    "sli_slow",
]

REQUEST_DURATION = "http_server_request_duration_seconds"
REQUESTS = f"{REQUEST_DURATION}_count"
DB_DURATION = "db_client_operation_duration_seconds"
SERVER_ERROR = 'http_response_status_code=~"5.."'
# Outbound calls (slipstream.outbound.metrics): an error_type is set for a status from 400 on or for no answer at all.
CLIENT_DURATION = "http_client_request_duration_seconds"
CLIENT_CALLS = f"{CLIENT_DURATION}_count"
CALL_FAILED = 'error_type!=""'
TOKEN_USAGE = "gen_ai_client_token_usage"
GEN_AI_DURATION = "gen_ai_client_operation_duration_seconds"
GEN_AI_COST = "slipstream_gen_ai_cost_total"

# Recorded series. Per-instance rates keep job and instance, so dashboards can still select on both.
ROUTE_REQUESTS = "job_instance_route:slipstream_http_requests:rate5m"
ROUTE_ERRORS = "job_instance_route:slipstream_http_errors:rate5m"
UPSTREAM_CALLS = "job_instance_server:slipstream_http_client_calls:rate5m"
UPSTREAM_ERRORS = "job_instance_server:slipstream_http_client_errors:rate5m"


def sli_requests(window: str) -> str:
    return f"job_instance:slipstream_sli_requests:rate{window}"


def sli_errors(window: str) -> str:
    return f"job_instance:slipstream_sli_errors:rate{window}"


def sli_slow(window: str) -> str:
    return f"job_instance:slipstream_sli_slow_requests:rate{window}"


def sli_ratio(window: str) -> str:
    """Per job and ``slo`` label (availability, latency): the share of requests that spent error budget."""
    return f"job_slo:slipstream_sli_error:ratio_rate{window}"


def select(metric: str, *matchers: str) -> str:
    """``metric{m1,m2}``; empty matchers are left out, and so are the braces when none remain."""
    kept = [matcher for matcher in matchers if matcher]
    return f"{metric}{{{','.join(kept)}}}" if kept else metric
