"""TimingMiddleware: route templates, metrics, spans, exemplars, Server-Timing, @timed, errors and isolation."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import re
import string
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import APIRouter, FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Host, Mount, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slipstream import RequestRecord, TimingMiddleware, current_record, timed
from slipstream.middleware.cache import CacheMiddleware
from slipstream.middleware.compression import CompressionMiddleware
from slipstream.middleware.conditional import ConditionalMiddleware
from tests.support import Captured, asgi_client, call_asgi, http_scope, instrumented, run_uvicorn

pytestmark = pytest.mark.anyio
DURATION = "http_server_request_duration_seconds"


class Traced:
    """An SDK tracer provider keeping finished spans in memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("tests")

    @property
    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()

    def server_spans(self) -> list[ReadableSpan]:
        return [s for s in self.spans if s.kind is trace.SpanKind.SERVER]


@pytest.fixture
def traced() -> Iterator[Traced]:
    tracing = Traced()
    yield tracing
    tracing.provider.shutdown()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


async def user(request: Request) -> Response:
    return PlainTextResponse(f"user {request.path_params['user_id']}")


async def item(request: Request) -> Response:
    return PlainTextResponse("item " * 200)


async def boom(request: Request) -> Response:
    raise LookupError("no such thing")


async def render(request: Request) -> Response:
    with timed("render page"):
        await asyncio.sleep(0.02)
    with timed("load"):
        pass
    with timed("load"):
        pass
    return PlainTextResponse("rendered")


async def with_background(request: Request) -> Response:
    return PlainTextResponse("done", background=BackgroundTask(asyncio.sleep, 0.3))


async def upload(request: Request) -> Response:
    return PlainTextResponse(str(len(await request.body())))


async def static_files(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("file")(scope, receive, send)


def build_app(registry: CollectorRegistry, tracer_provider: TracerProvider | None = None, **settings: Any) -> Starlette:
    inner = Router([Route("/things/{name}", item)])
    api = Starlette(routes=[Route("/items/{item_id}", item), Mount("/v2", routes=inner.routes)])
    routes = [
        Route("/users/{user_id:int}", user),
        Route("/boom", boom),
        Route("/render", render),
        Route("/background", with_background),
        Route("/upload", upload, methods=["POST"]),
        Mount("/api", app=api),
        Mount("/static", app=static_files),
        Host("admin.example.com", Router([Route("/panel", item)])),
    ]
    middleware = [Middleware(TimingMiddleware, instrumentation=instrumented(registry, tracer_provider, **settings))]
    return Starlette(routes=routes, middleware=middleware)


def duration_count(registry: CollectorRegistry, route: str, status: str = "200", method: str = "GET") -> float:
    labels = {"http_request_method": method, "http_route": route, "http_response_status_code": status}
    return registry.get_sample_value(DURATION + "_count", labels) or 0.0


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/users/42", "/users/{user_id}"),
        ("/api/items/7", "/api/items/{item_id}"),
        ("/api/v2/things/x", "/api/v2/things/{name}"),
        ("/static/css/site.css", "/static/{path}"),
        ("/nowhere/at/all", "__unmatched__"),
        ("/users/not-a-number", "__unmatched__"),
    ],
)
async def test_routes_are_labelled_by_template(registry: CollectorRegistry, path: str, route: str) -> None:
    app = build_app(registry)
    async with asgi_client(app) as client:
        response = await client.get(path)
    status = str(response.status_code)
    assert duration_count(registry, route, status) == 1


async def test_mounts_inside_host_routes_and_method_not_allowed(registry: CollectorRegistry) -> None:
    app = build_app(registry)
    async with asgi_client(app) as client:
        assert (await client.get("/upload")).status_code == 405
        await client.get("http://admin.example.com/panel")
    assert duration_count(registry, "/upload", "405") == 1
    assert duration_count(registry, "/panel") == 1


