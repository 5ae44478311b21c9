"""The request's SERVER span: the attributes it starts with, and those its end adds (OpenTelemetry's HTTP server
semantic conventions, and slipstream's cache outcome and bottleneck). TimingMiddleware starts and ends it."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context

from slipstream.exporters.otel import mark_failed
from slipstream.record import RequestRecord

_PROPAGATION_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})
_DECODED_HEADERS = 1024


class ServerSpans:
    """Starts requests' spans for one middleware, which keeps the attributes of the Host and User-Agent values it
    has seen decoded (bounded): most requests repeat a few."""

    def __init__(self) -> None:
        self.decoded_hosts: dict[bytes, dict[str, Any]] = {}
        self.decoded_agents: dict[bytes, dict[str, Any]] = {}

    def start(self, tracer: trace.Tracer, record: RequestRecord) -> Context:
        """Starts the request's span (a child of the trace context the request carries, if any) as ``record.span``;
        returns the context that makes it current."""
        scope = record.scope
        method = record.method
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
            "network.protocol.version": scope.get("http_version", "1.1"),
        }
        if method == "_OTHER":
            attributes["http.request.method_original"] = scope["method"]
        client = scope.get("client")
        if client:
            attributes["client.address"] = client[0]
        carrier: dict[str, str] = {}
        for key, value in scope["headers"]:
            if key == b"host" or key == b"user-agent":
                decoded = self.decoded_hosts if key == b"host" else self.decoded_agents
                found = decoded.get(value)
                if found is None:
                    found = _header_attributes(key, value)
                    if len(decoded) < _DECODED_HEADERS:
                        decoded[value] = found
                attributes.update(found)
            elif key in _PROPAGATION_HEADERS:
                carrier[key.decode()] = value.decode("latin-1")
        parent = None
        if carrier:
            # Imported at the first request that carries a trace context: it loads the configured propagators.
            from opentelemetry import propagate

            parent = propagate.extract(carrier)
        record.span = span = tracer.start_span(
            method if method != "_OTHER" else "HTTP", context=parent, kind=trace.SpanKind.SERVER, attributes=attributes
        )
        return trace.set_span_in_context(span, parent)


def end_span(span: trace.Span, record: RequestRecord) -> None:
    """Names the span after the route, adds what the finished request showed, and ends it."""
    method, route, status = record.method, record.route, record.status
    attributes: dict[str, Any] = {"http.response.status_code": status}
    if route is not None:
        span.update_name(f"{method} {route}" if method != "_OTHER" else f"HTTP {route}")
        attributes["http.route"] = route
    if record.cache is not None:
        attributes["slipstream.cache"] = record.cache
    if record.bottleneck is not None:
        attributes["slipstream.bottleneck"] = record.bottleneck
    span.set_attributes(attributes)
    if record.error is not None:
        mark_failed(span, record.error)
    elif status >= 500:
        span.set_attribute("error.type", str(status))
        span.set_status(trace.Status(trace.StatusCode.ERROR))
    span.end()


def _split_host(value: str) -> tuple[str, int | None]:
    """A Host field's name (IPv6 literals without brackets) and port."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, colon, port = value.rpartition(":")
        if not colon:
            host, port = value, ""
    return host, int(port) if port.isdigit() else None


def _header_attributes(key: bytes, value: bytes) -> dict[str, Any]:
    text = value.decode("latin-1")
    if key == b"user-agent":
        return {"user_agent.original": text}
    host, port = _split_host(text)
    return {"server.address": host} if port is None else {"server.address": host, "server.port": port}
