"""Outbound-call benchmark: what slipstream's ``instrument_httpx`` adds to one call of an httpx.AsyncClient, against
the bare client and OpenTelemetry's httpx instrumentation; and what reading an LLM answer's token usage adds.

    python bench/bench_outbound.py [--rounds N] [--requests N] [--max-seconds S] [--output bench/RESULTS.md]

``--requests`` is the number of calls per contender per round. Each client calls a real uvicorn serving
bench/outbound_server.py on a loopback port, in a process of its own: the figures are this process's CPU time, the
client's side of the call only. Every round runs N calls through each contender back to back (round-robin, rotated),
as the other benchmarks do; overheads are contender minus the bare client within a round, and ratios are medians over
rounds of that round's ratio. Replaces only its own section of the output file.
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import time
from collections.abc import Sequence

from harness import BenchmarkOptions, report_heading, run_rounds, source_revision, table_row, write_section
from outbound_contenders import (
    BARE,
    CHAT_JSON,
    CHAT_STREAM,
    ITEM,
    LLM_HOST,
    OTEL,
    OTEL_METER,
    PRICES,
    SLIPSTREAM,
    SLIPSTREAM_REQUEST,
    SLIPSTREAM_SPAN,
    CallContender,
    contenders,
)
from telemetry_uvicorn import running_servers

PACKAGES = "slipstream httpx uvicorn prometheus-client opentelemetry-sdk opentelemetry-instrumentation-httpx".split()


async def prepare(base_url: str, calls: int) -> list[list[CallContender]]:
    """A group of contenders per workload, each checked against the bare client's body."""
    groups = [
        contenders(ITEM, base_url, meter=True),
        *(contenders(w, base_url, False) for w in (CHAT_JSON, CHAT_STREAM)),
    ]
    for group in groups:
        bare = group[0]
        expected, _ = await bare.workload(bare.client, bare.url, 1)
        for contender in group:
            await contender.verify(calls, expected)
    return groups


async def run_benchmark(options: BenchmarkOptions) -> str:
    with running_servers({"api": "outbound_server:create_app"}) as servers:
        groups = await prepare(f"http://{LLM_HOST}:{servers['api'].port}", options.requests)
        load_before = os.getloadavg()[0]
        gc.collect()
        gc.freeze()  # setup's objects out of the collector's way, so that each collect between contenders costs little
        try:
            await run_rounds(groups, options.rounds, options.requests, time.monotonic() + options.max_seconds)
        finally:
            for group in groups:
                for contender in group:
                    await contender.client.aclose()
                    if contender.spans is not None:
                        contender.spans.provider.shutdown()
    return report(groups, options, (load_before, os.getloadavg()[0]))


def overheads(contender: CallContender, bare: CallContender) -> list[float]:
    """The contender's CPU µs per call minus the bare client's, round by round."""
    return [c - b for c, b in zip(contender.cpu, bare.cpu, strict=True)]


def overhead_ratios(ours: CallContender, theirs: CallContender, bare: CallContender) -> list[float]:
    return [o / t for o, t in zip(overheads(ours, bare), overheads(theirs, bare), strict=True)]


