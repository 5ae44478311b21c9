"""The apps bench_cache.py times and the contenders it builds from them, each checked before it is timed.

Every app serves the same endpoints from the same data: the bare app, slipstream's full stack (with and without Redis),
fastapi-cache2 (alone and in brotli-asgi) and a cacheless peer stack of popular middleware.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from brotli_asgi import BrotliMiddleware
from fastapi import FastAPI
from fastapi_cache import FastAPICache
from fastapi_cache.backends.inmemory import InMemoryBackend
from fastapi_cache.decorator import cache
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Scope
from starlette_exporter import PrometheusMiddleware

import slipstream
from harness import WORDS, decoded_body, discard, fetch, fetch_ok, receive, request_scope

CACHE_HEADERS = {"Cache-Control": "public, max-age=3600"}
ENDPOINTS = {"/data.json": "~2 KB JSON built on every call", "/page.html": "~60 KB HTML"}
CODINGS, BROTLI_QUALITY, STAMPEDE_SLEEP = ("br", "gzip"), 4, 0.02
PAGE_WORDS = WORDS[: WORDS.index("comment") + 1]  # the vocabulary the page has always been built from
Row = tuple[int, str, str, int, float, str]


def make_rows(rng: random.Random, count: int = 19) -> list[Row]:
    """Order rows as a database would hand them over; 19 of them make about 2 KB of JSON."""
    statuses = ["pending", "paid", "shipped", "delivered", "refunded"]
    return [
        (rng.randrange(10**6), f"SKU-{rng.randrange(10**5):05d}", rng.choice(statuses), rng.randint(1, 4),
         round(rng.uniform(5, 500), 2), f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T12:00:00Z")
        for _ in range(count)
    ]  # fmt: skip


def order_documents(rows: list[Row]) -> list[dict[str, object]]:
    return [
        {"id": i, "sku": sku, "status": status, "qty": qty, "price": price, "total": round(qty * price, 2), "at": at}
        for i, sku, status, qty, price, at in rows
    ]


def make_html_page(rng: random.Random, target_size: int = 60 * 1024) -> str:
    """A blog index of varied articles (bench_compression.py's idea, shorter), grown to about ``target_size``."""
    parts = ['<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Blog</title></head><body><main>\n']
    while sum(map(len, parts)) < target_size - 30:
        words = [" ".join(rng.choices(PAGE_WORDS, k=rng.randint(6, 16))).capitalize() for _ in range(rng.randint(2, 8))]
        tags = "".join(f'<li><a href="/tags/{t}">#{t}</a></li>' for t in rng.sample(PAGE_WORDS, rng.randint(2, 5)))
        paragraphs = "".join(f"<p>{sentence}.</p>\n" for sentence in words[1:])
        title = f'<h2><a href="/posts/{"-".join(rng.sample(PAGE_WORDS, 3))}">{words[0]}</a></h2>'
        footer = f'<footer><ul class="tags">{tags}</ul><span>{rng.randint(10, 9999)} reads</span></footer>'
        parts.append(f'<article class="post" id="post-{len(parts)}">\n{title}\n{paragraphs}{footer}</article>\n')
    return "".join([*parts, "</main></body></html>\n"])


def routes(rows: list[Row], page: str, calls: Counter[str]) -> list[Route]:
    """The endpoints every contender serves; ``calls`` counts how often each one ran."""

    async def data_json(request: Request) -> Response:
        calls["/data.json"] += 1
        return JSONResponse(order_documents(rows), headers=CACHE_HEADERS)

    async def page_html(request: Request) -> Response:
        calls["/page.html"] += 1
        return HTMLResponse(page, headers=CACHE_HEADERS)

    async def slow(request: Request) -> Response:  # the stampede's: slow enough for the requests to overlap
        calls["/slow"] += 1
        await asyncio.sleep(STAMPEDE_SLEEP)
        return JSONResponse(order_documents(rows), headers=CACHE_HEADERS)

    return [Route("/data.json", data_json), Route("/page.html", page_html), Route("/slow", slow)]


def slipstream_stack(
    rows: list[Row], page: str, calls: Counter[str], redis_url: str | None = None
) -> tuple[Starlette, slipstream.ResponseCache]:
    """The stack ``install`` sets up, telemetry aside: cache (L1, and Redis L2 given a URL), compression, ETags.

    Timing is switched off here: this benchmark measures the cache; bench_telemetry.py measures the whole stack,
    timing included, on a warm hit."""
    app = Starlette(routes=routes(rows, page, calls))
    settings = slipstream.Settings(cache_redis_url=redis_url, timing_enabled=False, metrics_port=None)
    cache = slipstream.install(app, settings).cache
    assert cache is not None
    return app, cache


def fastapi_cache2_app(rows: list[Row], page: str, calls: Counter[str]) -> FastAPI:
    """fastapi-cache2 as documented. The page returns a str: its coder cannot store a Response."""
    FastAPICache.init(InMemoryBackend(), prefix="bench")
    app = FastAPI()

    async def data_json() -> list[dict[str, object]]:
        calls["/data.json"] += 1
        return order_documents(rows)

    async def page_html() -> str:
        calls["/page.html"] += 1
        return page

    app.add_api_route("/data.json", cache(expire=3600)(data_json))
    app.add_api_route("/page.html", cache(expire=3600)(page_html), response_class=HTMLResponse)
    return app


def peer_stack(rows: list[Row], page: str, calls: Counter[str]) -> Starlette:
    """No cache. Outermost first: OpenTelemetry (SDK TracerProvider without span processor: spans are built and
    sampled, not exported; the API's no-op MeterProvider), starlette-exporter's metrics, brotli-asgi."""
    otel = Middleware(OpenTelemetryMiddleware, tracer_provider=TracerProvider())
    brotli_asgi = Middleware(BrotliMiddleware, quality=BROTLI_QUALITY)
    return Starlette(routes=routes(rows, page, calls), middleware=[otel, Middleware(PrometheusMiddleware), brotli_asgi])


@dataclass(eq=False)
class Contender:
    """One app and one request; ``expect``ed status and headers are checked before timing. ``before_each`` runs
    before every request, outside the timed part. ``cpu``, ``wall``: µs per request, one sample per round."""

    name: str
    app: ASGIApp
    scope: Scope
    calls: Counter[str]
    expect: dict[bytes, bytes]
    status: int = 200
    before_each: Callable[[], object] | None = None
    output_size: int = 0
    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)

    async def run(self, requests: int) -> tuple[float, float]:
        """Times ``requests`` requests: in one go, or one by one when ``before_each`` must stay out of the timing."""
        batches, batch_size = (requests, 1) if self.before_each else (1, requests)
        cpu = wall = 0
        for _ in range(batches):
            if self.before_each is not None:
                self.before_each()
            cpu_started, wall_started = time.process_time_ns(), time.perf_counter_ns()
            for _ in range(batch_size):
                await self.app(dict(self.scope), receive, discard)
            cpu, wall = cpu + time.process_time_ns() - cpu_started, wall + time.perf_counter_ns() - wall_started
        return cpu / requests / 1000, wall / requests / 1000

    async def measure(self, requests: int) -> None:
        cpu, wall = await self.run(requests)
        self.cpu.append(cpu)
        self.wall.append(wall)

    async def verify(self, original: bytes) -> None:
        if self.before_each is not None:
            self.before_each()
        status, headers, body = await fetch(self.app, self.scope)
        seen = {name: headers.get(name, b"") for name in self.expect}
        decodes = status != 200 or decoded_body(headers, body) == original
        if status != self.status or seen != self.expect or not decodes:
            raise RuntimeError(f"{self.name} {self.scope['path']}: {status} {seen}, decodes to the original: {decodes}")
        self.output_size = len(body)