async def test_fastapi_routers_included_in_routers(registry: CollectorRegistry) -> None:
    inner = APIRouter(prefix="/orders")

    @inner.get("/{order_id}")
    async def order(order_id: int) -> dict[str, int]:
        return {"order": order_id}

    outer = APIRouter(prefix="/shop")
    outer.include_router(inner)
    app = FastAPI()
    app.include_router(outer, prefix="/v1")
    sub = FastAPI()
    sub.include_router(inner)
    app.mount("/legacy", sub)
    app.add_middleware(TimingMiddleware, instrumentation=instrumented(registry))
    async with asgi_client(app) as client:
        assert (await client.get("/v1/shop/orders/3")).json() == {"order": 3}
        assert (await client.get("/legacy/orders/4")).status_code == 200
        assert (await client.get("/v1/shop/orders/x")).status_code == 422
    assert duration_count(registry, "/v1/shop/orders/{order_id}") == 1
    assert duration_count(registry, "/v1/shop/orders/{order_id}", "422") == 1
    assert duration_count(registry, "/legacy/orders/{order_id}") == 1


async def test_a_middleware_copying_the_scope_does_not_hide_the_route(registry: CollectorRegistry) -> None:
    """Copies the scope without telling anyone: timing matches the request again to find the route."""
    routed = Starlette(routes=[Route("/users/{user_id:int}", user), Mount("/api", routes=[Route("/x", item)])])

    async def copying(scope: Scope, receive: Receive, send: Send) -> None:
        await routed({**scope}, receive, send)

    app = TimingMiddleware(copying, instrumentation=instrumented(registry))
    await call_asgi(app, path="/users/5")
    await call_asgi(app, path="/api/nothing")
    # Starlette sets scope["app"] outside user middleware; here timing wraps a bare app, so no router is known.
    assert duration_count(registry, "__unmatched__") == 1
    outer = Starlette(
        routes=routed.routes, middleware=[Middleware(TimingMiddleware, instrumentation=instrumented(registry))]
    )
    copied: Any = outer.build_middleware_stack()
    timing = copied
    while not isinstance(timing, TimingMiddleware):
        timing = timing.app
    timing.app = _copy_scope(timing.app)
    outer.middleware_stack = copied
    async with asgi_client(outer) as client:
        await client.get("/users/9")
        await client.get("/api/x")
        await client.get("/api/nothing")
    assert duration_count(registry, "/users/{user_id}") == 1
    assert duration_count(registry, "/api/x") == 1
    assert duration_count(registry, "/api/{path}", "404") == 1


def _copy_scope(app: ASGIApp) -> ASGIApp:
    async def copy(scope: Scope, receive: Receive, send: Send) -> None:
        await app({**scope}, receive, send)

    return copy


async def test_metrics_record_sizes_statuses_and_active_requests(registry: CollectorRegistry) -> None:
    app = build_app(registry)
    async with asgi_client(app) as client:
        await client.post("/upload", content=b"x" * 1234)

        async def chunks() -> object:
            yield b"a" * 100
            yield b"b" * 50

        await client.post("/upload", content=chunks())  # type: ignore[arg-type]
        page = await client.get("/api/items/1")
    labels = {"http_request_method": "POST", "http_route": "/upload"}
    assert registry.get_sample_value("http_server_request_body_size_bytes_sum", labels) == 1234 + 150
    size = {"http_request_method": "GET", "http_route": "/api/items/{item_id}", "http_response_status_code": "200"}
    assert registry.get_sample_value("http_server_response_body_size_bytes_sum", size) == len(page.content)
    ttfb = registry.get_sample_value(
        "slipstream_http_server_time_to_first_byte_seconds_count",
        {"http_request_method": "GET", "http_route": "/api/items/{item_id}"},
    )
    assert ttfb == 1
    assert registry.get_sample_value("http_server_active_requests", {"http_request_method": "POST"}) == 0


