"""Measuring one outbound call: its CLIENT span, its duration metric, its time in the request's record and, for an
LLM API, its token usage and cost. Client-library agnostic: the httpx transports drive it, ``record_llm_usage``
stands in for SDKs that do not go through httpx.

A call made while serving a request adds to that request's record as the operation ``api`` (so Server-Timing
shows ``api;dur=…;desc="N calls"`` and the bottleneck rule sees it); a call made outside any request (startup,
a background task) is still measured, with no record to add to.
"""

from __future__ import annotations

import threading
import time
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace

from slipstream.config import parse_price
from slipstream.exporters.metrics import LabelledChildren
from slipstream.exporters.otel import mark_failed
from slipstream.instrumentation import Instrumentation, current_instrumentation
from slipstream.outbound.llm import (
    KNOWN_PROVIDERS,
    EventStreamReader,
    JsonBodyReader,
    Prices,
    Usage,
    operation_name,
    request_model,
)
from slipstream.outbound.metrics import BoundedNames, OutboundMetrics
from slipstream.outbound.totals import OutboundTotals
from slipstream.record import Receiver, RequestRecord, current_record

if TYPE_CHECKING:
    from opentelemetry.trace import Span

OPERATION = "api"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class OutboundByRoute(Receiver):
    """Counts each finished request's outbound calls, their time, and its LLM calls, tokens and cost by route: the
    live page's and the dashboards' per-route view, merged across workers like any counter."""

    def __init__(self, metrics: OutboundMetrics) -> None:
        self.metrics = metrics
        self.children = LabelledChildren(self._bind)

    def _bind(self, method: str, route: str) -> tuple[Any, ...]:
        m = self.metrics
        return (
            m.route_calls.labels(method, route),
            m.route_seconds.labels(method, route),
            m.route_llm_calls.labels(method, route),
            m.route_tokens.labels(method, route, "input"),
            m.route_tokens.labels(method, route, "output"),
            m.route_cost.labels(method, route),
        )

    def request_finished(self, record: RequestRecord) -> None:
        totals = record.outbound
        if totals is None:
            return
        calls, seconds, llm_calls, given, produced, cost = self.children[record.method, record.label]
        if totals.calls:
            calls.inc(totals.calls)
            seconds.inc(totals.seconds)
        if totals.llm_calls:
            llm_calls.inc(totals.llm_calls)
            given.inc(totals.input_tokens)
            produced.inc(totals.output_tokens)
            cost.inc(totals.cost)


class Outbound:
    """An Instrumentation's outbound side: metrics, bounded label values, LLM hosts and prices."""

    def __init__(self, instrumentation: Instrumentation) -> None:
        settings = instrumentation.settings
        self.instrumentation = instrumentation
        self.metrics = OutboundMetrics.register(
            instrumentation.registry, settings.timing_buckets, settings.gen_ai_currency
        )
        self.hosts = BoundedNames(settings.outbound_max_hosts)
        self.models = BoundedNames(settings.outbound_max_hosts)
        self.llm_hosts = frozenset(host.lower() for host in settings.gen_ai_hosts)
        self.prices = Prices(
            {model: (given, produced) for model, given, produced in map(parse_price, settings.gen_ai_prices)}
        )
        # Per-route counts only for apps that make outbound calls: the others pay nothing per request.
        instrumentation.add_receiver(OutboundByRoute(self.metrics))

    def is_llm(self, host: str, port: int | None) -> bool:
        return host in self.llm_hosts or (port is not None and f"{host}:{port}" in self.llm_hosts)

    def record_usage(
        self,
        usage: Usage,
        *,
        operation: str,
        request_model: str | None,
        seconds: float | None,
        error_type: str = "",
    ) -> float | None:
        """Observe one LLM call's usage; returns its cost by the configured prices (None when not priced)."""
        provider = usage.provider or "unknown"
        requested = self.models(request_model or usage.response_model or "unknown")
        responded = self.models(usage.response_model or request_model or "unknown")
        labels = (operation, provider, requested, responded)
        metrics = self.metrics
        if seconds is not None:
            metrics.operation_duration.labels(*labels).observe(seconds)
        if usage.input_tokens is not None:
            metrics.token_usage.labels(*labels, "input").observe(usage.input_tokens)
        if usage.output_tokens is not None:
            metrics.token_usage.labels(*labels, "output").observe(usage.output_tokens)
        model = usage.response_model or request_model
        if model is None or not usage.reported:
            return None
        cost = self.prices.cost(model, usage.input_tokens or 0, usage.output_tokens or 0)
        if cost is not None:
            metrics.cost.labels(self.models(model)).inc(cost)
        return cost


