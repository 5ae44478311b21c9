"""Response cache benchmark: slipstream's cache hits against the bare app, fastapi-cache2 and an uncached peer stack.

    python bench/bench_cache.py [--rounds N] [--requests N] [--max-seconds S] [--output bench/RESULTS.md]

Each ASGI app is called directly (no HTTP client). For each endpoint and Accept-Encoding, every round runs N requests
through each contender back to back (round-robin, rotated), as bench_compression.py does; then stampedes of concurrent
requests for one cold key. Needs redis-server on PATH (run on a free loopback port in a temp dir, stopped at the end)
and opentelemetry-sdk. Replaces only its own section of the output file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import gzip
import os
import platform
import random
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import brotli
import redis
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
from starlette.types import ASGIApp, Message, Scope
from starlette_exporter import PrometheusMiddleware

import slipstream

CACHE_HEADERS = {"Cache-Control": "public, max-age=3600"}
ENDPOINTS = {"/data.json": "~2 KB JSON built on every call", "/page.html": "~60 KB HTML"}
CODINGS, BROTLI_QUALITY = ("br", "gzip"), 4
HIT_TARGET, PEER_TARGET = 3.0, 15.0  # bare app µs / L1 hit µs on the JSON; peer stack µs / L1 hit µs on the page
STAMPEDE_REQUESTS, STAMPEDE_SLEEP, STAMPEDE_TIMEOUT = 100, 0.02, 30.0
PACKAGES = "slipstream starlette fastapi fastapi-cache2 brotli-asgi starlette-exporter redis brotli".split()
PACKAGES += ["opentelemetry-instrumentation-asgi", "opentelemetry-sdk"]
DECODE: dict[bytes, Callable[[bytes], bytes]] = {b"br": brotli.decompress, b"gzip": gzip.decompress, b"": bytes}
WORDS = """latency cache header stream token browser server client request response payload encoding window quality
level buffer socket route handler session cookie profile account invoice order basket product review rating shipping
warehouse delivery refund discount coupon search filter sort page archive category author comment""".split()
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
        words = [" ".join(rng.choices(WORDS, k=rng.randint(6, 16))).capitalize() for _ in range(rng.randint(2, 8))]
        tags = "".join(f'<li><a href="/tags/{tag}">#{tag}</a></li>' for tag in rng.sample(WORDS, rng.randint(2, 5)))
        paragraphs = "".join(f"<p>{sentence}.</p>\n" for sentence in words[1:])
        title = f'<h2><a href="/posts/{"-".join(rng.sample(WORDS, 3))}">{words[0]}</a></h2>'
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
    """The full stack, as ``install`` sets it up: cache (L1, and Redis L2 given a URL), compression, ETags."""
    app = Starlette(routes=routes(rows, page, calls))
    cache = slipstream.install(app, slipstream.Settings(cache_redis_url=redis_url)).cache
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


def request_scope(path: str, coding: str, query: bytes = b"", extra: list[tuple[bytes, bytes]] | None = None) -> Scope:
    headers = [(b"host", b"bench.local"), (b"user-agent", b"bench/1.0"), (b"accept", b"*/*")]
    headers += [(b"accept-encoding", coding.encode()), *(extra or [])]
    request = {"method": "GET", "path": path, "raw_path": path.encode(), "query_string": query, "headers": headers}
    connection = {"client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "scheme": "http", "root_path": ""}
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", **request, **connection}


async def receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def discard(message: Message) -> None:
    return None


async def fetch(app: ASGIApp, scope: Scope) -> tuple[int, dict[bytes, bytes], bytes]:
    messages: list[Message] = []

    async def collect(message: Message) -> None:
        messages.append(message)

    await app(dict(scope), receive, collect)
    return messages[0]["status"], dict(messages[0]["headers"]), b"".join(m.get("body", b"") for m in messages[1:])


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

    async def verify(self, original: bytes) -> None:
        if self.before_each is not None:
            self.before_each()
        status, headers, body = await fetch(self.app, self.scope)
        seen = {name: headers.get(name, b"") for name in self.expect}
        decodes = status != 200 or DECODE[headers.get(b"content-encoding", b"")](body) == original
        if status != self.status or seen != self.expect or not decodes:
            raise RuntimeError(f"{self.name} {self.scope['path']}: {status} {seen}, decodes to the original: {decodes}")
        self.output_size = len(body)


@dataclass
class Comparison:
    """One endpoint and coding. ``contenders``: the bare app, the warm L1 hit, then the others."""

    endpoint: str
    coding: str
    original: bytes
    contenders: list[Contender]


def median_ratio(numerators: list[float], denominators: list[float]) -> float:
    """Median over rounds of each round's ratio: its two contenders ran moments apart."""
    return statistics.median(n / d for n, d in zip(numerators, denominators, strict=True))


