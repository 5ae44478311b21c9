"""install(): timing outermost, the metrics server over the lifespan, in-app endpoints, report, compatibility names."""

from __future__ import annotations

import gc
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message

import slipstream
from slipstream import Settings
from tests.otlp_receiver import OTLPReceiver
from tests.support import asgi_client, free_port

pytestmark = pytest.mark.anyio


async def page(request: Request) -> Response:
    return PlainTextResponse("page " * 400, headers={"cache-control": "max-age=60"})


async def failing(request: Request) -> Response:
    return PlainTextResponse("down", status_code=503)


def make_app(registry: CollectorRegistry, **options: object) -> tuple[Starlette, slipstream.Installation]:
    app = Starlette(routes=[Route("/pages/{slug}", page), Route("/down", failing)])
    return app, slipstream.install(app, Settings(**options), registry)  # type: ignore[arg-type]


class Lifespan:
    """Drives an app's lifespan in-process: startup on enter, shutdown on exit."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.to_app, self.from_test = anyio.create_memory_object_stream[Message](4)
        self.to_test, self.from_app = anyio.create_memory_object_stream[Message](4)

    async def run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        await self.app(scope, self.from_test.receive, self.to_test.send)

    async def step(self, kind: str) -> Message:
        await self.to_app.send({"type": f"lifespan.{kind}"})
        with anyio.fail_after(5):
            return await self.from_app.receive()


async def serve_lifespan(app: Starlette, body: Callable[[], Awaitable[None]]) -> None:
    lifespan = Lifespan(app)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(lifespan.run)
            assert (await lifespan.step("startup"))["type"] == "lifespan.startup.complete"
            try:
                await body()
            finally:
                assert (await lifespan.step("shutdown"))["type"] == "lifespan.shutdown.complete"
    finally:
        for stream in (lifespan.to_app, lifespan.from_app, lifespan.from_test, lifespan.to_test):
            stream.close()


async def test_the_metrics_port_is_served_between_startup_and_shutdown() -> None:
    registry = CollectorRegistry()
    port = free_port()
    app, installation = make_app(registry, metrics_port=port, report_enabled=True)
    url = f"http://127.0.0.1:{port}"

    async def body() -> None:
        assert installation.metrics_server is not None
        async with asgi_client(app) as client:
            await client.get("/pages/a")
            await client.get("/pages/a")
            await client.get("/down")
        async with httpx.AsyncClient() as scraper:
            metrics = (await scraper.get(url + "/metrics")).text
            report = (await scraper.get(url + "/report")).json()
        assert 'http_route="/pages/{slug}"' in metrics
        routes = {row["route"]: row for row in report["slowest_routes"]}
        assert routes["/pages/{slug}"]["requests"] == 2
        assert routes["/down"]["error_rate"] == 1.0
        assert report["cache"]["hit_ratio"] == 0.3333  # MISS, HIT, and the 503 a MISS

    await serve_lifespan(app, body)
    assert installation.metrics_server is None
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as scraper:
            await scraper.get(url + "/metrics")


async def test_a_taken_metrics_port_is_a_warning_not_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        app, installation = make_app(CollectorRegistry(), metrics_port=holder.getsockname()[1])

        async def body() -> None:
            assert installation.metrics_server is None
            async with asgi_client(app) as client:
                assert (await client.get("/pages/x")).status_code == 200

        with caplog.at_level(logging.WARNING, logger="slipstream"):
            await serve_lifespan(app, body)
    assert "slipstream sidecar" in caplog.text


async def test_workers_in_multiprocess_mode_leave_serving_to_the_sidecar(tmp_path: Path) -> None:
    app, installation = make_app(CollectorRegistry(), metrics_port=free_port(), metrics_multiprocess_dir=str(tmp_path))

    async def body() -> None:
        assert installation.metrics_server is None

    await serve_lifespan(app, body)
    assert installation.metrics_server is None


async def test_metrics_and_report_on_the_app_port_only_when_asked_and_guarded() -> None:
    registry = CollectorRegistry()
    app, _ = make_app(
        registry,
        metrics_port=None,
        metrics_path="/internal/metrics",
        metrics_bearer_token="s3cret",
        report_enabled=True,
        report_path="/internal/report",
    )
    secret = {"authorization": "Bearer s3cret"}
    async with asgi_client(app) as client:
        await client.get("/pages/b")
        assert (await client.get("/metrics")).status_code == 404
        refused = await client.get("/internal/metrics")
        metrics = await client.get("/internal/metrics", headers=secret)
        report = await client.get("/internal/report", headers=secret)
        assert (await client.get("/internal/report")).status_code == 401
    assert refused.status_code == 401
    assert "http_server_request_duration_seconds" in metrics.text
    # the endpoints are not themselves timed, cached or labelled
    assert "/internal" not in metrics.text
    assert report.headers["content-type"] == "application/json"
    assert json.loads(report.content)["slowest_routes"][0]["route"] == "/pages/{slug}"


@pytest.mark.parametrize(
    ("names", "sample", "labels"),
    [
        (
            "starlette_exporter",
            "starlette_requests_total",
            {"method": "GET", "path": "/pages/{slug}", "status_code": "200", "app_name": "starlette"},
        ),
        ("instrumentator", "http_requests_total", {"method": "GET", "status": "2xx", "handler": "/pages/{slug}"}),
    ],
)
async def test_compatibility_names_for_existing_dashboards(names: str, sample: str, labels: dict[str, str]) -> None:
    registry = CollectorRegistry()
    app, _ = make_app(registry, metrics_port=None, metrics_names=names)
    async with asgi_client(app) as client:
        await client.get("/pages/a")
        await client.get("/pages/a")
        await client.get("/nowhere")
    assert registry.get_sample_value(sample, labels) == 2
    # slipstream's own names stay, for the shipped dashboards
    assert (
        registry.get_sample_value(
            "http_server_request_duration_seconds_count",
            {"http_request_method": "GET", "http_route": "/pages/{slug}", "http_response_status_code": "200"},
        )
        == 2
    )
    # building a second app on the same registry never raises "Duplicated timeseries"
    make_app(registry, metrics_port=None, metrics_names=names)


async def test_starlette_exporter_names_keep_its_in_progress_gauge() -> None:
    registry = CollectorRegistry()
    app, _ = make_app(registry, metrics_port=None, metrics_names="starlette_exporter")
    async with asgi_client(app) as client:
        await client.get("/nowhere")
    assert (
        registry.get_sample_value(
            "starlette_requests_total",
            {"method": "GET", "path": "__unknown__", "status_code": "404", "app_name": "starlette"},
        )
        == 1
    )
    assert registry.get_sample_value("starlette_requests_in_progress", {"method": "GET", "app_name": "starlette"}) == 0


async def test_timing_off_and_tracing_off() -> None:
    registry = CollectorRegistry()
    app, _ = make_app(registry, metrics_port=None, timing_enabled=False, tracing_enabled=False)
    async with asgi_client(app) as client:
        response = await client.get("/pages/a")
    assert "server-timing" not in response.headers
    assert registry.get_sample_value("http_server_active_requests", {"http_request_method": "GET"}) is None


@pytest.mark.usefixtures("fresh_globals")
async def test_spans_and_metrics_reach_an_otlp_collector_and_shutdown_flushes(receiver: OTLPReceiver) -> None:
    registry = CollectorRegistry()

    async def work(request: Request) -> Response:
        with slipstream.timed("lookup"):
            await anyio.sleep(0)
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/work/{n}", work)])
    slipstream.install(
        app, Settings(metrics_port=None, otel_endpoint=receiver.endpoint, otel_service_name="shop"), registry
    )
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    async def body() -> None:
        async with asgi_client(app) as client:
            await client.get("/work/1", headers={"traceparent": parent})
        assert receiver.spans == []  # batched: nothing leaves before the flush

    await serve_lifespan(app, body)
    spans = {span.name: span for span in receiver.wait_for_spans(2)}
    server, child = spans["GET /work/{n}"], spans["lookup"]
    assert server.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert server.parent_span_id == "b7ad6b7169203331"
    assert child.parent_span_id == server.span_id
    assert server.resource["service.name"] == "shop"
    assert server.attributes["http.route"] == "/work/{n}"
    duration = receiver.metric("http.server.request.duration")
    assert sum(point.count or 0 for point in duration.points) == 1


@pytest.mark.parametrize("freeze", [True, False])
async def test_lifespan_startup_freezes_the_heap_unless_told_not_to(freeze: bool) -> None:
    gc.unfreeze()
    app, _ = make_app(CollectorRegistry(), metrics_port=None, gc_freeze=freeze)
    frozen = 0

    async def during() -> None:
        nonlocal frozen
        frozen = gc.get_freeze_count()

    await serve_lifespan(app, during)
    assert (frozen > 0) is freeze
