"""Load benchmark: requests per second through a real uvicorn, the bare app against slipstream's whole stack.

    python bench/bench_load.py [--rounds N] [--seconds S] [--connections N] [--threads N] [--workers N ...]
                               [--output bench/RESULTS.md]

The apps (bench/telemetry_load_app.py) run at once, each in its own uvicorn on a free loopback port; wrk (Debian's
package) loads one app and one route at a time, the order rotated each round, so the shared machine's drift hits
them alike. A cacheable route (a 60 KB page, Accept-Encoding: br) and an uncached one (a small JSON). Reported:
medians over rounds, the server's CPU time per request (from /proc, its workers included), wrk's latency
percentiles, and the issue's targets against the bare app, with the OpenTelemetry SDK's own floor (one span,
nothing else) measured in the same run. With ``--workers 2`` (by default after one worker) each server runs two
workers in prometheus_client's multiprocess mode, and slipstream's have a `slipstream sidecar` whose merged
metrics must count every request. Replaces only its own section of the output file.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness import report_heading, source_revision, table_row, verdict, write_section
from load_runs import Run, counted_requests, parse_wrk
from slipstream import Settings
from telemetry_contenders import ITEM_PATH, ITEM_ROUTE, PAGE_PATH
from telemetry_uvicorn import Server, fetch_http, running_servers, scrape

ROUTES = {PAGE_PATH: "cacheable ~60 KB HTML", ITEM_PATH: "uncached ~200 B JSON"}
TEMPLATES = {PAGE_PATH: PAGE_PATH, ITEM_PATH: ITEM_ROUTE}
BARE, FLOOR = "bare app", "OpenTelemetry SDK floor: one span, nothing else"
FULL, METRICS = "slipstream install(), everything on", "slipstream install(), no tracer provider"
APPS = {
    BARE: "telemetry_load_app:bare_app",
    FLOOR: "telemetry_load_app:floor_app",
    FULL: "telemetry_load_app:full_app",
    METRICS: "telemetry_load_app:metrics_app",
}
SLIPSTREAM = (FULL, METRICS)
PACKAGES = "slipstream starlette uvicorn h11 opentelemetry-sdk prometheus-client brotli".split()
MAX_SECONDS_PER_RUN = 10
# Requests for an answer as expected before the load: each worker fills its own memory cache.
CHECK_TRIES = 20
# Issue 14's targets, everything on against the bare app: requests/s ratios, and the cached page's p99 ratio.
TARGETS = {ITEM_PATH: 0.80, PAGE_PATH: 0.90}
P99_TARGET = 2.0


@dataclass(frozen=True)
class LoadOptions:
    rounds: int
    seconds: int
    connections: int
    threads: int
    workers: tuple[int, ...]
    output: Path
    command: str

    @classmethod
    def from_command_line(cls) -> LoadOptions:
        parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--rounds", type=int, default=2, help="rounds; medians over them are reported")
        parser.add_argument("--seconds", type=int, default=2, help=f"wrk's -d per run, at most {MAX_SECONDS_PER_RUN}")
        parser.add_argument("--connections", type=int, default=32, help="wrk's -c")
        parser.add_argument("--threads", type=int, default=2, help="wrk's -t")
        parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="uvicorn workers, one run each")
        parser.add_argument("--output", type=Path, default=Path("bench/RESULTS.md"), help="Markdown file to update")
        args = parser.parse_args()
        if args.rounds < 1 or not 1 <= args.seconds <= MAX_SECONDS_PER_RUN or args.threads < 1 or min(args.workers) < 1:
            parser.error(
                f"--rounds, --threads and --workers must be at least 1, --seconds between 1 and {MAX_SECONDS_PER_RUN}"
            )
        if args.connections < args.threads:
            parser.error("--connections must be at least --threads")
        interpreter = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else sys.executable
        command = shlex.join([interpreter, *sys.argv])
        workers = tuple(args.workers)
        return cls(args.rounds, args.seconds, args.connections, args.threads, workers, args.output, command)


def wrk_command(options: LoadOptions, url: str) -> list[str]:
    return [
        "wrk", f"-t{options.threads}", f"-c{options.connections}", f"-d{options.seconds}s", "--latency",
        "-H", "Accept-Encoding: br", url,
    ]  # fmt: skip


def load(options: LoadOptions, server: Server, run: Run) -> None:
    cpu_before = server.cpu_seconds()
    done = subprocess.run(wrk_command(options, server.url(run.route)), capture_output=True, text=True, check=True)
    cpu_seconds = server.cpu_seconds() - cpu_before
    run.cpu.append(cpu_seconds / parse_wrk(done.stdout, run) * 1e6)
    print(f"{run.app} {run.route}: {run.rates[-1]:.0f} requests/s", file=sys.stderr)


def check_answers(servers: dict[str, Server]) -> None:
    """Before any load: every app answers every route with a 200; slipstream's page comes compressed from its cache
    (once the worker answering has filled its own), its JSON is not cached."""
    for name, server in servers.items():
        for route in ROUTES:
            expected = {"x-cache": "", "content-encoding": ""}
            if name in SLIPSTREAM:  # the JSON is below the compression minimum size
                expected = {"x-cache": "HIT", "content-encoding": "br"} if route == PAGE_PATH else {"x-cache": "MISS"}
            for _ in range(CHECK_TRIES):
                status, headers = fetch_http(server, route)
                seen = {key: headers.get(key, "") for key in expected}
                if status == 200 and seen == expected:
                    break
            else:
                raise RuntimeError(f"{name} {route}: {status} {seen}, expected 200 {expected}")


@dataclass
class Mode:
    """One run of the benchmark: every app and route with ``workers`` uvicorn workers; with several, the requests
    each slipstream app's sidecar counted per route."""

    workers: int
    runs: list[Run]
    counted: dict[tuple[str, str], float]


