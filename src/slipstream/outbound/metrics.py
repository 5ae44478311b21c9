"""The outbound metrics: HTTP client duration (OpenTelemetry's stable HTTP client conventions) and the GenAI client
metrics (token usage, operation duration), plus what the configured prices make of the tokens.

Every label is bounded: server addresses and model names past the first ``limit`` distinct ones count as "other".
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

from slipstream.exporters.metrics import reuse_or_register

HTTP_CLIENT_LABELS = ("http_request_method", "server_address", "http_response_status_code", "error_type")
GEN_AI_LABELS = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_response_model")
# The GenAI semantic conventions' advisory buckets.
TOKEN_BUCKETS: tuple[float, ...] = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216)
GEN_AI_DURATION_BUCKETS: tuple[float, ...] = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48)
OTHER = "other"
ROUTE = ("http_request_method", "http_route")


@dataclass(frozen=True)
class OutboundMetrics:
    request_duration: Histogram
    token_usage: Histogram
    operation_duration: Histogram
    cost: Counter
    route_calls: Counter
    route_seconds: Counter
    route_llm_calls: Counter
    route_tokens: Counter
    route_cost: Counter

    @classmethod
    def register(cls, registry: CollectorRegistry, buckets: Sequence[float], currency: str) -> OutboundMetrics:
        """The metrics in ``registry``, shared with any other app registered there (as `Metrics.register`)."""
        return cls(
            reuse_or_register(
                Histogram,
                registry,
                "http_client_request_duration_seconds",
                "Outbound HTTP calls of instrumented httpx clients, from the request to the end of the response body",
                HTTP_CLIENT_LABELS,
                buckets=tuple(buckets),
            ),
            reuse_or_register(
                Histogram,
                registry,
                "gen_ai_client_token_usage",
                "Tokens per LLM call, by gen_ai_token_type (input, output)",
                (*GEN_AI_LABELS, "gen_ai_token_type"),
                buckets=TOKEN_BUCKETS,
            ),
            reuse_or_register(
                Histogram,
                registry,
                "gen_ai_client_operation_duration_seconds",
                "LLM calls, from the request to the last event of the response",
                GEN_AI_LABELS,
                buckets=GEN_AI_DURATION_BUCKETS,
            ),
            reuse_or_register(
                Counter,
                registry,
                "slipstream_gen_ai_cost",
                f"What LLM calls cost by the configured prices per million tokens, in {currency}",
                ("model",),
            ),
            *(
                reuse_or_register(Counter, registry, name, documentation, labels)
                for name, documentation, labels in (
                    ("slipstream_outbound_route_calls", "Outbound calls made while serving each route", ROUTE),
                    ("slipstream_outbound_route_seconds", "Time in outbound calls made for each route", ROUTE),
                    ("slipstream_gen_ai_route_calls", "LLM calls made while serving each route", ROUTE),
                    (
                        "slipstream_gen_ai_route_tokens",
                        "LLM tokens used for each route, by type",
                        (*ROUTE, "gen_ai_token_type"),
                    ),
                    ("slipstream_gen_ai_route_cost", f"What each route's LLM calls cost, in {currency}", ROUTE),
                )
            ),
        )


class BoundedNames:
    """The first ``limit`` distinct names as themselves, any later one as "other": label values stay bounded."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()  # sync clients run in threads

    def __call__(self, name: str) -> str:
        if name in self._seen:
            return name
        with self._lock:
            if len(self._seen) < self.limit:
                self._seen.add(name)
                return name
        return OTHER
