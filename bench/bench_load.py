"""Load benchmark: requests per second through a real uvicorn, the bare app against slipstream's whole stack.

    python bench/bench_load.py [--rounds N] [--seconds S] [--connections N] [--threads N] [--output bench/RESULTS.md]

Both apps (bench/telemetry_load_app.py) run at once, each in its own uvicorn process on a free loopback port; wrk
(Debian's package) loads one app and one route at a time, the order rotated each round, so the shared machine's drift
hits them alike. A cacheable route (a 60 KB page, Accept-Encoding: br) and an uncached one (a small JSON). Reported:
medians over rounds, the server process's CPU time per request (from /proc), and wrk's latency percentiles.
Replaces only its own section of the output file.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness import report_heading, source_revision, table_row, write_section
from telemetry_contenders import ITEM_PATH, PAGE_PATH
from telemetry_uvicorn import Server, fetch_http, running_servers

ROUTES = {PAGE_PATH: "cacheable ~60 KB HTML", ITEM_PATH: "uncached ~200 B JSON"}
BARE = "bare app"
APPS = {
    BARE: "telemetry_load_app:bare_app",
    "slipstream install(), everything on": "telemetry_load_app:full_app",
    "slipstream install(), no tracer provider": "telemetry_load_app:metrics_app",
}
PACKAGES = "slipstream starlette uvicorn h11 opentelemetry-sdk prometheus-client brotli".split()
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
SIZES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}
MAX_SECONDS_PER_RUN = 10


@dataclass
class Run:
    """One app on one route: each round's requests/s, latency percentiles (ms), server CPU µs/request, bytes read."""

    app: str
    route: str
    rates: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    bytes_per_response: float = 0.0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LoadOptions:
    rounds: int
    seconds: int
    connections: int
    threads: int
    output: Path
    command: str

    @classmethod
    def from_command_line(cls) -> LoadOptions:
        parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--rounds", type=int, default=2, help="rounds; medians over them are reported")
        parser.add_argument("--seconds", type=int, default=2, help=f"wrk's -d per run, at most {MAX_SECONDS_PER_RUN}")
        parser.add_argument("--connections", type=int, default=32, help="wrk's -c")
        parser.add_argument("--threads", type=int, default=2, help="wrk's -t")
        parser.add_argument("--output", type=Path, default=Path("bench/RESULTS.md"), help="Markdown file to update")
        args = parser.parse_args()
        if args.rounds < 1 or not 1 <= args.seconds <= MAX_SECONDS_PER_RUN or args.threads < 1:
            parser.error(f"--rounds and --threads must be at least 1, --seconds between 1 and {MAX_SECONDS_PER_RUN}")
        if args.connections < args.threads:
            parser.error("--connections must be at least --threads")
        interpreter = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else sys.executable
        command = shlex.join([interpreter, *sys.argv])
        return cls(args.rounds, args.seconds, args.connections, args.threads, args.output, command)


def wrk_command(options: LoadOptions, url: str) -> list[str]:
    return [
        "wrk", f"-t{options.threads}", f"-c{options.connections}", f"-d{options.seconds}s", "--latency",
        "-H", "Accept-Encoding: br", url,
    ]  # fmt: skip


def milliseconds(text: str) -> float:
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    return float(number) * UNITS[text[len(number) :]]


def parse_wrk(output: str, run: Run) -> int:
    """Adds one wrk run's figures to ``run``, its non-2xx/3xx answers and socket errors to ``run.errors``; returns
    the number of requests it completed."""
    lines = [line.split() for line in output.splitlines()]
    rate = next(float(words[1]) for words in lines if words[:1] == ["Requests/sec:"])
    percentiles = {words[0]: milliseconds(words[1]) for words in lines if len(words) == 2 and words[0][-1:] == "%"}
    total = next(words for words in lines if len(words) >= 5 and words[1:3] == ["requests", "in"])
    size = total[4].rstrip("BKMG")
    run.rates.append(rate)
    run.p50.append(percentiles["50%"])
    run.p99.append(percentiles["99%"])
    run.bytes_per_response = float(size) * SIZES[total[4][len(size) :]] / int(total[0])
    run.errors += [" ".join(words) for words in lines if words[:1] in (["Non-2xx"], ["Socket"])]
    return int(total[0])


def load(options: LoadOptions, server: Server, run: Run) -> None:
    cpu_before = server.cpu_seconds()
    done = subprocess.run(wrk_command(options, server.url(run.route)), capture_output=True, text=True, check=True)
    cpu_seconds = server.cpu_seconds() - cpu_before
    run.cpu.append(cpu_seconds / parse_wrk(done.stdout, run) * 1e6)
    print(f"{run.app} {run.route}: {run.rates[-1]:.0f} requests/s", file=sys.stderr)


