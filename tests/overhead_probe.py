"""How many times a bare app's CPU a request costs under slipstream's whole stack, in-process: the ratios
test_overhead_budget.py holds to a budget. ``python -m tests.overhead_probe [rounds] [requests]`` prints them as JSON.

Two routes (a small JSON answered uncached, a 60 KB page answered from the cache in brotli) and three apps per
route: the bare app, ``install()`` with everything on but tracing, and the same with one span per request (an SDK
provider, a BatchSpanProcessor, an exporter that counts). Rounds run the apps back to back in a rotated order and a
ratio is the median over rounds of that round's ratio, so the machine's load, which moves both, cancels out.
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import sys
import time
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message

import slipstream

ITEM, PAGE = "/items/42", "/page.html"
PAGE_TEXT = "".join(f"<article><h2>Post {n}</h2><p>{'words of the post ' * 40}</p></article>\n" for n in range(85))
STACK, TRACED = "stack", "stack + span"


class CountingExporter(SpanExporter):
    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


async def item(request: Request) -> Response:
    item_id = int(request.path_params["item_id"])
    document = {"id": item_id, "sku": f"SKU-{item_id:05d}", "name": "Espresso cup", "price": 12.5}
    return JSONResponse({**document, "tags": ["kitchen", "ceramics", "coffee"], "ratings": {"count": 211, "mean": 4.6}})


async def page(request: Request) -> Response:
    return HTMLResponse(PAGE_TEXT, headers={"Cache-Control": "public, max-age=3600"})


def app(*, stacked: bool = True, tracing: bool = False) -> ASGIApp:
    """The bare app, or under ``install()`` with everything on (the report too); its spans, with ``tracing``, go to
    the global tracer provider."""
    built = Starlette(routes=[Route("/items/{item_id}", item), Route(PAGE, page)])
    if stacked:
        settings = slipstream.Settings(metrics_port=None, report_enabled=True, tracing_enabled=tracing)
        slipstream.install(built, settings, registry=CollectorRegistry())
    return built


def scope(path: str) -> dict[str, object]:
    headers = [(b"host", b"probe.test"), (b"user-agent", b"probe/1.0"), (b"accept-encoding", b"br")]
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "headers": headers, "root_path": "",
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}  # fmt: skip


async def receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def answer(target: ASGIApp, path: str) -> dict[bytes, bytes]:
    """The response's start headers, the status checked."""
    starts: list[Message] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            starts.append(message)

    await target(scope(path), receive, send)
    if starts[0]["status"] != 200:
        raise RuntimeError(f"{path}: status {starts[0]['status']}")
    return dict(starts[0]["headers"])


async def discard(message: Message) -> None:
    return None


async def cpu_per_request(target: ASGIApp, path: str, requests: int) -> float:
    template = scope(path)
    gc.collect()
    started = time.process_time()
    for _ in range(requests):
        await target(dict(template), receive, discard)
    return (time.process_time() - started) / requests


async def measure(rounds: int, requests: int) -> dict[str, dict[str, float]]:
    """Per route, each stack's CPU per request over the bare app's: medians over rounds of each round's ratio."""
    exporter = CountingExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # this process's only one: the probe runs alone
    apps = {"bare": app(stacked=False), STACK: app(), TRACED: app(tracing=True)}
    ratios: dict[str, dict[str, float]] = {}
    try:
        for path in (ITEM, PAGE):
            for target in apps.values():
                await answer(target, path)  # fills the cache, binds the labelled children
            if (await answer(apps[TRACED], path)).get(b"x-cache") != (b"HIT" if path == PAGE else b"MISS"):
                raise RuntimeError(f"{path}: not answered as expected by the cache")
            times: dict[str, list[float]] = {name: [] for name in apps}
            for round_index in range(rounds):
                names = list(apps)
                for name in [*names[round_index % 3 :], *names[: round_index % 3]]:
                    times[name].append(await cpu_per_request(apps[name], path, requests))
            bare = times["bare"]
            ratios[path] = {
                name: statistics.median(t / b for t, b in zip(times[name], bare, strict=True))
                for name in (STACK, TRACED)
            }
        provider.force_flush()
        expected = 2 * (2 + rounds * requests)  # per route: the warm-up, the check and the rounds
        if exporter.spans != expected:
            raise RuntimeError(f"{exporter.spans} spans exported, not {expected}: the traced stack made no span")
    finally:
        provider.shutdown()
    return ratios


def main() -> None:
    rounds, requests = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) > 2 else (15, 150)
    print(json.dumps(asyncio.run(measure(rounds, requests))))


if __name__ == "__main__":
    main()
