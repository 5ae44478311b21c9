"""Multiprocess mode's metric writes under a real server: slipstream's whole stack with two uvicorn workers and
``PROMETHEUS_MULTIPROC_DIR``, writing each increment to the worker's file at once (prometheus_client's way,
``metrics_multiprocess_flush_interval=0``) and summing them to write every 0.1 s (the default), against the bare app.

    python bench/bench_multiprocess_writes.py [--rounds N] [--seconds S] [--output bench/RESULTS.md]

First in-process (bench/multiprocess_inprocess.py, in a process of its own with PROMETHEUS_MULTIPROC_DIR set), where
the difference stands clear of the noise; then under uvicorn. Every server runs throughout (bench_load.py's apps, two
workers each, a multiprocess directory each); wrk loads one server and route at a time, the order rotated each
round, and the figures are medians over rounds of each round's ratio to the bare app. Replaces only its own section.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from harness import report_heading, source_revision, write_section
from load_runs import RATIO_TABLE, Run, ratio_rows
from telemetry_contenders import ITEM_PATH, PAGE_PATH
from telemetry_uvicorn import Server, load_in_rounds, start, stop, wait_until_serving

ROUTES = {ITEM_PATH: "uncached ~200 B JSON", PAGE_PATH: "cacheable ~60 KB HTML, br"}
BARE = "bare app"
FLUSH = "SLIPSTREAM_METRICS_MULTIPROCESS_FLUSH_INTERVAL"
# name -> (factory, the flush interval, None for the bare app)
APPS = {
    BARE: ("telemetry_load_app:bare_app", None),
    "everything on, each increment written": ("telemetry_load_app:full_app", "0"),
    "everything on, in batches every 0.1 s": ("telemetry_load_app:full_app", "0.1"),
    "no tracer provider, each increment written": ("telemetry_load_app:metrics_app", "0"),
    "no tracer provider, in batches every 0.1 s": ("telemetry_load_app:metrics_app", "0.1"),
}
PAIRS = ("everything on", "no tracer provider")
EACH, BATCHED = "each increment written", "in batches every 0.1 s"
WORKERS = 2
PACKAGES = "starlette uvicorn h11 opentelemetry-sdk prometheus-client".split()


@contextmanager
def servers() -> Iterator[dict[str, Server]]:
    running: dict[str, Server] = {}
    with ExitStack() as stack:
        try:
            for name, (factory, interval) in APPS.items():
                log = stack.enter_context(tempfile.TemporaryFile())
                directory = stack.enter_context(tempfile.TemporaryDirectory())
                environment = {} if interval is None else {FLUSH: interval}
                running[name] = start(factory, log, WORKERS, directory, environment=environment)
            for server in running.values():
                wait_until_serving(server)
            yield running
        finally:
            for server in running.values():
                stop(server)


def run_benchmark(rounds: int, seconds: int) -> list[Run]:
    runs = [Run(app, route) for route in ROUTES for app in APPS]
    with servers() as running:
        load_in_rounds(running, runs, rounds, seconds)
    return runs


def in_process() -> dict[str, dict[str, float]]:
    """bench/multiprocess_inprocess.py's overheads (µs over the bare app), per route and app."""
    with tempfile.TemporaryDirectory() as directory:
        done = subprocess.run(
            [sys.executable, str(Path(__file__).with_name("multiprocess_inprocess.py"))],
            env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": directory},
            capture_output=True,
            text=True,
            check=True,
        )
    overheads: dict[str, dict[str, float]] = json.loads(done.stdout)
    return overheads


def report(overheads: dict[str, dict[str, float]], runs: list[Run], options: argparse.Namespace, command: str) -> str:
    lines = report_heading("Multiprocess metric writes under two workers", command, source_revision(), PACKAGES)
    lines += [
        "- In-process: bench/multiprocess_inprocess.py, in a process of its own with PROMETHEUS_MULTIPROC_DIR set; "
        "the whole stack without a tracer provider called directly, 21 interleaved rounds of 400 requests; CPU µs a "
        "request over the bare app's, medians over the rounds\n",
        "| route | each increment written | in batches every 0.1 s | difference |",
        "| --- | ---: | ---: | ---: |",
        *(
            f"| {route} | {by_app[EACH]:.1f} | {by_app[BATCHED]:.1f} | {by_app[BATCHED] - by_app[EACH]:+.1f} |"
            for route, by_app in overheads.items()
        ),
        "",
        f"- Under uvicorn: {options.rounds} rounds; in each, `wrk -t2 -c32 -d{options.seconds}s --latency -H "
        f"'Accept-Encoding: br'` once per server and route, in an order rotated each round; uvicorn "
        f"`--workers {WORKERS}` as in bench_load.py, each server with a multiprocess directory of its own, all running "
        f"throughout, sharing the machine's {os.cpu_count()} CPUs with wrk",
        f"- *each increment written*: `{FLUSH}=0`, prometheus_client's own way (a locked write to the worker's "
        "memory-mapped file per increment); *in batches*: the default, the request path's increments summed in "
        "memory and written every 0.1 s",
        "- ratio: median over rounds of the round's requests/s over the bare app's; CPU: the server's CPU µs per "
        "request (/proc, both workers), and its difference from the bare app's in the same round (median)\n",
        *RATIO_TABLE,
    ]
    lines += ratio_rows(runs, BARE)
    by_key = {(run.app, run.route): run for run in runs}
    lines.append("")
    for route in ROUTES:
        bare = by_key[BARE, route]
        for kind in PAIRS:
            each = by_key[f"{kind}, each increment written", route]
            batched = by_key[f"{kind}, in batches every 0.1 s", route]
            lines.append(
                f"- {route}, {kind}: {each.ratio(bare):.2f} → {batched.ratio(bare):.2f} of the bare app's "
                f"requests/s, {each.added_cpu(bare):+.0f} → {batched.added_cpu(bare):+.0f} µs of server CPU a request"
            )
    lines.append(
        "- Two workers and wrk share the machine's CPUs here: from run to run the requests/s and CPU of two stacks "
        "differ by more than the few µs in-process measures, either way. The in-process table is the figure to "
        "read; these rows cannot tell the two apart."
    )
    return "\n".join([*lines, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path("bench/RESULTS.md"))
    options = parser.parse_args()
    interpreter = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else sys.executable
    command = shlex.join([interpreter, *sys.argv])
    overheads = in_process()
    text = report(overheads, run_benchmark(options.rounds, options.seconds), options, command)
    print(text)
    write_section(options.output, "bench_multiprocess_writes", text)


if __name__ == "__main__":
    main()