def check_answers(servers: dict[str, Server]) -> None:
    """Before any load: every app answers every route with a 200; slipstream's page comes compressed from its cache
    (the second time), its JSON is not cached."""
    for name, server in servers.items():
        for route in ROUTES:
            fetch_http(server, route)
            status, headers = fetch_http(server, route)
            expected = {"x-cache": "", "content-encoding": ""}
            if name != "bare app":  # the JSON is below the compression minimum size
                expected = {"x-cache": "HIT", "content-encoding": "br"} if route == PAGE_PATH else {"x-cache": "MISS"}
            seen = {key: headers.get(key, "") for key in expected}
            if status != 200 or seen != expected:
                raise RuntimeError(f"{name} {route}: {status} {seen}, expected 200 {expected}")


def run_benchmark(options: LoadOptions) -> list[Run]:
    runs = [Run(app, route) for route in ROUTES for app in APPS]
    with running_servers(APPS) as servers:
        check_answers(servers)
        for round_index in range(options.rounds):
            shift = round_index % len(runs)
            for run in [*runs[shift:], *runs[:shift]]:
                load(options, servers[run.app], run)
        for name, server in servers.items():
            if "Traceback" in server.output() or "ERROR" in server.output():
                raise RuntimeError(f"{name} logged an error under load:\n{server.output()}")
    return runs


def report(runs: list[Run], options: LoadOptions) -> str:
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout.split(" [")[0]
    lines = report_heading("Load benchmark", options.command, source_revision(), PACKAGES, wrk_version.strip())
    lines += [
        f"- Rounds: {options.rounds}; in each, `{shlex.join(wrk_command(options, 'URL'))}` once per app and route, "
        f"in an order rotated each round: {options.rounds * len(runs) * options.seconds} s of load in all",
        "- Servers: `python -m uvicorn --factory --app-dir bench telemetry_load_app:<app> --loop asyncio --http h11 "
        "--no-access-log`, one process each, both running throughout on free 127.0.0.1 ports; wrk shares the "
        f"machine's {os.cpu_count()} CPUs with them",
        "- *slipstream install(), everything on*: `Settings(metrics_port=None, report_enabled=True)`: timing with "
        "Server-Timing and one span per request (SDK TracerProvider, BatchSpanProcessor over an exporter that "
        "discards), cache, compression, ETags, the report. *no tracer provider*: the same where the app has set up no "
        "OpenTelemetry provider, so no spans are made (metrics, Server-Timing and the rest as above). The bare app "
        "sends the page uncompressed",
        "- requests/s, latency: medians over the rounds (wrk's own percentiles of each run); server CPU: the uvicorn "
        "process's CPU time (/proc) over the requests wrk counted; bytes: read per response, headers included\n",
        "| route | app | requests/s | each round | p50 ms | p99 ms | server CPU µs/request | bytes/response |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        rounds = ", ".join(f"{rate:.0f}" for rate in run.rates)
        cells = [f"{run.route} ({ROUTES[run.route]})", run.app, f"{statistics.median(run.rates):.0f}", rounds]
        cells += [f"{statistics.median(run.p50):.2f}", f"{statistics.median(run.p99):.2f}"]
        cells += [f"{statistics.median(run.cpu):.0f}", f"{run.bytes_per_response:.0f}"]
        lines.append(table_row(cells))
    lines.append("\n### Ratios\n")
    for route in ROUTES:
        bare = next(run for run in runs if run.route == route and run.app == BARE)
        for full in (run for run in runs if run.route == route and run.app != BARE):
            ratio = statistics.median(f / b for f, b in zip(full.rates, bare.rates, strict=True))
            added = statistics.median(f - b for f, b in zip(full.cpu, bare.cpu, strict=True))
            lines.append(
                f"- {route}, {full.app}: requests/s / the bare app's: {ratio:.2f}; server CPU per request "
                f"{added:+.0f} µs (medians over rounds of each round's ratio and difference)"
            )
    errors = [f"{run.app} {run.route}: {error}" for run in runs for error in run.errors]
    lines.append(f"- wrk errors: {'; '.join(errors) if errors else 'none'}")
    return "\n".join([*lines, ""])


def main() -> None:
    options = LoadOptions.from_command_line()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not on PATH; install it (apt-get install wrk) to run this benchmark")
    text = report(run_benchmark(options), options)
    print(text)
    write_section(options.output, "bench_load", text)


if __name__ == "__main__":
    main()