@contextlib.contextmanager
def redis_server() -> Iterator[redis.Redis]:
    """A throwaway redis-server on a free loopback port: yields a client of it, stops it on exit."""
    if (binary := shutil.which("redis-server")) is None:
        raise SystemExit("redis-server is not on PATH; install it (apt-get install redis-server) to run this benchmark")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as directory:
        arguments = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory]
        server = subprocess.Popen([binary, *arguments], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=port)
        try:
            for _ in range(100):  # 5 s at most
                with contextlib.suppress(redis.ConnectionError):
                    if client.ping():
                        break
                time.sleep(0.05)
            else:
                raise SystemExit(f"redis-server did not answer on 127.0.0.1:{port}")
            yield client
        finally:
            client.close()
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)


async def prepare(rows: list[Row], page: str, redis_url: str) -> tuple[list[Comparison], slipstream.ResponseCache]:
    """Every comparison, its caches warm and every contender checked; also the cache holding a Redis connection."""
    bare, l1, l2, fastapi_cache2, peers = (Counter[str]() for _ in range(5))
    bare_app, fastapi_app = Starlette(routes=routes(rows, page, bare)), fastapi_cache2_app(rows, page, fastapi_cache2)
    (l1_app, _), (l2_app, l2_cache) = slipstream_stack(rows, page, l1), slipstream_stack(rows, page, l2, redis_url)
    fastapi_brotli, peer_app = BrotliMiddleware(fastapi_app, quality=BROTLI_QUALITY), peer_stack(rows, page, peers)
    comparisons = []
    for endpoint in ENDPOINTS:
        _, _, original = await fetch(bare_app, request_scope(endpoint, "identity"))
        for coding in CODINGS:
            scope, encoded = request_scope(endpoint, coding), {b"content-encoding": coding.encode()}
            identity, hit = {b"content-encoding": b""}, {b"x-cache": b"HIT", **encoded}
            fastapi_hit, fastapi_encoded = (
                {b"x-fastapi-cache": b"HIT", **identity},
                {b"x-fastapi-cache": b"HIT", **encoded},
            )
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
        etag = (await fetch(l1_app, comparison.contenders[1].scope))[1][b"etag"]
        scope = request_scope(comparison.endpoint, comparison.coding, extra=[(b"if-none-match", etag)])
        name = "slipstream L1 hit, If-None-Match: 304"
        comparison.contenders.insert(2, Contender(name, l1_app, scope, l1, {b"x-cache": b"HIT"}, status=304))
        for contender in comparison.contenders:
            await contender.verify(comparison.original)
    return comparisons, l2_cache


def command_counts(client: redis.Redis) -> Counter[str]:
    """Calls per command from INFO commandstats, leaving out the commands this benchmark sends itself."""
    stats = client.info("commandstats").items()
    own = ("info", "slowlog", "config")
    return Counter({name[8:]: int(stat["calls"]) for name, stat in stats if name[8:].split("|")[0] not in own})


async def commands_per_l2_hit(
    contender: Contender, client: redis.Redis, hits: int
) -> tuple[Counter[str], Counter[str]]:
    """Commands run per L2 hit (INFO commandstats delta) and those slipstream sent: the SLOWLOG at a 0 µs threshold
    logs every command, and gives those that a Lua script ran the fake client address "?:0"."""
    client.config_set("slowlog-max-len", 10 * hits)
    client.config_set("slowlog-log-slower-than", 0)
    before = command_counts(client)
    client.slowlog_reset()
    await contender.run(hits)
    log = client.slowlog_get(-1)
    ran = command_counts(client) - before
    client.config_set("slowlog-log-slower-than", 10_000)
    sent = Counter(entry["command"].split()[0].decode().lower() for entry in log if entry["client_address"] != b"?:0")
    sent -= Counter({"slowlog": len(log)})
    return ran, sent


def per_hit(counts: Counter[str], hits: int) -> str:
    return ", ".join(f"{name.upper()} {count / hits:.2f}" for name, count in sorted(counts.items())) or "none"