async def test_unknown_methods_are_one_label_value(registry: CollectorRegistry) -> None:
    app = build_app(registry)
    for method in ("BREW", "PROPFIND", "X" * 40):
        await call_asgi(app, method=method, path="/users/1")
    assert duration_count(registry, "/users/{user_id}", "405", "_OTHER") == 3


async def test_ten_thousand_random_paths_leave_the_series_bounded(registry: CollectorRegistry) -> None:
    app = build_app(registry)
    rng = random.Random(7)
    for _ in range(10_000):
        path = "/" + "/".join("".join(rng.choices(string.ascii_lowercase, k=8)) for _ in range(rng.randint(1, 4)))
        await call_asgi(app, path=path)
    series = {
        tuple(sorted(sample.labels.items()))
        for family in registry.collect()
        for sample in family.samples
        if family.name.startswith("http_server")
    }
    routes = {dict(labels).get("http_route") for labels in series}
    assert routes <= {"__unmatched__", None}
    assert duration_count(registry, "__unmatched__", "404") == 10_000
    # one label set per metric (plus histogram buckets): nothing grew with the paths
    assert len(series) < 60


async def test_background_tasks_are_not_part_of_the_latency(registry: CollectorRegistry) -> None:
    app = build_app(registry)
    started = time.perf_counter()
    async with asgi_client(app) as client:
        await client.get("/background")
    whole = time.perf_counter() - started
    labels = {"http_request_method": "GET", "http_route": "/background", "http_response_status_code": "200"}
    recorded = registry.get_sample_value(DURATION + "_sum", labels)
    assert recorded is not None
    assert whole >= 0.3  # the client waited for the background task (ASGITransport runs the app to the end)
    assert recorded < 0.15


async def test_background_tasks_excluded_under_a_real_server(registry: CollectorRegistry) -> None:
    app = build_app(registry)
    with run_uvicorn(app) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/background")).text == "done"
        # the task finishes in the server after the response was sent
        await anyio.sleep(0.4)
    labels = {"http_request_method": "GET", "http_route": "/background", "http_response_status_code": "200"}
    assert registry.get_sample_value(DURATION + "_count", labels) == 1
    assert (registry.get_sample_value(DURATION + "_sum", labels) or 1.0) < 0.15


async def test_the_last_message_goes_to_the_server_outside_the_request(
    registry: CollectorRegistry, traced: Traced
) -> None:
    """uvicorn copies the current context into its keep-alive timer while it sends the last chunk: that copy must
    not hold the request's record and span (they would outlive the request), but background tasks still see both."""
    seen_by_background: list[tuple[RequestRecord | None, trace.Span]] = []

    async def note() -> None:
        seen_by_background.append((current_record(), trace.get_current_span()))

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("done", background=BackgroundTask(note))

    app = Starlette(routes=[Route("/note", endpoint)])
    timing = TimingMiddleware(app, instrumentation=instrumented(registry, traced.provider))
    copies: dict[str, contextvars.Context] = {}

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        copies[message["type"]] = contextvars.copy_context()

    await timing(http_scope("GET", "/note"), receive, send)
    (span,) = traced.server_spans()
    during_start = copies["http.response.start"]
    assert during_start.run(current_record) is not None
    assert during_start.run(trace.get_current_span).get_span_context().span_id == span.context.span_id
    last = copies["http.response.body"]
    assert last.run(current_record) is None
    assert not last.run(trace.get_current_span).get_span_context().is_valid
    ((record, current),) = seen_by_background
    assert record is not None and record.finished
    assert current.get_span_context().span_id == span.context.span_id
    assert current_record() is None and not trace.get_current_span().get_span_context().is_valid


async def test_exceptions_are_recorded_and_raised_unchanged(registry: CollectorRegistry, traced: Traced) -> None:
    app = build_app(registry, traced.provider)
    async with asgi_client(app) as client:
        with pytest.raises(LookupError, match="no such thing"):
            await client.get("/boom")
    assert duration_count(registry, "/boom", "500") == 1
    (span,) = traced.server_spans()
    assert span.name == "GET /boom"
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.attributes is not None and span.attributes["error.type"] == "LookupError"
    assert span.attributes["http.response.status_code"] == 500
    assert [event.name for event in span.events] == ["exception"]