class OutboundCall:
    """One call, from its request to the end (or abandonment) of its response body; ``finish`` runs once."""

    def __init__(
        self,
        outbound: Outbound,
        *,
        method: str,
        scheme: str,
        host: str,
        port: int | None,
        path: str,
        headers: MutableMapping[str, str],
        body: bytes,
    ) -> None:
        self.outbound = outbound
        self.method = method if method in _METHODS else "_OTHER"
        self.host = host
        self.status = 0
        self.error_type = ""
        self.span: Span | None = None
        self.reader: EventStreamReader | JsonBodyReader | None = None
        self.usage: Usage | None = None
        self.model: str | None = None
        self.operation = "chat"
        self._done = threading.Lock()
        # The record of the request the call is made for, even if its body is read after that request ended.
        self.record = current_record()
        tracer = outbound.instrumentation.tracer
        if tracer is not None:
            shown_port = port if port is not None else _DEFAULT_PORTS.get(scheme)
            # url.full without the query: a query may carry a key, and no secret leaves the process.
            authority = host if port is None else f"{host}:{port}"
            self.span = tracer.start_span(
                method,
                kind=trace.SpanKind.CLIENT,
                attributes={
                    "http.request.method": method,
                    "server.address": host,
                    "server.port": shown_port or 0,
                    "url.full": f"{scheme}://{authority}{path}",
                },
            )
            propagate.inject(headers, context=trace.set_span_in_context(self.span))
        if outbound.is_llm(host, port):
            self.usage = Usage(provider=KNOWN_PROVIDERS.get(host))
            self.model = request_model(body)
            self.operation = operation_name(path)
        self.start = time.perf_counter()

    def responded(self, status: int, content_type: str, http_version: str) -> None:
        self.status = status
        if status >= 400:
            self.error_type = str(status)
        if self.span is not None:
            self.span.set_attribute("http.response.status_code", status)
            self.span.set_attribute("network.protocol.version", http_version.removeprefix("HTTP/"))
        if self.usage is not None and status < 400:
            if "text/event-stream" in content_type:
                self.reader = EventStreamReader(self.usage)
            elif "json" in content_type:
                self.reader = JsonBodyReader(self.usage)

    def chunk(self, data: bytes) -> None:
        if self.reader is not None:
            self.reader.feed(data)

    def finish(self, error: BaseException | None = None) -> None:
        if not self._done.acquire(blocking=False):
            return
        seconds = time.perf_counter() - self.start
        if error is not None and not self.error_type:
            self.error_type = type(error).__qualname__
        outbound = self.outbound
        status = str(self.status) if self.status else ""
        outbound.metrics.request_duration.labels(
            self.method, outbound.hosts(self.host), status, self.error_type
        ).observe(seconds)
        record = self.record
        if record is not None:
            record.add_operation(OPERATION, seconds)
            OutboundTotals.of(record).add_call(self.host, seconds)
        usage = self.usage
        if usage is not None and self.reader is not None:
            self.reader.close()
        # A call to an LLM host is an LLM call when it named a model or reported usage (not a health check, say).
        llm_call = usage is not None and (usage.reported or self.model is not None)
        if usage is not None and llm_call:
            cost = outbound.record_usage(
                usage, operation=self.operation, request_model=self.model, seconds=seconds, error_type=self.error_type
            )
            if record is not None:
                OutboundTotals.of(record).add_usage(usage, cost)
        span = self.span
        if span is not None:
            if usage is not None and llm_call:
                _annotate_llm(span, usage, self.operation, self.model)
            if self.error_type:
                span.set_attribute("error.type", self.error_type)
            if error is not None:
                mark_failed(span, error)
            elif self.status >= 500:
                span.set_status(trace.StatusCode.ERROR)
            span.end()


def _annotate_llm(span: Span, usage: Usage, operation: str, model: str | None) -> None:
    span.set_attribute("gen_ai.operation.name", operation)
    span.set_attribute("gen_ai.provider.name", usage.provider or "unknown")
    if model is not None:
        span.set_attribute("gen_ai.request.model", model)
    if usage.response_model is not None:
        span.set_attribute("gen_ai.response.model", usage.response_model)
    if usage.input_tokens is not None:
        span.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens)
    if usage.output_tokens is not None:
        span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)


def record_llm_usage(
    *,
    model: str,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    provider: str = "unknown",
    response_model: str | None = None,
    seconds: float | None = None,
    operation: str = "chat",
    instrumentation: Instrumentation | None = None,
) -> None:
    """Record an LLM call made without an instrumented httpx client (another SDK, a gRPC API): token usage, cost
    and, given ``seconds``, its duration, in the current app's metrics and the current request's record."""
    instrumentation = instrumentation or current_instrumentation()
    if instrumentation is None:
        return
    usage = Usage(provider, response_model or model, input_tokens, output_tokens)
    cost = instrumentation.outbound.record_usage(usage, operation=operation, request_model=model, seconds=seconds)
    record = current_record()
    if record is not None:
        OutboundTotals.of(record).add_usage(usage, cost)
        if seconds is not None:
            record.add_operation(OPERATION, seconds)
