"""Compression middleware benchmark: slipstream against its peers, in-process, at equal compression levels.

    python bench/bench_compression.py [--rounds N] [--requests N] [--max-seconds S] [--output bench/RESULTS.md]

Each ASGI app is called directly (no HTTP client, no network). For each endpoint and coding, every round runs N
requests through each contender back to back (raw library call, bare app, slipstream, peers; round-robin, rotated),
so the shared machine's drift hits them alike. Reported: medians over rounds, and per-round ratios' medians.
Replaces only its own section of the output file, between its HTML comment markers.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import statistics
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import brotli
import zstandard
from brotli_asgi import BrotliMiddleware
from starlette.applications import Starlette
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Scope
from starlette_compress import CompressMiddleware

from harness import (
    WORDS,
    BenchmarkOptions,
    decoded_body,
    discard,
    fetch_ok,
    median_ratio,
    receive,
    report_heading,
    request_scope,
    run_rounds,
    source_revision,
    table_row,
    verdict,
    write_section,
)
from slipstream import CompressionMiddleware

GZIP_LEVEL, BROTLI_QUALITY, ZSTD_LEVEL, MINIMUM_SIZE = 6, 4, 3, 500
CODINGS = {"gzip": f"level {GZIP_LEVEL}", "br": f"quality {BROTLI_QUALITY}", "zstd": f"level {ZSTD_LEVEL}"}
ENDPOINTS = {"/data.json": "~2 KB JSON", "/page.html": "~60 KB HTML"}
OVERHEAD_TARGET, OVERHEAD_TARGET_ENDPOINT = 1.10, "/page.html"  # slipstream overhead / raw library call
PACKAGES = ("slipstream", "starlette", "brotli-asgi", "starlette-compress", "brotli", "zstandard", "anyio")
BARE, SLIPSTREAM = "bare app (no middleware)", "slipstream"
ZSTD_COMPRESSOR = zstandard.ZstdCompressor(level=ZSTD_LEVEL)


def gzip_compress(body: bytes) -> bytes:
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    return compressor.compress(body) + compressor.flush()


RAW_CALLS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("raw zlib.compressobj(level, DEFLATED, 31) (floor)", gzip_compress),
    "br": ("raw brotli.compress (floor)", lambda body: brotli.compress(body, quality=BROTLI_QUALITY)),
    "zstd": ("raw ZstdCompressor(level).compress (floor)", ZSTD_COMPRESSOR.compress),
}


def sentence(rng: random.Random, low: int = 6, high: int = 16) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high))).capitalize()


def a_date(rng: random.Random) -> str:
    return f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def make_json_document(rng: random.Random, target_size: int = 2048) -> dict[str, object]:
    """An order-history API response, grown until it serialises to about ``target_size`` bytes."""
    customer = {"id": 48213, "name": "Ada Lovelace", "email": "ada@example.org", "tier": "gold"}
    orders: list[dict[str, object]] = []
    pagination = {"page": 1, "per_page": 20, "next": "/api/orders?page=2"}
    document: dict[str, object] = {"customer": customer, "orders": orders, "pagination": pagination}
    while len(json.dumps(document, separators=(",", ":"))) < target_size:
        items = [{"sku": f"SKU-{rng.randrange(100_000):05d}", "qty": rng.randint(1, 4)} for _ in range(2)]
        status = rng.choice(["pending", "paid", "shipped", "delivered", "refunded"])
        placed_at, total, currency = f"{a_date(rng)}T{rng.randint(0, 23):02d}:00:00Z", rng.uniform(5, 500), "EUR"
        orders.append({"id": rng.randrange(10**6), "status": status, "placed_at": placed_at, "items": items})
        orders[-1].update(total=round(total, 2), currency=currency, note=sentence(rng, 3, 8))
    return document


def make_html_page(rng: random.Random, target_size: int = 60 * 1024) -> str:
    """A blog index page of varied articles, tag lists and tables, grown until about ``target_size`` characters."""
    nav = "".join(f'<li><a href="/{word}">{word.title()}</a></li>' for word in rng.sample(WORDS, 8))
    head = '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Engineering blog</title></head>\n'
    parts = [f"{head}<body><nav><ul>{nav}</ul></nav>\n<main>\n"]
    while sum(map(len, parts)) < target_size - 100:
        index = len(parts)
        tags = "".join(f'<li><a href="/tags/{tag}">#{tag}</a></li>' for tag in rng.sample(WORDS, rng.randint(2, 5)))
        paragraphs = "".join(f"<p>{sentence(rng)}. {sentence(rng)}.</p>\n" for _ in range(rng.randint(1, 4)))
        kind, slug = rng.choice(["wide", "narrow", "featured"]), "-".join(rng.sample(WORDS, 3))
        parts.append(
            f'<article class="post post--{kind}" id="post-{index}">\n<header><h2><a href="/posts/{slug}">'
            f'{sentence(rng, 3, 7)}</a></h2><time datetime="{a_date(rng)}">{rng.randint(1, 28)} days ago</time>'
            f"</header>\n{paragraphs}"
        )
        if index % 5 == 0:
            cells = ((rng.choice(WORDS), rng.randint(1, 9999), rng.uniform(0, 100)) for _ in range(rng.randint(2, 6)))
            rows = "".join(f"<tr><td>{a}</td><td>{b}</td><td>{c:.1f}%</td></tr>" for a, b, c in cells)
            parts.append(f'<table class="stats"><tr><th>metric</th><th>n</th><th>share</th></tr>{rows}</table>\n')
        reads = f"<span>{rng.randint(10, 9999)} reads</span>"
        parts.append(f'<footer><ul class="tags">{tags}</ul>{reads}</footer></article>\n')
    parts.append('</main>\n<footer class="site"><p>&copy; 2024 Example Corp.</p></footer></body></html>\n')
    return "".join(parts)


def build_app(json_document: dict[str, object], html_page: str) -> Starlette:
    async def data_json(request: Request) -> Response:
        return JSONResponse(json_document)

    async def page_html(request: Request) -> Response:
        return HTMLResponse(html_page)

    return Starlette(routes=[Route("/data.json", data_json), Route("/page.html", page_html)])


def middleware_contenders(app: ASGIApp, coding: str) -> dict[str, ASGIApp]:
    """Every middleware that speaks ``coding``, configured for that coding alone at the shared level."""
    levels: dict[str, Any] = {"brotli_quality": BROTLI_QUALITY, "gzip_level": GZIP_LEVEL, "zstd_level": ZSTD_LEVEL}
    contenders: dict[str, ASGIApp] = {
        SLIPSTREAM: CompressionMiddleware(app, encodings=(coding,), minimum_size=MINIMUM_SIZE, **levels)
    }
    if coding == "gzip":
        contenders["starlette GZipMiddleware"] = GZipMiddleware(app, MINIMUM_SIZE, compresslevel=GZIP_LEVEL)
    if coding == "br":
        contenders["brotli-asgi"] = BrotliMiddleware(app, quality=BROTLI_QUALITY, minimum_size=MINIMUM_SIZE)
    only_this_coding = {"zstd": coding == "zstd", "brotli": coding == "br", "gzip": coding == "gzip"}
    contenders["starlette-compress"] = CompressMiddleware(app, minimum_size=MINIMUM_SIZE, **only_this_coding, **levels)
    return contenders


@dataclass(eq=False)
class Contender:
    """One timed thing: a middleware, the bare app or the raw library call. ``samples``: µs per request, per round."""

    name: str
    output_size: int
    app: ASGIApp | None = None
    scope: Scope = field(default_factory=dict)
    raw_call: Callable[[], object] | None = None
    samples: list[float] = field(default_factory=list)

    async def run(self, requests: int) -> None:
        if self.raw_call is not None:
            for _ in range(requests):
                self.raw_call()
        elif self.app is not None:
            for _ in range(requests):
                await self.app(dict(self.scope), receive, discard)

    async def measure(self, requests: int) -> None:
        started = time.process_time_ns()
        await self.run(requests)
        self.samples.append((time.process_time_ns() - started) / requests / 1000)


@dataclass
class Comparison:
    """One endpoint and coding: the raw call, the bare app, slipstream and its peers, always timed back to back."""

    endpoint: str
    coding: str
    raw: Contender
    bare: Contender
    slipstream: Contender
    peers: list[Contender]

    @property
    def contenders(self) -> list[Contender]:
        return [self.raw, self.bare, self.slipstream, *self.peers]

    def overhead_ratio(self, contender: Contender) -> float:
        """Median over rounds of (contender - bare) / raw, each round's three timings taken moments apart."""
        rounds = zip(contender.samples, self.bare.samples, self.raw.samples, strict=True)
        return statistics.median((timed - bare) / raw for timed, bare, raw in rounds)

    def speed_ratio(self, peer: Contender) -> float:
        """Median over rounds of peer µs / slipstream µs: above 1 when the peer is slower."""
        return median_ratio(peer.samples, self.slipstream.samples)