def run_benchmark(options: LoadOptions, workers: int) -> Mode:
    runs = [Run(app, route) for route in ROUTES for app in APPS]
    counted: dict[tuple[str, str], float] = {}
    with running_servers(APPS, workers, sidecars=SLIPSTREAM) as servers:
        check_answers(servers)
        for round_index in range(options.rounds):
            shift = round_index % len(runs)
            for run in [*runs[shift:], *runs[:shift]]:
                load(options, servers[run.app], run)
        if workers > 1:
            # Workers write their summed increments every metrics_multiprocess_flush_interval: the last load's are in
            # the files that much later.
            time.sleep(Settings.metrics_multiprocess_flush_interval + 0.5)
        for name, server in servers.items():
            if "Traceback" in server.output() or "ERROR" in server.output():
                raise RuntimeError(f"{name} logged an error under load:\n{server.output()}")
            if server.sidecar_port is not None:
                metrics = scrape(server.sidecar_port)
                for route, template in TEMPLATES.items():
                    counted[name, route] = counted_requests(metrics, template)
    return Mode(workers, runs, counted)


def report(modes: list[Mode], options: LoadOptions) -> str:
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout.split(" [")[0]
    lines = report_heading("Load benchmark", options.command, source_revision(), PACKAGES, wrk_version.strip())
    load_seconds = len(modes) * options.rounds * len(ROUTES) * len(APPS) * options.seconds
    lines += [
        f"- Rounds: {options.rounds}; in each, `{shlex.join(wrk_command(options, 'URL'))}` once per app and route, "
        f"in an order rotated each round: {load_seconds} s of load in all",
        "- Servers: `python -m uvicorn --factory --app-dir bench telemetry_load_app:<app> --loop asyncio --http h11 "
        "--no-access-log`, one each, all running throughout on free 127.0.0.1 ports; wrk shares the machine's "
        f"{os.cpu_count()} CPUs with them. With `--workers 2`, each server has its own PROMETHEUS_MULTIPROC_DIR and "
        "each slipstream one a `slipstream sidecar` over it, scraped at the end; uvicorn is started through "
        "bench/uvicorn_nodelay.py, which gives the socket uvicorn binds for its workers back its TCP protocol "
        "(uvicorn issue 3149: without it no connection gets TCP_NODELAY and every keep-alive request waits ~40 ms "
        "for a delayed ACK, whichever the app)",
        f"- *{FULL}*: `Settings(metrics_port=None, report_enabled=True)`: timing with Server-Timing and one span per "
        "request (SDK TracerProvider sampling every trace, BatchSpanProcessor over an exporter that discards), cache, "
        f"compression, ETags, the report. *{METRICS}*: the same where the app has set up no OpenTelemetry provider, "
        f"so no spans are made. *{FLOOR}*: the bare app inside bench_telemetry.py's floor middleware, one SDK span "
        "with slipstream's attributes to the same pipeline: what any tracing costs. The bare app sends the page "
        "uncompressed",
        "- requests/s, latency: medians over the rounds (wrk's own percentiles of each run); server CPU: the uvicorn "
        "processes' CPU time (/proc) over the requests wrk counted; bytes: read per response, headers included",
    ]
    for mode in modes:
        lines += mode_report(mode)
    return "\n".join([*lines, ""])


