"""The counters the cache, compression and conditional middlewares report, read back from a private registry."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import slipstream
from slipstream import CacheMiddleware, CompressionMiddleware, ConditionalMiddleware, Settings
from tests.middleware.apps import TEXT, respond
from tests.support import asgi_client, call_asgi, instrumented

pytestmark = pytest.mark.anyio


async def test_middlewares_count_what_they_do() -> None:
    instrumentation = instrumented()
    registry = instrumentation.registry
    origin = respond(headers=[("content-type", "text/html"), ("cache-control", "max-age=60")])
    stack = CacheMiddleware(
        CompressionMiddleware(
            ConditionalMiddleware(origin, instrumentation=instrumentation), instrumentation=instrumentation
        ),
        exclude_paths=("/private",),
        instrumentation=instrumentation,
    )
    first = await call_asgi(stack, headers=[("accept-encoding", "br")])
    await call_asgi(stack, headers=[("accept-encoding", "br")])
    await call_asgi(stack, headers=[("if-none-match", first.headers["etag"])])
    await call_asgi(stack, path="/private", headers=[("accept-encoding", "gzip")])
    await call_asgi(stack, path="/private", headers=[("if-match", '"stale"')])

    def value(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    assert value("slipstream_cache_requests_total", result="miss", tier="none") == 1
    assert value("slipstream_cache_requests_total", result="hit", tier="l1") == 2
    assert value("slipstream_cache_requests_total", result="bypass", tier="none") == 2
    assert value("slipstream_compression_input_bytes_total", encoding="br") == len(TEXT)
    assert 0 < value("slipstream_compression_output_bytes_total", encoding="br") < len(TEXT)
    assert value("slipstream_compression_input_bytes_total", encoding="gzip") == len(TEXT)
    # The 304 above came from the cache itself; the conditional middleware replaced only the /private 412.
    assert value("slipstream_conditional_responses_total", http_response_status_code="412") == 1


async def test_streamed_compression_counts_every_chunk() -> None:
    instrumentation = instrumented()
    registry = instrumentation.registry
    chunks = [TEXT, TEXT[:100], TEXT]
    app = CompressionMiddleware(respond(chunks), instrumentation=instrumentation)
    await call_asgi(app, headers=[("accept-encoding", "zstd")])
    assert registry.get_sample_value("slipstream_compression_input_bytes_total", {"encoding": "zstd"}) == sum(
        len(chunk) for chunk in chunks
    )


async def test_variants_the_cache_fills_are_counted_once_and_reported() -> None:
    async def page(request: Request) -> Response:
        return PlainTextResponse(TEXT.decode(), headers={"cache-control": "max-age=60"})

    app = Starlette(routes=[Route("/", page)])
    registry = CollectorRegistry()
    instrumentation = slipstream.install(app, Settings(metrics_port=None, report_enabled=True), registry=registry)
    bodies: dict[str, int] = {}
    async with asgi_client(app) as client:
        # zstd: a miss CompressionMiddleware compresses; gzip and br: variants the cache makes on their first hit.
        for coding in ("zstd", "zstd", "gzip", "gzip", "br", "gzip", "br", "zstd"):
            response = await client.get("/", headers={"accept-encoding": coding})
            assert response.headers["content-encoding"] == coding
            bodies[coding] = int(response.headers["content-length"])

    def value(name: str, coding: str) -> float:
        return registry.get_sample_value(f"slipstream_compression_{name}_bytes_total", {"encoding": coding}) or 0.0

    for coding, size in bodies.items():
        assert value("input", coding) == len(TEXT), coding
        assert value("output", coding) == size, coding
    assert instrumentation.report is not None
    reported = instrumentation.report.snapshot()["compression"]
    assert {coding: row["input_bytes"] for coding, row in reported.items()} == dict.fromkeys(bodies, len(TEXT))