async def verified_comparisons(app: ASGIApp) -> list[Comparison]:
    """Every comparison, once each middleware is seen to send the coding asked for and a body that decodes right."""
    comparisons: list[Comparison] = []
    for endpoint in ENDPOINTS:
        _, original = await fetch_ok(app, request_scope(endpoint, None))
        for coding, (raw_name, compress) in RAW_CALLS.items():
            raw_call = functools.partial(compress, original)
            raw = Contender(raw_name, len(raw_call()), raw_call=raw_call)
            bare = Contender(BARE, len(original), app, request_scope(endpoint, None))
            middlewares: list[Contender] = []
            scope = request_scope(endpoint, coding)
            for name, middleware in middleware_contenders(app, coding).items():
                headers, body = await fetch_ok(middleware, scope)
                where = f"{name} on {endpoint} with Accept-Encoding: {coding}"
                if headers.get(b"content-encoding") != coding.encode():
                    raise RuntimeError(f"{where}: Content-Encoding is {headers.get(b'content-encoding')!r}")
                if decoded_body(headers, body) != original:
                    raise RuntimeError(f"{where}: the body does not decode to the original bytes")
                if int(headers.get(b"content-length", len(body))) != len(body):
                    raise RuntimeError(f"{where}: Content-Length does not match the body")
                middlewares.append(Contender(name, len(body), middleware, scope))
            comparisons.append(Comparison(endpoint, coding, raw, bare, middlewares[0], middlewares[1:]))
    return comparisons


