"""The apps bench_telemetry.py times: one small JSON route under each metrics or tracing middleware, and whole stacks
on a warm cache hit. Each contender is checked before it is timed: same body, every request counted under the route
template, spans exported.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from brotli_asgi import BrotliMiddleware
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.util.types import AttributeValue
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_fastapi_instrumentator import Instrumentator
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette_exporter import PrometheusMiddleware

import slipstream
from cache_contenders import BROTLI_QUALITY, Contender, make_html_page, make_rows, routes
from harness import fetch_ok, request_scope
from slipstream import Instrumentation, Settings, TimingMiddleware
from slipstream.exporters.otel import Telemetry
from telemetry_spans import SpanPipeline

ITEM_PATH, ITEM_ROUTE, PAGE_PATH = "/items/42", "/items/{item_id}", "/page.html"
BARE, FLOOR = "bare app", "floor: one SDK span, nothing else"
SLIPSTREAM_METRICS, SLIPSTREAM_SPAN = "slipstream TimingMiddleware, metrics only", "slipstream TimingMiddleware + span"
STARLETTE_EXPORTER, OTEL_ASGI = "starlette-exporter PrometheusMiddleware", "OpenTelemetry ASGI middleware"
OTEL_NOOP_METER = "OpenTelemetry ASGI middleware, no-op meter"
SLIPSTREAM_STACK, PEER_STACK = "slipstream install(), cache hit", "peer stack, no cache"
SEMCONV_COUNT = "http_server_request_duration_seconds_count"
# The attributes slipstream starts its span with for these requests, and those it adds at the end.
START_ATTRIBUTES = {
    "http.request.method": "GET", "url.path": ITEM_PATH, "url.scheme": "http", "network.protocol.version": "1.1",
    "client.address": "127.0.0.1", "server.address": "bench.local", "user_agent.original": "bench/1.0",
}  # fmt: skip
END_ATTRIBUTES: dict[str, AttributeValue] = {"http.response.status_code": 200, "http.route": ITEM_ROUTE}


@dataclass(eq=False)
class Checked:
    """A contender and what must hold once it has served requests: ``metric`` counts each one, and ``spans``
    exports ``expected_spans`` spans per request (any whole number when None); ``spans_per_request`` is what it did."""

    contender: Contender
    metric: Callable[[], float | None] | None = None
    spans: SpanPipeline | None = None
    expected_spans: int | None = None
    spans_per_request: float = field(default=0.0, init=False)


def series(registry: CollectorRegistry, name: str, labels: dict[str, str]) -> Callable[[], float | None]:
    return lambda: registry.get_sample_value(name, labels)


def semconv(route: str) -> dict[str, str]:
    return {"http_request_method": "GET", "http_route": route, "http_response_status_code": "200"}


def item_route(calls: Counter[str]) -> Route:
    """``/items/{item_id}``, answering a JSON document of about 200 bytes, without caching headers."""

    async def item(request: Request) -> Response:
        calls[ITEM_ROUTE] += 1
        item_id = int(request.path_params["item_id"])
        return JSONResponse(
            {"id": item_id, "sku": f"SKU-{item_id:05d}", "name": "Espresso cup, glazed stoneware, 90 ml",
             "price": 12.5, "currency": "EUR", "stock": 148, "tags": ["kitchen", "ceramics", "coffee"],
             "updated_at": "2024-06-11T12:00:00Z", "ratings": {"count": 211, "mean": 4.6}}
        )  # fmt: skip

    return Route(ITEM_ROUTE, item)


def item_app(calls: Counter[str]) -> Starlette:
    return Starlette(routes=[item_route(calls)])


class OneSpan:
    """The least a tracing middleware can do with the SDK: one current SERVER span, with the attributes slipstream
    gives it, named after the route at the end. A floor, as the raw library call is in bench_compression.py."""

    def __init__(self, app: ASGIApp, tracer: trace.Tracer) -> None:
        self.app, self.tracer = app, tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        span = self.tracer.start_span("GET", kind=trace.SpanKind.SERVER, attributes=START_ATTRIBUTES)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            await self.app(scope, receive, send)
        finally:
            span.update_name(f"GET {ITEM_ROUTE}")
            span.set_attributes(END_ATTRIBUTES)
            span.end()
            otel_context.detach(token)


def per_request_contenders() -> list[Checked]:
    """The bare app and each middleware around it (the instrumentator around an app of its own)."""
    calls = Counter[str]()
    app, scope = item_app(calls), request_scope(ITEM_PATH, None)
    metrics_only, with_header, with_span = CollectorRegistry(), CollectorRegistry(), CollectorRegistry()
    floor, ours, theirs, theirs_noop = SpanPipeline(), SpanPipeline(), SpanPipeline(), SpanPipeline()
    instrumented, own = item_app(calls), CollectorRegistry()
    Instrumentator(registry=own).instrument(instrumented)
    meter_reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[meter_reader])

    def contender(name: str, wrapped: ASGIApp) -> Contender:
        return Contender(name, wrapped, scope, calls, {})

    def timing(registry: CollectorRegistry, pipeline: SpanPipeline | None, server_timing: bool) -> TimingMiddleware:
        telemetry = Telemetry(pipeline.provider) if pipeline is not None else Telemetry(enabled=False)
        settings = Settings(timing_server_timing=server_timing)
        return TimingMiddleware(app, instrumentation=Instrumentation(settings, registry=registry, telemetry=telemetry))

    exporter_labels = {"method": "GET", "path": ITEM_ROUTE, "status_code": "200", "app_name": "starlette"}
    instrumentator_labels = {"handler": ITEM_ROUTE, "method": "GET", "status": "2xx"}
    return [
        Checked(contender(BARE, app)),
        Checked(contender(FLOOR, OneSpan(app, floor.provider.get_tracer("bench"))), None, floor, 1),
        Checked(
            contender(SLIPSTREAM_METRICS, timing(metrics_only, None, False)),
            series(metrics_only, SEMCONV_COUNT, semconv(ITEM_ROUTE)),
        ),
        Checked(
            contender("slipstream TimingMiddleware, metrics + Server-Timing", timing(with_header, None, True)),
            series(with_header, SEMCONV_COUNT, semconv(ITEM_ROUTE)),
        ),
        Checked(
            contender(STARLETTE_EXPORTER, PrometheusMiddleware(app)),
            series(REGISTRY, "starlette_requests_total", exporter_labels),
        ),
        Checked(
            contender("prometheus-fastapi-instrumentator", instrumented),
            series(own, "http_requests_total", instrumentator_labels),
        ),
        Checked(
            contender(SLIPSTREAM_SPAN, timing(with_span, ours, False)),
            series(with_span, SEMCONV_COUNT, semconv(ITEM_ROUTE)),
            ours,
            1,
        ),
        Checked(
            contender(
                OTEL_ASGI, OpenTelemetryMiddleware(app, tracer_provider=theirs.provider, meter_provider=meter_provider)
            ),
            lambda: otel_duration_count(meter_reader),
            theirs,
        ),
        Checked(
            contender(
                OTEL_NOOP_METER,
                OpenTelemetryMiddleware(app, tracer_provider=theirs_noop.provider, meter_provider=NoOpMeterProvider()),
            ),
            spans=theirs_noop,
        ),
    ]


def otel_duration_count(reader: InMemoryMetricReader) -> float | None:
    """Requests the OpenTelemetry middleware's duration histogram counted, from the SDK's in-memory reader."""
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data is not None else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name in ("http.server.duration", "http.server.request.duration"):
                    points = metric.data.data_points
                    return float(sum(point.count for point in points if isinstance(point, HistogramDataPoint)))
    return None


def stack_contenders(tracing: SpanPipeline) -> tuple[list[Checked], bytes]:
    """The 60 KB page with Accept-Encoding: br: the bare app, slipstream's whole stack on a warm cache hit (its spans
    to the global tracer provider, which must be ``tracing``'s; then with tracing off) and the cacheless peer stack;
    and the page's bytes."""
    rng = random.Random(20240611)  # bench_cache.py's seed: the same page
    rows, page = make_rows(rng), make_html_page(rng)
    bare, traced, untraced, peers = Counter[str](), Counter[str](), Counter[str](), Counter[str]()
    scope, hit = request_scope(PAGE_PATH, "br"), {b"x-cache": b"HIT", b"content-encoding": b"br"}
    stacks = []
    traced_settings = slipstream.Settings(metrics_port=None)
    for calls, settings in [(traced, traced_settings), (untraced, replace(traced_settings, tracing_enabled=False))]:
        app, registry = Starlette(routes=routes(rows, page, calls)), CollectorRegistry()
        slipstream.install(app, settings, registry=registry)
        stacks.append((app, series(registry, SEMCONV_COUNT, semconv(PAGE_PATH))))
    exporter_labels = {"method": "GET", "path": PAGE_PATH, "status_code": "200", "app_name": "starlette"}
    peer_spans = SpanPipeline()
    contenders = [
        Checked(Contender(BARE, Starlette(routes=routes(rows, page, bare)), scope, bare, {})),
        Checked(
            Contender(f"{SLIPSTREAM_STACK}: timing + span", stacks[0][0], scope, traced, hit), stacks[0][1], tracing, 1
        ),
        Checked(Contender(f"{SLIPSTREAM_STACK}, tracing off", stacks[1][0], scope, untraced, hit), stacks[1][1]),
        Checked(
            Contender(
                PEER_STACK, peer_stack(rows, page, peers, peer_spans), scope, peers, {b"content-encoding": b"br"}
            ),
            series(REGISTRY, "starlette_requests_total", exporter_labels),
            peer_spans,
        ),
    ]
    return contenders, page.encode()