@dataclass
class Comparison:
    """One endpoint and coding. ``contenders``: the bare app, the warm L1 hit, the L1 304, the L2 hit, then the others,
    the cacheless peer stack last."""

    endpoint: str
    coding: str
    original: bytes
    contenders: list[Contender]


async def prepare(rows: list[Row], page: str, redis_url: str) -> tuple[list[Comparison], slipstream.ResponseCache]:
    """Every comparison, its caches warm and every contender checked; also the cache holding a Redis connection."""
    bare, l1, l2, fastapi_cache2, peers = (Counter[str]() for _ in range(5))
    bare_app, fastapi_app = Starlette(routes=routes(rows, page, bare)), fastapi_cache2_app(rows, page, fastapi_cache2)
    (l1_app, _), (l2_app, l2_cache) = slipstream_stack(rows, page, l1), slipstream_stack(rows, page, l2, redis_url)
    fastapi_brotli, peer_app = BrotliMiddleware(fastapi_app, quality=BROTLI_QUALITY), peer_stack(rows, page, peers)
    comparisons = []
    for endpoint in ENDPOINTS:
        _, original = await fetch_ok(bare_app, request_scope(endpoint, "identity"))
        for coding in CODINGS:
            identity, encoded = {b"content-encoding": b""}, {b"content-encoding": coding.encode()}
            hit, fastapi_hit = {b"x-cache": b"HIT", **encoded}, {b"x-fastapi-cache": b"HIT", **identity}
            scope, fastapi_encoded = request_scope(endpoint, coding), {**fastapi_hit, **encoded}
            contenders = [
                Contender("bare app, computing the response", bare_app, scope, bare, identity),
                Contender("slipstream L1 hit", l1_app, scope, l1, hit),
                Contender("slipstream L2 hit (Redis)", l2_app, scope, l2, hit, before_each=l2_cache.memory.clear),
                Contender("fastapi-cache2 hit", fastapi_app, scope, fastapi_cache2, fastapi_hit),
                Contender("fastapi-cache2 hit + brotli-asgi", fastapi_brotli, scope, fastapi_cache2, fastapi_encoded),
                Contender("peer stack, no cache", peer_app, scope, peers, encoded),
            ]
            comparisons.append(Comparison(endpoint, coding, original, contenders))
    for _ in range(2):  # fills every entry and variant; the pause lets the background writes to Redis land
        for contender in (contender for comparison in comparisons for contender in comparison.contenders):
            await contender.run(3)
        await asyncio.sleep(0.2)
    for comparison in comparisons:
        etag = (await fetch(l1_app, comparison.contenders[1].scope)).headers[b"etag"]
        scope = request_scope(comparison.endpoint, comparison.coding, extra=[(b"if-none-match", etag)])
        name = "slipstream L1 hit, If-None-Match: 304"
        comparison.contenders.insert(2, Contender(name, l1_app, scope, l1, {b"x-cache": b"HIT"}, status=304))
        for contender in comparison.contenders:
            await contender.verify(comparison.original)
    return comparisons, l2_cache