async def run_benchmark(rounds: int, requests: int, max_seconds: float, app: ASGIApp) -> list[Comparison]:
    deadline = time.monotonic() + max_seconds
    comparisons = await verified_comparisons(app)
    for contender in (contender for comparison in comparisons for contender in comparison.contenders):
        await contender.run(max(1, requests // 10))  # warm-up: caches, lazily built compressors
    await run_rounds([comparison.contenders for comparison in comparisons], rounds, requests, deadline)
    return comparisons


def report(comparisons: list[Comparison], requests: int, command: str, revision: str) -> str:
    lines = report_heading("Compression middleware benchmark", command, revision, PACKAGES)
    lines += [
        f"- Rounds: {len(comparisons[0].raw.samples)}, each of {requests} requests per contender\n"
        "- µs/request: CPU time of this process (time the scheduler gives other processes is not counted), "
        "median and minimum over the rounds of each round's mean per request",
        "- overhead µs: contender µs - bare app µs. The two ratio columns are medians over the rounds of that round's "
        "ratio, its contenders having run back to back, which cancels most of the shared machine's drift\n",
    ]
    verdicts: list[str] = []
    for comparison in comparisons:
        bare = comparison.bare
        lines += [
            f"### {comparison.endpoint}: {ENDPOINTS[comparison.endpoint]} ({bare.output_size} bytes), "
            f"{comparison.coding} {CODINGS[comparison.coding]}\n",
            "| contender | µs/request | min µs | bytes | overhead µs | overhead / raw call | µs / slipstream µs |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for contender in comparison.contenders:
            median_us = statistics.median(contender.samples)
            cells = [contender.name, f"{median_us:.1f}", f"{min(contender.samples):.1f}", str(contender.output_size)]
            if contender is not comparison.raw and contender is not bare:
                cells.append(f"{median_us - statistics.median(bare.samples):.1f}")
                cells.append(f"{comparison.overhead_ratio(contender):.3f}")
                cells.append(f"{comparison.speed_ratio(contender):.3f}")
            lines.append(table_row(cells + [""] * (7 - len(cells))))
        lines.append("")
        verdicts += target_verdicts(comparison)
    return "\n".join([*lines, "### Targets\n", *verdicts, ""])


def target_verdicts(comparison: Comparison) -> list[str]:
    case, slipstream, verdicts = f"- {comparison.endpoint} {comparison.coding}:", comparison.slipstream, []
    if comparison.endpoint == OVERHEAD_TARGET_ENDPOINT:
        ratio = comparison.overhead_ratio(slipstream)
        met = verdict(ratio <= OVERHEAD_TARGET)
        verdicts.append(f"{case} slipstream overhead / raw call {ratio:.3f} (target ≤ {OVERHEAD_TARGET}): {met}")
    for peer in comparison.peers:
        ratio = comparison.speed_ratio(peer)
        slower_rounds = sum(p > s for p, s in zip(peer.samples, slipstream.samples, strict=True))
        met = verdict(ratio > 1 and peer.output_size >= slipstream.output_size)
        verdicts.append(
            f"{case} {peer.name} {ratio:.3f}x slipstream's µs (slower in {slower_rounds} of {len(peer.samples)} "
            f"rounds), {peer.output_size} vs {slipstream.output_size} bytes; peer slower at ≥ size: {met}"
        )
    return verdicts


def main() -> None:
    options = BenchmarkOptions.from_command_line(__doc__, rounds=61, requests=150)
    revision, rng = source_revision(), random.Random(20240611)
    app = build_app(make_json_document(rng), make_html_page(rng))
    comparisons = asyncio.run(run_benchmark(options.rounds, options.requests, options.max_seconds, app))
    text = report(comparisons, options.requests, options.command, revision)
    print(text)
    write_section(options.output, "bench_compression", text)


if __name__ == "__main__":
    main()