async def test_an_error_after_the_response_started_keeps_its_status(registry: CollectorRegistry) -> None:
    async def broken_stream() -> object:
        yield b"partial"
        raise ConnectionError("backend went away")

    async def streaming(request: Request) -> Response:
        return StreamingResponse(broken_stream())  # type: ignore[arg-type]

    app = Starlette(
        routes=[Route("/s", streaming)],
        middleware=[Middleware(TimingMiddleware, instrumentation=instrumented(registry))],
    )
    async with asgi_client(app) as client:
        with pytest.raises(ConnectionError):
            await client.get("/s")
    assert duration_count(registry, "/s", "200") == 1


async def test_one_server_span_with_semantic_convention_attributes(registry: CollectorRegistry, traced: Traced) -> None:
    app = build_app(registry, traced.provider)
    async with asgi_client(app) as client:
        await client.get("/users/42?q=1", headers={"user-agent": "tests/1.0", "host": "shop.example:8443"})
    (span,) = traced.spans
    assert span.kind is trace.SpanKind.SERVER
    assert span.name == "GET /users/{user_id}"
    assert span.attributes == {
        "http.request.method": "GET",
        "url.path": "/users/42",
        "url.scheme": "http",
        "network.protocol.version": "1.1",
        "client.address": "127.0.0.1",
        "server.address": "shop.example",
        "server.port": 8443,
        "user_agent.original": "tests/1.0",
        "http.route": "/users/{user_id}",
        "http.response.status_code": 200,
    }
    assert span.status.status_code is trace.StatusCode.UNSET


async def test_incoming_traceparent_continues_the_trace(registry: CollectorRegistry, traced: Traced) -> None:
    app = build_app(registry, traced.provider)
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    await call_asgi(app, path="/render", headers=[("traceparent", parent), ("host", "[::1]:8000")])
    server = traced.server_spans()[0]
    assert server.context is not None and server.parent is not None
    assert f"{server.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert f"{server.parent.span_id:016x}" == "b7ad6b7169203331"
    assert server.attributes is not None and server.attributes["server.address"] == "::1"


async def test_timed_operations_are_child_spans_and_in_server_timing(
    registry: CollectorRegistry, traced: Traced
) -> None:
    app = build_app(registry, traced.provider)
    async with asgi_client(app) as client:
        response = await client.get("/render")
    server = traced.server_spans()[0]
    children = [s for s in traced.spans if s.kind is trace.SpanKind.INTERNAL]
    assert [c.name for c in children] == ["render page", "load", "load"]
    assert all(c.parent is not None and server.context and c.parent.span_id == server.context.span_id for c in children)
    timing = response.headers["server-timing"]
    assert re.fullmatch(
        r'app;dur=[\d.]+, render-page;dur=[\d.]+;desc="bottleneck", load;dur=[\d.]+;desc="2 calls"', timing
    ), timing
    assert server.attributes is not None and server.attributes["slipstream.bottleneck"] == "render page"
    assert registry.get_sample_value("slipstream_operation_duration_seconds_count", {"operation": "load"}) == 2


async def test_bottlenecks_are_logged(registry: CollectorRegistry, caplog: pytest.LogCaptureFixture) -> None:
    app = build_app(registry)
    with caplog.at_level(logging.INFO, logger="slipstream.timing"):
        await call_asgi(app, path="/render")
    (record,) = [r for r in caplog.records if r.name == "slipstream.timing"]
    assert "bottleneck: render page" in record.getMessage()
    assert record.http_route == "/render"  # type: ignore[attr-defined]


async def test_server_timing_can_be_switched_off(registry: CollectorRegistry) -> None:
    app = build_app(registry, timing_server_timing=False)
    captured = await call_asgi(app, path="/users/1")
    assert "server-timing" not in captured.headers