async def stampede(name: str, apps: list[ASGIApp], calls: Counter[str], original: bytes) -> tuple[str, bool]:
    """STAMPEDE_REQUESTS concurrent requests for one cold key, spread over ``apps``: a table row, and whether the
    endpoint ran exactly once."""
    scope = request_scope("/slow", "br", query=b"stampede=" + name.encode().hex().encode())  # a cold key each
    started = time.perf_counter()
    requests = (fetch(apps[index % len(apps)], scope) for index in range(STAMPEDE_REQUESTS))
    answers = await asyncio.wait_for(asyncio.gather(*requests), STAMPEDE_TIMEOUT)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if any(
        status != 200 or DECODE[headers[b"content-encoding"]](body) != original for status, headers, body in answers
    ):
        raise RuntimeError(f"stampede on {name}: a response is not a 200 with the original body")
    outcomes = Counter(headers.get(b"x-cache", b"none").decode() for _, headers, _ in answers)
    x_cache = ", ".join(f"{outcome} {count}" for outcome, count in sorted(outcomes.items()))
    row = f"| {name} | {STAMPEDE_REQUESTS} | {calls['/slow']} | {x_cache} | {elapsed_ms:.0f} |"
    return row, calls["/slow"] == 1


async def run_benchmark(args: argparse.Namespace, rows: list[Row], page: str, client: redis.Redis) -> str:
    url = f"redis://127.0.0.1:{client.connection_pool.connection_kwargs['port']}/0"
    comparisons, l2_cache = await prepare(rows, page, url)
    commands = await commands_per_l2_hit(comparisons[0].contenders[3], client, args.requests)
    cache_hits = [contender for comparison in comparisons for contender in comparison.contenders[1:-1]]
    endpoint_runs = {id(contender.calls): (contender.calls, contender.calls.total()) for contender in cache_hits}
    gc.collect()
    gc.freeze()  # setup's objects out of the collector's way, so that each collect below costs little
    deadline = time.monotonic() + args.max_seconds
    for round_index in range(args.rounds):
        for comparison in comparisons:
            shift = round_index % len(comparison.contenders)  # rotated so that no contender always goes first
            for contender in comparison.contenders[shift:] + comparison.contenders[:shift]:
                gc.collect()  # nobody pays for the previous contender's garbage
                cpu, wall = await contender.run(args.requests)
                contender.cpu.append(cpu)
                contender.wall.append(wall)
        print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr)
        if time.monotonic() > deadline:
            print(f"stopping after {round_index + 1} rounds: --max-seconds reached", file=sys.stderr)
            break
    if any(calls.total() != before for calls, before in endpoint_runs.values()):
        raise RuntimeError("a cache contender ran its endpoint during the timed rounds: not every request was a hit")
    l1_only, with_redis, shared = Counter[str](), Counter[str](), Counter[str]()
    (l1_app, _), (redis_app, redis_cache) = (
        slipstream_stack(rows, page, l1_only),
        slipstream_stack(rows, page, with_redis, url),
    )
    instances = [slipstream_stack(rows, page, shared, url) for _ in range(4)]
    original = comparisons[0].original
    stampedes = [
        await stampede("slipstream, L1 only", [l1_app], l1_only, original),
        await stampede("slipstream + Redis L2", [redis_app], with_redis, original),
        await stampede("slipstream + Redis L2, 4 app instances", [app for app, _ in instances], shared, original),
    ]
    for response_cache in [l2_cache, redis_cache, *(response_cache for _, response_cache in instances)]:
        await response_cache.close()
    return report(comparisons, commands, stampedes, args)


Commands = tuple[Counter[str], Counter[str]]


