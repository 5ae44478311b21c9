"""Telemetry benchmark: what slipstream's TimingMiddleware adds to a request, against the Prometheus and OpenTelemetry
middlewares people use, and slipstream's whole stack on a warm cache hit against a popular peer stack.

    python bench/bench_telemetry.py [--rounds N] [--requests N] [--max-seconds S] [--output bench/RESULTS.md]

Each ASGI app is called directly (no HTTP client). Every round runs N requests through each contender back to back
(round-robin, rotated), as the other benchmarks do; overheads are contender minus bare app within a round, and the
target ratios are medians over rounds of that round's ratio. Replaces only its own section of the output file.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Sequence

from harness import (
    BenchmarkOptions,
    report_heading,
    run_rounds,
    source_revision,
    table_row,
    verdict,
    write_section,
)
from telemetry_contenders import (
    BARE,
    FLOOR,
    ITEM_PATH,
    OTEL_ASGI,
    OTEL_NOOP_METER,
    PAGE_PATH,
    SLIPSTREAM_METRICS,
    SLIPSTREAM_SPAN,
    SLIPSTREAM_STACK,
    STARLETTE_EXPORTER,
    Checked,
    item_body,
    per_request_contenders,
    stack_contenders,
    verify,
)
from telemetry_spans import global_span_pipeline

# Issue 14's targets: overhead ratios against starlette-exporter's and the OpenTelemetry middleware's, and how many
# times faster than the peer stack a warm hit through the whole stack with a span is.
METRICS_TARGET, SPAN_TARGET, STACK_TARGET = 0.25, 0.15, 20.0
PACKAGES = "slipstream starlette starlette-exporter prometheus-fastapi-instrumentator prometheus-client".split()
PACKAGES += "opentelemetry-sdk opentelemetry-instrumentation-asgi brotli-asgi brotli".split()


def overheads(contender: Checked, bare: Checked) -> list[float]:
    """The contender's CPU µs minus the bare app's, round by round."""
    return [c - b for c, b in zip(contender.contender.cpu, bare.contender.cpu, strict=True)]


def overhead_ratio(ours: Checked, theirs: Checked, bare: Checked, bound: float) -> tuple[float, int]:
    """Median over rounds of our overhead / their overhead, and in how many rounds that ratio was at most ``bound``."""
    ratios = [o / t for o, t in zip(overheads(ours, bare), overheads(theirs, bare), strict=True)]
    return statistics.median(ratios), sum(ratio <= bound for ratio in ratios)


async def run_benchmark(options: BenchmarkOptions) -> str:
    tracing = global_span_pipeline()
    per_request = per_request_contenders()
    stacks, page = stack_contenders(tracing)
    await verify(per_request, await item_body(), options.requests)
    await verify(stacks, page, options.requests)
    hits = [item.contender.calls for item in stacks[1:3]]
    endpoint_runs = [calls.total() for calls in hits]
    gc.collect()
    gc.freeze()  # setup's objects out of the collector's way, so that each collect between contenders costs little
    deadline = time.monotonic() + options.max_seconds
    groups = [[item.contender for item in group] for group in (per_request, stacks)]
    await run_rounds(groups, options.rounds, options.requests, deadline)
    if [calls.total() for calls in hits] != endpoint_runs:
        raise RuntimeError("slipstream's stack ran its endpoint during the timed rounds: not every request was a hit")
    for item in (*per_request, *stacks):
        if item.spans is not None:
            item.spans.provider.shutdown()
    return report(per_request, stacks, options)


def contender_cells(item: Checked) -> list[str]:
    cpu, wall = item.contender.cpu, item.contender.wall
    return [item.contender.name, f"{statistics.median(cpu):.1f}", f"{min(cpu):.1f}", f"{statistics.median(wall):.1f}"]


def spans_cell(item: Checked) -> str:
    return f"{item.spans_per_request:g}" if item.spans is not None else ""


def report(per_request: Sequence[Checked], stacks: Sequence[Checked], options: BenchmarkOptions) -> str:
    bare = per_request[0]
    lines = report_heading("Telemetry benchmark", options.command, source_revision(), PACKAGES)
    lines += [
        f"- Rounds: {len(bare.contender.cpu)}, each of {options.requests} requests per contender, called in-process",
        "- CPU µs/request: CPU time of this process (the span processors' threads included), median and minimum over "
        "the rounds of each round's mean; wall µs: median elapsed time. overhead µs: median over the rounds of the "
        "contender's µs minus the bare app's in that round. Ratios: medians over the rounds of that round's ratio",
        "- Spans: every contender that makes spans has its own SDK `TracerProvider(sampler=ALWAYS_ON)` with a "
        "`BatchSpanProcessor` (default sizes) over an exporter that counts the spans and discards them. The "
        "OpenTelemetry middleware records its metrics on an SDK `MeterProvider` with an `InMemoryMetricReader` "
        "(aggregated, never exported, as Prometheus metrics are until scraped), or on the API's no-op one where named",
        "- Metrics: slipstream on a fresh `CollectorRegistry` each; starlette-exporter on the default registry (its "
        "metrics are class attributes, it takes no registry); the instrumentator as `Instrumentator(registry=fresh)"
        ".instrument(app)` on an app of its own, so inside Starlette's error middleware. Each contender was checked to "
        "count every request under the route template, and to export the spans per request shown",
        f"- *{FLOOR}*: a pure-ASGI middleware that starts the span slipstream starts (7 attributes, current during "
        "the request), then renames it, adds status and route and ends it: the SDK's own cost, for reference\n",
        f"### {ITEM_PATH}: route `/items/{{item_id}}`, JSON of {bare.contender.output_size} bytes\n",
        "| contender | CPU µs/request | min µs | wall µs | overhead µs | spans/request |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for item in per_request:
        overhead = f"{statistics.median(overheads(item, bare)):.1f}" if item is not bare else ""
        lines.append(table_row([*contender_cells(item), overhead, spans_cell(item)]))
    lines += [
        f"\n### {PAGE_PATH}: ~60 KB HTML ({stacks[0].contender.output_size} bytes), Accept-Encoding: br\n",
        f"- *{SLIPSTREAM_STACK}*: `slipstream.install(app, Settings(metrics_port=None))`, defaults otherwise: timing "
        "with Server-Timing, cache, brotli quality 4, ETags. Its span goes to the global tracer provider, a pipeline "
        "as above; *tracing off* adds `tracing_enabled=False`. *peer stack*, outermost first, as bench_cache.py's: "
        "OpenTelemetry ASGI middleware (no-op meter), starlette-exporter, brotli-asgi quality 4; its spans go to a "
        "pipeline as above (bench_cache.py's gives them to a provider without span processor)\n",
        "| contender | CPU µs/request | min µs | wall µs | bytes | spans/request | its µs / slipstream hit µs |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for item in stacks:
        ratio = speedup(item, stacks[1])
        cells = [*contender_cells(item), str(item.contender.output_size), spans_cell(item), f"{ratio:.2f}"]
        lines.append(table_row(cells))
    return "\n".join([*lines, "\n### Targets\n", *targets(per_request, stacks), ""])


def speedup(slower: Checked, faster: Checked) -> float:
    """Median over rounds of the slower one's µs / the faster one's."""
    return statistics.median(s / f for s, f in zip(slower.contender.cpu, faster.contender.cpu, strict=True))


def targets(per_request: Sequence[Checked], stacks: Sequence[Checked]) -> list[str]:
    by_name = {item.contender.name: item for item in per_request}
    bare, rounds = by_name[BARE], len(by_name[BARE].contender.cpu)
    lines = []
    comparisons = [
        (SLIPSTREAM_METRICS, STARLETTE_EXPORTER, METRICS_TARGET),
        (SLIPSTREAM_SPAN, OTEL_ASGI, SPAN_TARGET),
        (SLIPSTREAM_SPAN, OTEL_NOOP_METER, None),
    ]
    for ours, theirs, target in comparisons:
        bound = target or SPAN_TARGET
        ratio, within = overhead_ratio(by_name[ours], by_name[theirs], bare, bound)
        against = f"target ≤ {target:.3g}: {verdict(ratio <= target)}" if target else "for information"
        lines.append(
            f"- {ours} overhead / {theirs} overhead: {ratio:.3f}, at most {bound:.3g} in {within} of {rounds} "
            f"rounds ({against})"
        )
    span, metrics, floor = (
        statistics.median(overheads(by_name[name], bare)) for name in (SLIPSTREAM_SPAN, SLIPSTREAM_METRICS, FLOOR)
    )
    otel = statistics.median(overheads(by_name[OTEL_ASGI], bare))
    lines.append(
        f"- for information: the span adds {span - metrics:.1f} µs to slipstream's metrics-only overhead; the SDK "
        f"floor, one span alone, costs {floor:.1f} µs. The floor plus the metrics, nothing else, would be "
        f"{(floor + metrics) / otel:.3f} of the OpenTelemetry middleware's overhead: the least this ratio can be "
        "with the SDK making the span"
    )
    _, traced, untraced, peer = stacks
    faster = speedup(peer, traced)
    within = sum(p >= STACK_TARGET * t for p, t in zip(peer.contender.cpu, traced.contender.cpu, strict=True))
    lines.append(
        f"- {PAGE_PATH} br, warm cache hit through slipstream's whole stack with a span: {faster:.1f}x faster than "
        f"the peer stack, at least {STACK_TARGET:g}x in {within} of {rounds} rounds (target ≥ {STACK_TARGET:g}x: "
        f"{verdict(faster >= STACK_TARGET)})"
    )
    lines.append(f"- for information: with tracing off, {speedup(peer, untraced):.1f}x faster than the peer stack")
    peer_cpu, untraced_cpu = statistics.median(peer.contender.cpu), statistics.median(untraced.contender.cpu)
    lines.append(
        f"- for information: the hit without tracing plus the SDK floor's span and nothing else would be "
        f"{peer_cpu / (untraced_cpu + floor):.1f}x faster than the peer stack: the most a hit with a span can be"
    )
    return lines


def main() -> None:
    options = BenchmarkOptions.from_command_line(__doc__, rounds=101, requests=200)
    text = asyncio.run(run_benchmark(options))
    print(text)
    write_section(options.output, "bench_telemetry", text)


if __name__ == "__main__":
    main()