def mode_report(mode: Mode) -> list[str]:
    workers = f"{mode.workers} worker{'s' if mode.workers > 1 else ''}"
    lines = [
        f"\n### uvicorn, {workers}\n",
        "| route | app | requests/s | each round | p50 ms | p99 ms | server CPU µs/request | bytes/response |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for run in mode.runs:
        rounds = ", ".join(f"{rate:.0f}" for rate in run.rates)
        cells = [f"{run.route} ({ROUTES[run.route]})", run.app, f"{statistics.median(run.rates):.0f}", rounds]
        cells += [f"{statistics.median(run.p50):.2f}", f"{statistics.median(run.p99):.2f}"]
        cells += [f"{statistics.median(run.cpu):.0f}", f"{run.bytes_per_response:.0f}"]
        lines.append(table_row(cells))
    lines.append(f"\nRatios to the bare app, {workers} (medians over rounds of each round's ratio and difference):\n")
    by_key = {(run.app, run.route): run for run in mode.runs}
    for route in ROUTES:
        bare = by_key[BARE, route]
        for app in (FULL, METRICS, FLOOR):
            run = by_key[app, route]
            lines.append(
                f"- {route}, {app}: requests/s {run.ratio(bare):.2f}, p99 {run.p99_ratio(bare):.2f}x, server CPU per "
                f"request {run.added_cpu(bare):+.0f} µs"
            )
    for route, target in TARGETS.items():
        full, floor, bare = by_key[FULL, route], by_key[FLOOR, route], by_key[BARE, route]
        ratio = full.ratio(bare)
        line = (
            f"- target, {route} everything on: requests/s ≥ {target:.2f}x the bare app's: {ratio:.2f} "
            f"({verdict(ratio >= target)}); the SDK floor alone reaches {floor.ratio(bare):.2f}"
        )
        if route == PAGE_PATH:
            p99 = full.p99_ratio(bare)
            line += f"; p99 ≤ {P99_TARGET:g}x the bare app's: {p99:.2f}x ({verdict(p99 <= P99_TARGET)})"
        lines.append(line)
    for (app, route), counted in mode.counted.items():
        sent = by_key[app, route].requests
        lines.append(
            f"- sidecar, {app}, {route}: counted {counted:.0f} requests, wrk completed {sent} under load "
            f"({verdict(counted >= sent)}: every request counted, warm-up and late answers on top)"
        )
    errors = [f"{run.app} {run.route}: {error}" for run in mode.runs for error in run.errors]
    lines.append(f"- wrk errors: {'; '.join(errors) if errors else 'none'}")
    return lines


def main() -> None:
    options = LoadOptions.from_command_line()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not on PATH; install it (apt-get install wrk) to run this benchmark")
    text = report([run_benchmark(options, workers) for workers in options.workers], options)
    print(text)
    write_section(options.output, "bench_load", text)


if __name__ == "__main__":
    main()
