"""SQLAlchemy benchmark: what slipstream's ``instrument_sqlalchemy`` adds to one query, against an empty
``before_cursor_execute`` / ``after_cursor_execute`` listener pair (the floor of the event-listener approach), a
hand-written listener pair feeding prometheus_client, and OpenTelemetry's SQLAlchemy instrumentation.

    python bench/bench_sqlalchemy.py [--rounds N] [--requests N] [--max-seconds S] [--output bench/RESULTS.md]

``--requests`` is the number of queries per contender per round. SQLite in memory, one table of 100 rows, each
contender on an engine of its own with one connection kept open. Every round runs N queries through each contender
back to back (round-robin, rotated), as the other benchmarks do; overheads are contender minus bare SQLAlchemy within
a round, and the target ratios are medians over rounds of that round's ratio. Replaces only its own section of the
output file.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Sequence

from harness import BenchmarkOptions, report_heading, run_rounds, source_revision, table_row, verdict, write_section
from sqlalchemy_contenders import (
    BARE,
    ENGINE_EVENTS,
    NAIVE,
    NAIVE_TABLE,
    OTEL,
    PAIR,
    ROWS,
    SLIPSTREAM,
    SLIPSTREAM_REQUEST,
    SLIPSTREAM_SPANS,
    CoreQueries,
    OrmQueries,
    QueryContender,
    contenders,
    otel_contenders,
    uninstrument_otel,
)

FLOOR_TARGET, OTEL_TARGET = 1.25, 0.1
PACKAGES = "slipstream sqlalchemy prometheus-client opentelemetry-sdk opentelemetry-instrumentation-sqlalchemy".split()
WORKLOADS = (CoreQueries, OrmQueries)


def prepare(queries: int) -> list[list[QueryContender]]:
    """A group of contenders per workload, each checked. OpenTelemetry's come last: its instrumentor patches
    ``create_engine`` and ``Engine.connect`` for the whole process."""
    groups = [contenders(workload) for workload in WORKLOADS]
    for group, otel in zip(groups, otel_contenders(WORKLOADS), strict=True):
        group.insert(group.index(next(c for c in group if c.name == SLIPSTREAM)), otel)
    for group in groups:
        for contender in group:
            contender.verify(queries)
    return groups


async def run_benchmark(options: BenchmarkOptions) -> str:
    groups = prepare(options.requests)
    gc.collect()
    gc.freeze()  # setup's objects out of the collector's way, so that each collect between contenders costs little
    try:
        await run_rounds(groups, options.rounds, options.requests, time.monotonic() + options.max_seconds)
    finally:
        uninstrument_otel()
    for group in groups:
        for contender in group:
            if contender.spans is not None:
                contender.spans.provider.shutdown()
    return report(groups, options)


def overheads(contender: QueryContender, bare: QueryContender) -> list[float]:
    """The contender's CPU µs per query minus bare SQLAlchemy's, round by round."""
    return [c - b for c, b in zip(contender.cpu, bare.cpu, strict=True)]


def overhead_ratios(ours: QueryContender, theirs: QueryContender, bare: QueryContender) -> list[float]:
    return [o / t for o, t in zip(overheads(ours, bare), overheads(theirs, bare), strict=True)]


def report(groups: Sequence[Sequence[QueryContender]], options: BenchmarkOptions) -> str:
    rounds = len(groups[0][0].cpu)
    lines = report_heading("SQLAlchemy benchmark", options.command, source_revision(), PACKAGES)
    lines += [
        f"- Rounds: {rounds}, each of {options.requests} queries per contender, one workload after the other",
        "- CPU µs/query: CPU time of this process (the span processors' threads included), median and minimum over "
        "the rounds of each round's mean; wall µs: median elapsed time. overhead µs: median over the rounds of the "
        "contender's µs minus bare SQLAlchemy's in that round. Ratios: medians over the rounds of that round's ratio",
        f"- Database: `create_engine('sqlite://', poolclass=StaticPool)` per contender (its own in-memory database), "
        f"one table `items` of {ROWS} rows (5 columns), one connection opened after the instrumentation went on and "
        "kept open; item ids vary query by query (each id in turn, in a shuffled order). Every query is checked to "
        "answer the id asked for",
        f"- *{ENGINE_EVENTS}*: bare SQLAlchemy plus `event.listen(engine, 'engine_disposed', fn)`, which never "
        "fires here: any engine-level listener sets the engine's `_has_events` and so puts every statement on "
        "SQLAlchemy's event-dispatch path; this row is that path's cost alone",
        f"- *{PAIR}*: `event.listen(engine, 'before_cursor_execute', fn)` and the same for `after_cursor_execute`, "
        "each `fn` returning None at once",
        f"- *{NAIVE}*: the same pair; before stores `time.perf_counter()` on the execution context, after takes the "
        f"operation as the statement's first word and the table with `{NAIVE_TABLE.pattern}`, then "
        "`Histogram(labels=(db_system, operation, table), registry=fresh).labels(...).observe(elapsed)`",
        f"- *{OTEL}*: `SQLAlchemyInstrumentor().instrument(engines=[...], tracer_provider=..., meter_provider=..., "
        "skip_dep_check=True)`: opentelemetry-instrumentation-sqlalchemy declares `sqlalchemy < 2.1.0` and refuses "
        "this SQLAlchemy without `skip_dep_check`. One CLIENT span per query; its connection-count metric goes to an "
        "SDK `MeterProvider` with an `InMemoryMetricReader` (pool events only: none per query here)",
        f"- *{SLIPSTREAM}*: `instrument_sqlalchemy(engine, instrumentation=Instrumentation(Settings(), "
        "registry=fresh, telemetry=Telemetry(enabled=False)), spans=False)`; "
        f"*{SLIPSTREAM_SPANS}*: `telemetry=Telemetry(provider)`, `spans=True`; *inside a request record*: "
        "`spans=False`, the round's queries all run inside one "
        "`open_record(RequestRecord(instrumentation, scope, 'GET', 0.0))` (query count, time and N+1 fingerprint "
        "counts per request), opened afresh each round",
        "- Spans: every contender that makes spans has its own SDK `TracerProvider(sampler=ALWAYS_ON)` with a "
        "`BatchSpanProcessor` (default sizes) over an exporter that counts the spans and discards them (both "
        "OpenTelemetry contenders share one: the instrumentor takes one provider). Each contender was checked to "
        "count every statement in its histogram (or request record) and to export one span per query where shown",
    ]
    for group in groups:
        lines += [f"\n### {group[0].queries.label}\n", *table(group)]
    return "\n".join([*lines, "\n### Targets\n", *targets(groups), ""])


def table(group: Sequence[QueryContender]) -> list[str]:
    bare, floor = group[0], next(c for c in group if c.name == PAIR)
    lines = [
        "| contender | CPU µs/query | min µs | wall µs | overhead µs | overhead / floor's | spans/query |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for contender in group:
        cells = [contender.name, f"{statistics.median(contender.cpu):.1f}", f"{min(contender.cpu):.1f}"]
        cells.append(f"{statistics.median(contender.wall):.1f}")
        if contender is bare:
            cells += ["", ""]
        else:
            cells.append(f"{statistics.median(overheads(contender, bare)):.1f}")
            cells.append(f"{statistics.median(overhead_ratios(contender, floor, bare)):.2f}")
        cells.append(f"{contender.spans_per_query:g}" if contender.spans is not None else "")
        lines.append(table_row(cells))
    return lines


def targets(groups: Sequence[Sequence[QueryContender]]) -> list[str]:
    lines = []
    for group in groups:
        by_name = {contender.name: contender for contender in group}
        bare, ours, rounds = by_name[BARE], by_name[SLIPSTREAM], len(group[0].cpu)
        workload = group[0].queries.label.partition(":")[0]
        for theirs, bound in ((by_name[PAIR], FLOOR_TARGET), (by_name[OTEL], OTEL_TARGET)):
            ratios = overhead_ratios(ours, theirs, bare)
            ratio, within = statistics.median(ratios), sum(r <= bound for r in ratios)
            lines.append(
                f"- {workload}: {ours.name} overhead / {theirs.name} overhead: {ratio:.3f}, at most {bound:g} in "
                f"{within} of {rounds} rounds (target ≤ {bound:g}: {verdict(ratio <= bound)})"
            )
            if theirs.name == PAIR:
                below = sum(r < 1 for r in ratios)
                beats = "beats" if ratio < 1 else "does not beat"
                lines.append(f"- {workload}: it {beats} the floor (ratio < 1 in {below} of {rounds} rounds)")
        plain = statistics.median(overheads(ours, bare))
        span, record, events = (
            statistics.median(overheads(by_name[name], bare))
            for name in (SLIPSTREAM_SPANS, SLIPSTREAM_REQUEST, ENGINE_EVENTS)
        )
        of_floor = statistics.median(overhead_ratios(by_name[ENGINE_EVENTS], by_name[PAIR], bare))
        lines.append(
            f"- {workload}, for information: a span adds {span - plain:.1f} µs to slipstream's overhead, the request "
            f"record {record - plain:.1f} µs; SQLAlchemy's event path alone ({ENGINE_EVENTS}) costs {events:.1f} µs, "
            f"{of_floor:.2f} of the floor's overhead"
        )
    return lines


def main() -> None:
    options = BenchmarkOptions.from_command_line(__doc__, rounds=201, requests=300)
    text = asyncio.run(run_benchmark(options))
    print(text)
    write_section(options.output, "bench_sqlalchemy", text)


if __name__ == "__main__":
    main()