async def test_sampled_requests_leave_exemplars(registry: CollectorRegistry, traced: Traced) -> None:
    app = build_app(registry, traced.provider)
    await call_asgi(app, path="/users/3")
    (span,) = traced.spans
    assert span.context is not None
    exposition = openmetrics(registry)
    line = next(line for line in exposition.splitlines() if line.startswith(DURATION + "_bucket") and "# {" in line)
    assert f'trace_id="{span.context.trace_id:032x}"' in line
    assert f'span_id="{span.context.span_id:016x}"' in line


async def test_unsampled_requests_leave_no_exemplar(registry: CollectorRegistry, traced: Traced) -> None:
    app = build_app(registry, traced.provider)
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    await call_asgi(app, path="/users/3", headers=[("traceparent", parent)])
    assert traced.spans == ()
    assert "trace_id" not in openmetrics(registry)


async def test_an_unsampled_request_leaves_its_bucket_to_the_next_sampled_one(
    registry: CollectorRegistry, traced: Traced
) -> None:
    app = build_app(registry, traced.provider)
    unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    await call_asgi(app, path="/users/3", headers=[("traceparent", unsampled)])
    await call_asgi(app, path="/users/4")
    (span,) = traced.spans
    assert span.context is not None and f"{span.context.trace_id:032x}" in openmetrics(registry)


async def test_interleaved_requests_keep_their_own_records(registry: CollectorRegistry) -> None:
    """Two requests alternate step by step; neither sees the other's operations, route or sizes."""
    turns = [anyio.Event() for _ in range(4)]
    seen: dict[str, object] = {}

    async def step(request: Request) -> Response:
        name = request.path_params["name"]
        first, second = (0, 2) if name == "a" else (1, 3)
        if first:
            await turns[first - 1].wait()
        with timed(f"op-{name}"):
            turns[first].set()
            await turns[second - 1].wait()
        turns[second].set() if second < 3 else None
        record = current_record()
        assert record is not None
        seen[name] = sorted(record.operations)
        return PlainTextResponse(name * (10 if name == "a" else 1000))

    app = Starlette(
        routes=[Route("/step/{name}", step)],
        middleware=[Middleware(TimingMiddleware, instrumentation=instrumented(registry))],
    )
    async with asgi_client(app) as client, anyio.create_task_group() as group:
        responses: dict[str, httpx.Response] = {}

        async def fetch(name: str) -> None:
            responses[name] = await client.get(f"/step/{name}")

        group.start_soon(fetch, "a")
        group.start_soon(fetch, "b")
    assert seen == {"a": ["op-a"], "b": ["op-b"]}
    assert "op-b" not in responses["a"].headers["server-timing"]
    assert "op-a" not in responses["b"].headers["server-timing"]
    labels = {"http_request_method": "GET", "http_route": "/step/{name}", "http_response_status_code": "200"}
    assert registry.get_sample_value("http_server_response_body_size_bytes_sum", labels) == 1010


async def test_sync_endpoints_in_the_threadpool_write_to_the_request_record(registry: CollectorRegistry) -> None:
    def sync_page(request: Request) -> Response:
        with timed("sync work"):
            time.sleep(0.001)
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[Route("/sync", sync_page)],
        middleware=[Middleware(TimingMiddleware, instrumentation=instrumented(registry))],
    )
    captured = await call_asgi(app, path="/sync")
    assert "sync-work;dur=" in captured.headers["server-timing"]


