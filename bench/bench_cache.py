"""Response cache benchmark: slipstream's cache hits against the bare app, fastapi-cache2 and an uncached peer stack.

    python bench/bench_cache.py [--rounds N] [--requests N] [--max-seconds S] [--output bench/RESULTS.md]

Each ASGI app is called directly (no HTTP client). For each endpoint and Accept-Encoding, every round runs N requests
through each contender back to back (round-robin, rotated), as bench_compression.py does; then stampedes of concurrent
requests for one cold key. Needs redis-server on PATH (run on a free loopback port in a temp dir, stopped at the end)
and opentelemetry-sdk. Replaces only its own section of the output file.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator

import redis
from starlette.types import ASGIApp

from cache_contenders import (
    BROTLI_QUALITY,
    ENDPOINTS,
    STAMPEDE_SLEEP,
    Comparison,
    Contender,
    Row,
    make_html_page,
    make_rows,
    prepare,
    slipstream_stack,
)
from harness import (
    BenchmarkOptions,
    decoded_body,
    fetch,
    median_ratio,
    report_heading,
    request_scope,
    run_rounds,
    source_revision,
    table_row,
    verdict,
    write_section,
)

HIT_TARGET, PEER_TARGET = 3.0, 15.0  # bare app µs / L1 hit µs on the JSON; peer stack µs / L1 hit µs on the page
STAMPEDE_REQUESTS, STAMPEDE_TIMEOUT = 100, 30.0
PACKAGES = "slipstream starlette fastapi fastapi-cache2 brotli-asgi starlette-exporter redis brotli".split()
PACKAGES += ["opentelemetry-instrumentation-asgi", "opentelemetry-sdk"]
Commands = tuple[Counter[str], Counter[str]]
Stampede = tuple[str, bool]


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


def command_counts(client: redis.Redis) -> Counter[str]:
    """Calls per command from INFO commandstats, leaving out the commands this benchmark sends itself."""
    stats = client.info("commandstats").items()
    own = ("info", "slowlog", "config")
    return Counter({name[8:]: int(stat["calls"]) for name, stat in stats if name[8:].split("|")[0] not in own})


async def commands_per_l2_hit(contender: Contender, client: redis.Redis, hits: int) -> Commands:
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


async def stampede(name: str, apps: list[ASGIApp], calls: Counter[str], original: bytes) -> Stampede:
    """STAMPEDE_REQUESTS concurrent requests for one cold key, spread over ``apps``: a table row, and whether the
    endpoint ran exactly once."""
    scope = request_scope("/slow", "br", query=b"stampede=" + name.encode().hex().encode())  # a cold key each
    started = time.perf_counter()
    requests = (fetch(apps[index % len(apps)], scope) for index in range(STAMPEDE_REQUESTS))
    answers = await asyncio.wait_for(asyncio.gather(*requests), STAMPEDE_TIMEOUT)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if any(status != 200 or decoded_body(headers, body) != original for status, headers, body in answers):
        raise RuntimeError(f"stampede on {name}: a response is not a 200 with the original body")
    outcomes = Counter(headers.get(b"x-cache", b"none").decode() for _, headers, _ in answers)
    x_cache = ", ".join(f"{outcome} {count}" for outcome, count in sorted(outcomes.items()))
    row = table_row([name, str(STAMPEDE_REQUESTS), str(calls["/slow"]), x_cache, f"{elapsed_ms:.0f}"])
    return row, calls["/slow"] == 1


async def stampedes(rows: list[Row], page: str, redis_url: str, original: bytes) -> list[Stampede]:
    """A stampede on slipstream with L1 alone, with Redis L2, and on four app instances sharing that Redis."""
    l1_only, with_redis, shared = Counter[str](), Counter[str](), Counter[str]()
    l1_app, _ = slipstream_stack(rows, page, l1_only)
    redis_app, redis_cache = slipstream_stack(rows, page, with_redis, redis_url)
    instances = [slipstream_stack(rows, page, shared, redis_url) for _ in range(4)]
    results = [
        await stampede("slipstream, L1 only", [l1_app], l1_only, original),
        await stampede("slipstream + Redis L2", [redis_app], with_redis, original),
        await stampede("slipstream + Redis L2, 4 app instances", [app for app, _ in instances], shared, original),
    ]
    for response_cache in [redis_cache, *(response_cache for _, response_cache in instances)]:
        await response_cache.close()
    return results


async def run_benchmark(options: BenchmarkOptions, rows: list[Row], page: str, client: redis.Redis) -> str:
    url = f"redis://127.0.0.1:{client.connection_pool.connection_kwargs['port']}/0"
    comparisons, l2_cache = await prepare(rows, page, url)
    commands = await commands_per_l2_hit(comparisons[0].contenders[3], client, options.requests)
    cache_hits = [contender for comparison in comparisons for contender in comparison.contenders[1:-1]]
    endpoint_runs = {id(contender.calls): (contender.calls, contender.calls.total()) for contender in cache_hits}
    gc.collect()
    gc.freeze()  # setup's objects out of the collector's way, so that each collect between contenders costs little
    deadline = time.monotonic() + options.max_seconds
    await run_rounds([comparison.contenders for comparison in comparisons], options.rounds, options.requests, deadline)
    if any(calls.total() != before for calls, before in endpoint_runs.values()):
        raise RuntimeError("a cache contender ran its endpoint during the timed rounds: not every request was a hit")
    stampede_results = await stampedes(rows, page, url, comparisons[0].original)
    await l2_cache.close()
    return report(comparisons, commands, stampede_results, options)


def report(
    comparisons: list[Comparison], commands: Commands, stampedes: list[Stampede], options: BenchmarkOptions
) -> str:
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=False).stdout
    title, revision = "Response cache benchmark", source_revision()
    lines = report_heading(title, options.command, revision, PACKAGES, redis_version.split(" sha")[0])
    lines += [
        f"- Rounds: {len(comparisons[0].contenders[0].cpu)}, each of {options.requests} requests per contender, "
        "called in-process. Every response is sent with `Cache-Control: public, max-age=3600`",
        "- CPU µs/request: CPU time of this process, median and minimum over the rounds of each round's mean. wall µs: "
        "median elapsed time, which alone counts waiting for Redis (whose own CPU time is not counted). Ratio columns: "
        "medians over the rounds of that round's ratio, its contenders having run back to back",
        f"- Compression: brotli quality {BROTLI_QUALITY} everywhere; slipstream's gzip is level 6, brotli-asgi's gzip "
        "fallback (Starlette's GZipResponder) level 9. slipstream compresses a variant once and keeps it; "
        "fastapi-cache2 stores the endpoint's return value, which FastAPI serialises again on every hit",
        "- Contenders: *slipstream* is `install(app, Settings(..., timing_enabled=False))`: cache, compression and "
        "ETags (the whole stack with timing is in bench_telemetry.py's section). *L1 hit*: warm, in "
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
            lines.append(table_row(cells))
        lines.append("")
    ran, sent = (per_hit(counts, options.requests) for counts in commands)
    lines += [
        f"### Redis per L2 hit, over {options.requests} hits\n",
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


def main() -> None:
    options = BenchmarkOptions.from_command_line(__doc__, rounds=41, requests=100)
    rng = random.Random(20240611)
    rows, page = make_rows(rng), make_html_page(rng)
    with redis_server() as client:
        text = asyncio.run(run_benchmark(options, rows, page, client))
    print(text)
    write_section(options.output, "bench_cache", text)


if __name__ == "__main__":
    main()