def report(
    comparisons: list[Comparison], commands: Commands, stampedes: list[tuple[str, bool]], args: argparse.Namespace
) -> str:
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=False).stdout
    lines = [
        f"## Response cache benchmark\n\nCommand: `{args.command}`\n",
        f"- Date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}; slipstream source: {source_revision()}",
        f"- Python {platform.python_version()} on {platform.platform()}, {os.cpu_count()} CPUs",
        f"- Packages: {', '.join(f'{name} {version(name)}' for name in PACKAGES)}; {redis_version.split(' sha')[0]}",
        f"- Rounds: {len(comparisons[0].contenders[0].cpu)}, each of {args.requests} requests per contender, called "
        "in-process. Every response is sent with `Cache-Control: public, max-age=3600`",
        "- CPU µs/request: CPU time of this process, median and minimum over the rounds of each round's mean. wall µs: "
        "median elapsed time, which alone counts waiting for Redis (whose own CPU time is not counted). Ratio columns: "
        "medians over the rounds of that round's ratio, its contenders having run back to back",
        f"- Compression: brotli quality {BROTLI_QUALITY} everywhere; slipstream's gzip is level 6, brotli-asgi's gzip "
        "fallback (Starlette's GZipResponder) level 9. slipstream compresses a variant once and keeps it; "
        "fastapi-cache2 stores the endpoint's return value, which FastAPI serialises again on every hit",
        "- Contenders: *slipstream* is `install(app, Settings(...))`: cache, compression and ETags. *L1 hit*: warm, in "
        "memory; *If-None-Match: 304*: the same with the hit's ETag. *L2 hit (Redis)*: L1 cleared before each request, "
        "outside the timed part. *fastapi-cache2 hit*: `@cache(expire=3600)`, InMemoryBackend, no compression; *+ "
        "brotli-asgi*: that app in BrotliMiddleware. *peer stack, no cache*, outermost first: OpenTelemetry ASGI "
        "middleware (SDK TracerProvider, no span processor: spans built and sampled, not exported; the API's no-op "
        "MeterProvider), starlette-exporter's PrometheusMiddleware, brotli-asgi's BrotliMiddleware\n",
    ]
    for comparison in comparisons:
        bare, hit = comparison.contenders[:2]
        lines += [
            f"### {comparison.endpoint}: {ENDPOINTS[comparison.endpoint]} ({len(comparison.original)} bytes), "
            f"Accept-Encoding: {comparison.coding}\n",
            "| contender | CPU µs/request | min µs | wall µs | bytes | bare app µs / its µs | its µs / L1 hit µs |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for c in comparison.contenders:
            cells = [c.name, f"{statistics.median(c.cpu):.1f}", f"{min(c.cpu):.1f}", f"{statistics.median(c.wall):.1f}"]
            cells += [str(c.output_size), f"{median_ratio(bare.cpu, c.cpu):.2f}", f"{median_ratio(c.cpu, hit.cpu):.2f}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    ran, sent = (per_hit(counts, args.requests) for counts in commands)
    lines += [
        f"### Redis per L2 hit, over {args.requests} hits\n",
        f"- INFO commandstats delta: {ran} (commands a Lua script runs are counted too)",
        f"- sent by slipstream (SLOWLOG entries from its connection, not from a script): {sent}\n",
        f"### Stampede: {STAMPEDE_REQUESTS} concurrent requests for one cold key, its endpoint sleeping "
        f"{STAMPEDE_SLEEP * 1000:.0f} ms\n",
        "| stack | requests | endpoint calls | X-Cache | wall ms |",
        "| --- | ---: | ---: | --- | ---: |",
        *(row for row, _ in stampedes),
        "\n### Targets\n",
    ]
    for comparison in comparisons:
        json_case = comparison.endpoint == "/data.json"
        against, target = ("the bare app", HIT_TARGET) if json_case else ("the peer stack", PEER_TARGET)
        contenders = comparison.contenders
        ratio = median_ratio(contenders[0 if json_case else -1].cpu, contenders[1].cpu)
        lines.append(
            f"- {comparison.endpoint} {comparison.coding}: warm L1 hit {ratio:.2f}x faster than {against} "
            f"(target ≥ {target:g}x): {verdict(ratio >= target)}"
        )
    lines.append(f"- L2 hit sends {sent} (target: one EVALSHA, one round trip): {verdict(sent == 'EVALSHA 1.00')}")
    for row, once in stampedes:
        lines.append(f"- stampede, {row.split(' | ')[0][2:]}: endpoint ran exactly once: {verdict(once)}")
    return "\n".join([*lines, ""])


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def source_revision() -> str:
    """The commit slipstream's source comes from, and whether src/ has uncommitted changes (read-only git calls)."""
    git = ["git", "-C", str(Path(__file__).resolve().parent.parent)]
    try:
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, check=True, text=True)
        changed = subprocess.run([*git, "diff", "--quiet", "HEAD", "--", "src"], check=False).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return f"git {commit.stdout.strip()}{', with uncommitted changes in src/' if changed else ''}"


def write_section(path: Path, name: str, text: str) -> None:
    """Replace the part of ``path`` between this script's HTML comment markers, or append it; keep the rest."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    before, found, rest = old.partition(start)
    if found and end not in rest:
        raise SystemExit(f"{path}: {start} has no {end} after it; mend the file by hand")
    before, after = (before, rest.partition(end)[2]) if found else (old.rstrip() + "\n\n" if old.strip() else "", "\n")
    path.write_text(f"{before}{start}\n{text.strip()}\n{end}{after}", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=41, help="rounds; medians over them are reported")
    parser.add_argument("--requests", type=int, default=100, help="requests per contender per round")
    parser.add_argument("--max-seconds", type=float, default=240, help="stop after the round that passes this")
    parser.add_argument("--output", type=Path, default=Path("bench/RESULTS.md"), help="Markdown file to update")
    args = parser.parse_args()
    if args.rounds < 1 or args.requests < 1:
        parser.error("--rounds and --requests must be at least 1")
    interpreter = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else sys.executable
    args.command = shlex.join([interpreter, *sys.argv])
    rng = random.Random(20240611)
    rows, page = make_rows(rng), make_html_page(rng)
    with redis_server() as client:
        text = asyncio.run(run_benchmark(args, rows, page, client))
    print(text)
    write_section(args.output, "bench_cache", text)


if __name__ == "__main__":
    main()