async def test_cache_hits_are_labelled_with_the_route_and_outcome(registry: CollectorRegistry) -> None:
    async def cached_page(request: Request) -> Response:
        return PlainTextResponse("page " * 300, headers={"cache-control": "max-age=60"})

    instrumentation = instrumented(registry)
    app = Starlette(
        routes=[Route("/pages/{slug}", cached_page)],
        middleware=[
            Middleware(TimingMiddleware, instrumentation=instrumentation),
            Middleware(CacheMiddleware, instrumentation=instrumentation),
            Middleware(CompressionMiddleware, instrumentation=instrumentation),
            Middleware(ConditionalMiddleware, instrumentation=instrumentation),
        ],
    )
    async with asgi_client(app) as client:
        miss = await client.get("/pages/home", headers={"accept-encoding": "br"})
        hit = await client.get("/pages/home", headers={"accept-encoding": "br"})
        head = await client.head("/pages/about")
    assert 'cache;desc="MISS"' in miss.headers["server-timing"]
    assert 'cache;desc="HIT"' in hit.headers["server-timing"]
    assert hit.headers["x-cache"] == "HIT"
    assert head.status_code == 200
    assert duration_count(registry, "/pages/{slug}") == 2
    assert duration_count(registry, "/pages/{slug}", method="HEAD") == 1


async def test_non_http_scopes_pass_through(registry: CollectorRegistry) -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    await TimingMiddleware(app, instrumentation=instrumented(registry))({"type": "lifespan"}, _never, _ignore)
    assert seen == ["lifespan"]


async def _never() -> dict[str, str]:
    raise AssertionError("not called")


async def _ignore(message: object) -> None:
    pass


def openmetrics(registry: CollectorRegistry) -> str:
    return str(generate_latest(registry).decode())  # type: ignore[no-untyped-call]


async def test_server_errors_answered_without_an_exception_mark_the_span(
    registry: CollectorRegistry, traced: Traced
) -> None:
    async def unavailable(request: Request) -> Response:
        return PlainTextResponse("later", status_code=503)

    app = Starlette(
        routes=[Route("/later", unavailable)],
        middleware=[Middleware(TimingMiddleware, instrumentation=instrumented(registry, traced.provider))],
    )
    await call_asgi(app, path="/later", headers=[("content-length", "not a number")])
    (span,) = traced.spans
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.attributes is not None and span.attributes["error.type"] == "503"
    labels = {"http_request_method": "GET", "http_route": "/later"}
    assert registry.get_sample_value("http_server_request_body_size_bytes_sum", labels) == 0


async def test_files_sent_by_path_are_measured_from_their_content_length(
    registry: CollectorRegistry, tmp_path: Path
) -> None:
    document = tmp_path / "report.txt"
    document.write_bytes(b"x" * 4321)

    async def download(request: Request) -> Response:
        return FileResponse(document)

    app = Starlette(
        routes=[Route("/download", download)],
        middleware=[Middleware(TimingMiddleware, instrumentation=instrumented(registry))],
    )
    captured = Captured()

    async def send(message: Message) -> None:
        captured.messages.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {**http_scope(path="/download"), "extensions": {"http.response.pathsend": {}}}
    await app(scope, receive, send)
    assert [m["type"] for m in captured.messages] == ["http.response.start", "http.response.pathsend"]
    labels = {"http_request_method": "GET", "http_route": "/download", "http_response_status_code": "200"}
    assert registry.get_sample_value("http_server_response_body_size_bytes_sum", labels) == 4321
    assert registry.get_sample_value(DURATION + "_count", labels) == 1


async def test_exemplars_are_taken_at_most_once_a_second_per_bucket(
    registry: CollectorRegistry, traced: Traced, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = build_app(registry, traced.provider)
    await call_asgi(app, path="/users/1")
    await call_asgi(app, path="/users/2")
    first, second = (f"{s.context.trace_id:032x}" for s in traced.spans if s.context is not None)
    exposition = openmetrics(registry)
    assert first in exposition and second not in exposition
    # once the interval has passed the bucket takes the next sampled request's
    monkeypatch.setattr("slipstream.exporters.http_metrics.EXEMPLAR_INTERVAL", 0.0)
    app = build_app(registry, traced.provider)
    await call_asgi(app, path="/users/3")
    await call_asgi(app, path="/users/4")
    latest = f"{traced.spans[-1].context.trace_id:032x}"
    assert latest in openmetrics(registry)