def peer_stack(
    rows: list[tuple[int, str, str, int, float, str]], page: str, calls: Counter[str], spans: SpanPipeline
) -> Starlette:
    """bench_cache.py's peer stack, outermost first: OpenTelemetry (no-op meter), starlette-exporter, brotli-asgi;
    but OpenTelemetry's spans go to ``spans``, as slipstream's do, not to a provider without a span processor."""
    otel = Middleware(OpenTelemetryMiddleware, tracer_provider=spans.provider, meter_provider=NoOpMeterProvider())
    brotli_asgi = Middleware(BrotliMiddleware, quality=BROTLI_QUALITY)
    return Starlette(routes=routes(rows, page, calls), middleware=[otel, Middleware(PrometheusMiddleware), brotli_asgi])


async def verify(checked: list[Checked], original: bytes, requests: int) -> None:
    """Warms every contender up, then checks its body, its metric's count and its spans per request."""
    for item in checked:
        await item.contender.run(3)  # fills the cache, binds labelled children, resolves the global tracer
        await item.contender.verify(original)
        counted = item.metric() if item.metric is not None else None
        spans_before = item.spans.exported() if item.spans is not None else 0
        await item.contender.run(requests)
        if item.metric is not None and (counted is None or item.metric() != counted + requests):
            raise RuntimeError(f"{item.contender.name}: its request count went {counted} -> {item.metric()}")
        if item.spans is not None:
            item.spans_per_request = per_request = (item.spans.exported() - spans_before) / requests
            expected = item.expected_spans
            if (expected is not None and per_request != expected) or per_request < 1 or per_request % 1:
                raise RuntimeError(f"{item.contender.name}: {per_request} spans per request, not {expected or 'whole'}")


async def item_body() -> bytes:
    _, body = await fetch_ok(item_app(Counter()), request_scope(ITEM_PATH, None))
    return body