def report(groups: Sequence[Sequence[CallContender]], options: BenchmarkOptions, load: tuple[float, float]) -> str:
    rounds = len(groups[0][0].cpu)
    lines = report_heading("Outbound-call benchmark", options.command, source_revision(), PACKAGES)
    lines += [
        f"- Rounds: {rounds}, each of {options.requests} calls per contender, one workload after the other; load "
        f"average (1 minute) {load[0]:.1f} as the rounds began, {load[1]:.1f} as they ended: the CPUs were shared "
        "with other work, which the interleaved rounds and per-round differences are there to absorb",
        "- Server: uvicorn (h11, asyncio loop) serving bench/outbound_server.py on a free port of 127.0.0.1, in a "
        "process of its own: its CPU is not counted. Each contender is an `httpx.AsyncClient(timeout=10)` of its own "
        "(keep-alive: one connection, reused), calling `await client.get(url)` / `client.post(url, content=..., "
        "headers=...)` and reading the body, or `client.stream('POST', ...)` and `aiter_bytes()` to the end",
        "- CPU µs/call: CPU time of this process (the span processors' threads included), median and minimum over "
        "the rounds of each round's mean; wall µs: median elapsed time (the server's time included). overhead µs: "
        "median over the rounds of the contender's µs minus the bare client's in that round. Ratios: medians over "
        "the rounds of that round's ratio",
        f"- *{SLIPSTREAM}*: `instrument_httpx(client, instrumentation=Instrumentation(Settings(), registry=fresh, "
        f"telemetry=Telemetry(enabled=False)))`; *{SLIPSTREAM_SPAN}*: `telemetry=Telemetry(provider)`; *inside a "
        "request record*: metrics only, the round's calls all inside one `open_record(RequestRecord(...))` (the "
        "request's `api` operation: call count and time), opened afresh each round. For the LLM calls, "
        f"`Settings(gen_ai_hosts=('{LLM_HOST}',), gen_ai_prices={PRICES!r})`: the server's address is an LLM API's, "
        "so token usage, operation duration and cost are recorded too (and put on the span)",
        f"- *{OTEL}*: `HTTPXClientInstrumentor.instrument_client(client, tracer_provider=..., meter_provider="
        "NoOpMeterProvider())`: one CLIENT span per call, its duration metric dropped, which is what it does by "
        f"default (the global meter provider is the API's no-op one until an SDK one is set); *{OTEL_METER}*: "
        "`meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()])`: spans and its duration histogram "
        "(`http.client.duration`, the old conventions, its default), aggregated and never exported, as Prometheus "
        "metrics are until scraped. Its span ends when the response headers are in, before the body is read; "
        "slipstream's at the end of the body, so it does nothing per streamed chunk. It reads no token usage",
        "- Spans: every contender that makes spans has its own SDK `TracerProvider(sampler=ALWAYS_ON)` with a "
        "`BatchSpanProcessor` (default sizes) over an exporter that counts the spans and discards them; the calls "
        "have no parent span. Before timing, each contender was checked to answer the bare client's body, to count "
        "every call in its duration histogram (slipstream's LLM calls: and their input tokens; inside a request: "
        "in the record's `api` operation) and to export one span per call where shown",
    ]
    for group in groups:
        lines += [f"\n### {group[0].workload.label}\n", *table(group)]
    return "\n".join([*lines, "\n### Ratios\n", *ratios(groups), ""])


def table(group: Sequence[CallContender]) -> list[str]:
    bare = group[0]
    lines = [
        "| contender | CPU µs/call | min µs | wall µs | overhead µs | spans/call | chunks/call |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for contender in group:
        cells = [contender.name, f"{statistics.median(contender.cpu):.1f}", f"{min(contender.cpu):.1f}"]
        cells.append(f"{statistics.median(contender.wall):.1f}")
        cells.append(f"{statistics.median(overheads(contender, bare)):.1f}" if contender is not bare else "")
        cells.append(f"{contender.spans_per_call:g}" if contender.spans is not None else "")
        cells.append(f"{contender.chunks_per_call:.1f}")
        lines.append(table_row(cells))
    return lines


def ratios(groups: Sequence[Sequence[CallContender]]) -> list[str]:
    """Slipstream's overhead as a share of OpenTelemetry's, on each workload; and what the span and the LLM reading
    cost on their own. No target: the issue asks for the figures."""
    lines = []
    for group in groups:
        by_name = {contender.name: contender for contender in group}
        bare, rounds = by_name[BARE], len(group[0].cpu)
        workload = group[0].workload.label.partition(":")[0]
        pairs = [(SLIPSTREAM_SPAN, OTEL), (SLIPSTREAM, OTEL), (SLIPSTREAM_SPAN, OTEL_METER)]
        for ours, theirs in (pair for pair in pairs if pair[1] in by_name):
            found = overhead_ratios(by_name[ours], by_name[theirs], bare)
            below = sum(r < 1 for r in found)
            lines.append(
                f"- {workload}: {ours} overhead / {theirs} overhead: {statistics.median(found):.3f} "
                f"(below 1 in {below} of {rounds} rounds)"
            )
        plain, span = (statistics.median(overheads(by_name[name], bare)) for name in (SLIPSTREAM, SLIPSTREAM_SPAN))
        also = f"the span adds {span - plain:.1f} µs to slipstream's overhead"
        if SLIPSTREAM_REQUEST in by_name:
            record = statistics.median(overheads(by_name[SLIPSTREAM_REQUEST], bare))
            also += f", the request record {record - plain:.1f} µs"
        lines.append(f"- {workload}, for information: {also}")
    return lines


def main() -> None:
    options = BenchmarkOptions.from_command_line(__doc__, rounds=41, requests=100)
    text = asyncio.run(run_benchmark(options))
    print(text)
    write_section(options.output, "bench_outbound", text)


if __name__ == "__main__":
    main()
