"""Compression middleware benchmark: slipstream against its peers, in-process, at equal compression levels.

Each ASGI app is called directly (no HTTP client, no network). Every round runs N requests per contender, contenders
interleaved round-robin so that noise on a shared machine hits them alike; the median over rounds is reported, next to
the raw library call on the same bytes at the same level (the floor).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import gzip
import json
import os
import platform
import random
import shlex
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

import brotli
import zstandard
from brotli_asgi import BrotliMiddleware
from starlette.applications import Starlette
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Scope
from starlette_compress import CompressMiddleware

from slipstream import CompressionMiddleware

GZIP_LEVEL, BROTLI_QUALITY, ZSTD_LEVEL, MINIMUM_SIZE = 6, 4, 3, 500
CODINGS = {"gzip": f"level {GZIP_LEVEL}", "br": f"quality {BROTLI_QUALITY}", "zstd": f"level {ZSTD_LEVEL}"}
ENDPOINTS = {"/data.json": "~2 KB JSON", "/page.html": "~60 KB HTML"}
OVERHEAD_TARGET, OVERHEAD_TARGET_ENDPOINT = 1.10, "/page.html"  # slipstream overhead / raw library call
PACKAGES = ("slipstream", "starlette", "brotli-asgi", "starlette-compress", "brotli", "zstandard", "anyio")
BARE, SLIPSTREAM = "bare app (no middleware)", "slipstream"
WORDS = """latency cache header stream token browser server client request response payload encoding window quality
level buffer socket route handler session cookie profile account invoice order basket product review rating shipping
warehouse delivery refund discount coupon search filter sort page archive category author comment reply thread notice
setting privacy security password release changelog roadmap feature migration dashboard metric""".split()
ZSTD_COMPRESSOR = zstandard.ZstdCompressor(level=ZSTD_LEVEL)


def gzip_compress(body: bytes) -> bytes:
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    return compressor.compress(body) + compressor.flush()


RAW_CALLS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("raw zlib.compressobj(level, DEFLATED, 31) (floor)", gzip_compress),
    "br": ("raw brotli.compress (floor)", lambda body: brotli.compress(body, quality=BROTLI_QUALITY)),
    "zstd": ("raw ZstdCompressor(level).compress (floor)", ZSTD_COMPRESSOR.compress),
}
DECOMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.decompress,
    "br": brotli.decompress,
    "zstd": lambda body: zstandard.ZstdDecompressor().decompressobj().decompress(body),
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


def request_scope(path: str, coding: str | None) -> Scope:
    headers = [(b"host", b"bench.local"), (b"user-agent", b"bench/1.0"), (b"accept", b"*/*")]
    headers += [(b"accept-encoding", coding.encode())] if coding else []
    request = {"method": "GET", "path": path, "raw_path": path.encode(), "query_string": b"", "headers": headers}
    connection = {"client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "scheme": "http", "root_path": ""}
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", **request, **connection}


async def receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def discard(message: Message) -> None:
    return None


async def fetch(app: ASGIApp, scope: Scope) -> tuple[dict[bytes, bytes], bytes]:
    messages: list[Message] = []

    async def collect(message: Message) -> None:
        messages.append(message)

    await app(dict(scope), receive, collect)
    if messages[0]["type"] != "http.response.start" or messages[0]["status"] != 200:
        raise RuntimeError(f"unexpected response start {messages[0]!r}")
    return dict(messages[0]["headers"]), b"".join(message.get("body", b"") for message in messages[1:])


@dataclass(eq=False)
class Contender:
    """One timed thing: a middleware (or the bare app, or the raw library call) on one endpoint and coding."""

    endpoint: str
    coding: str | None
    name: str
    output_size: int
    app: ASGIApp | None = None
    scope: Scope = field(default_factory=dict)
    raw_call: Callable[[], object] | None = None
    samples: list[float] = field(default_factory=list)

    @property
    def median_us(self) -> float:
        return statistics.median(self.samples)

    async def run(self, requests: int) -> None:
        if self.raw_call is not None:
            for _ in range(requests):
                self.raw_call()
        elif self.app is not None:
            for _ in range(requests):
                await self.app(dict(self.scope), receive, discard)


async def verified_contenders(app: ASGIApp) -> list[Contender]:
    """Every contender, after checking it sends the coding asked for and that its body decodes to the original."""
    contenders: list[Contender] = []
    for endpoint in ENDPOINTS:
        _, original = await fetch(app, request_scope(endpoint, None))
        contenders.append(Contender(endpoint, None, BARE, len(original), app, request_scope(endpoint, None)))
        for coding, (raw_name, compress) in RAW_CALLS.items():
            raw_call = functools.partial(compress, original)
            contenders.append(Contender(endpoint, coding, raw_name, len(raw_call()), raw_call=raw_call))
            scope = request_scope(endpoint, coding)
            for name, middleware in middleware_contenders(app, coding).items():
                headers, body = await fetch(middleware, scope)
                where = f"{name} on {endpoint} with Accept-Encoding: {coding}"
                if headers.get(b"content-encoding") != coding.encode():
                    raise RuntimeError(f"{where}: Content-Encoding is {headers.get(b'content-encoding')!r}")
                if DECOMPRESS[coding](body) != original:
                    raise RuntimeError(f"{where}: the body does not decode to the original bytes")
                if int(headers.get(b"content-length", len(body))) != len(body):
                    raise RuntimeError(f"{where}: Content-Length does not match the body")
                contenders.append(Contender(endpoint, coding, name, len(body), middleware, scope))
    return contenders


async def run_benchmark(rounds: int, requests: int, app: ASGIApp) -> list[Contender]:
    contenders = await verified_contenders(app)
    for contender in contenders:
        await contender.run(max(1, requests // 10))  # warm-up: caches, lazily built compressors
    for round_index in range(rounds):
        shift = round_index % len(contenders)  # rotate the order too, so no contender always runs first
        for contender in contenders[shift:] + contenders[:shift]:
            gc.collect()  # nobody pays for the previous contender's garbage
            started = time.perf_counter_ns()
            await contender.run(requests)
            contender.samples.append((time.perf_counter_ns() - started) / requests / 1000)
        print(f"round {round_index + 1}/{rounds} done", file=sys.stderr)
    return contenders


def report(contenders: list[Contender], command: str) -> str:
    lines = [
        f"# Compression middleware benchmark\n\nCommand: `{command}`\n",
        f"- Date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
        f"- Python {platform.python_version()} on {platform.platform()}, {os.cpu_count()} CPUs",
        f"- Packages: {', '.join(f'{name} {version(name)}' for name in PACKAGES)}",
        "- µs/request: median over the rounds of the mean per request; spread: (max - min) / median over the rounds",
        "- overhead µs: contender µs - bare app µs; overhead / raw: that overhead divided by the raw library call µs\n",
    ]
    verdicts: list[str] = []
    for endpoint, description in ENDPOINTS.items():
        bare = next(c for c in contenders if c.endpoint == endpoint and c.coding is None)
        for coding, level in CODINGS.items():
            # In the order verified_contenders built them: the raw call, slipstream, then its peers.
            raw, slipstream, *peers = [c for c in contenders if c.endpoint == endpoint and c.coding == coding]
            lines += [
                f"## {endpoint}: {description} ({bare.output_size} bytes), {coding} {level}\n",
                "| contender | µs/request | spread | bytes | overhead µs | overhead / raw | µs / slipstream µs |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            ]
            for contender in [raw, bare, slipstream, *peers]:
                overhead = contender.median_us - bare.median_us
                spread = (max(contender.samples) - min(contender.samples)) / contender.median_us
                cells = [contender.name, f"{contender.median_us:.1f}", f"{spread:.0%}", str(contender.output_size)]
                if contender not in (raw, bare):
                    cells += [f"{overhead:.1f}", f"{overhead / raw.median_us:.2f}"]
                    cells += [f"{contender.median_us / slipstream.median_us:.2f}"]
                lines.append("| " + " | ".join(cells + [""] * (7 - len(cells))) + " |")
            lines.append("")
            ratio, case = (slipstream.median_us - bare.median_us) / raw.median_us, f"- {endpoint} {coding}:"
            if endpoint == OVERHEAD_TARGET_ENDPOINT:
                met = "met" if ratio <= OVERHEAD_TARGET else "NOT met"
                verdicts.append(f"{case} slipstream overhead / raw call {ratio:.2f} (≤ {OVERHEAD_TARGET}): {met}")
            fastest, smallest = slipstream.median_us, slipstream.output_size
            winners = [c.name for c in peers if c.median_us <= fastest or c.output_size < smallest]
            outcome = f"NOT met, as fast or smaller: {', '.join(winners)}" if winners else "met"
            verdicts.append(f"{case} every peer slower, none smaller than slipstream: {outcome}")
    return "\n".join([*lines, "## Targets\n", *verdicts, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7, help="rounds; the median over them is reported")
    parser.add_argument("--requests", type=int, default=1500, help="requests per contender per round")
    parser.add_argument("--output", type=Path, default=Path("bench/RESULTS.md"), help="Markdown file to write")
    args = parser.parse_args()
    if args.rounds < 1 or args.requests < 1:
        parser.error("--rounds and --requests must be at least 1")
    rng = random.Random(20240611)
    app = build_app(make_json_document(rng), make_html_page(rng))
    contenders = asyncio.run(run_benchmark(args.rounds, args.requests, app))
    interpreter = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else sys.executable
    text = report(contenders, shlex.join([interpreter, *sys.argv]))
    print(text)
    args.output.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
