"""Profile: where a real uvicorn's CPU goes with slipstream, against the bare app and the OpenTelemetry SDK's floor.

    python bench/bench_profile.py [--seconds S] [--rate HZ] [--output bench/RESULTS.md]

The four apps of bench_load.py's kind (bare; the SDK floor, one span and nothing else; slipstream's whole stack
without and with a tracer provider) run under uvicorn (bench/profile_apps.py) and wrk loads one app and route at
a time. For each: the server's CPU per request by thread (from /proc), the garbage collector's collections and time
(read from the worker), and, with py-spy (the bench extra) attached for a second run, the CPU per request by
component, from where each sample's innermost Python frame is. The same apps called in-process give the overhead
the in-process benchmarks see. Replaces only its own section of the output file.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import http.client
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from starlette.types import ASGIApp

import telemetry_load_app
from harness import discard, receive, request_scope, write_section
from profile_apps import GC_PATH
from profile_components import OTHER_THREADS, component_of
from profile_report import (
    APPS,
    BARE,
    FLOOR,
    FULL,
    IN_PROCESS_REQUESTS,
    IN_PROCESS_ROUNDS,
    METRICS,
    ROUTES,
    Profile,
    report,
)
from telemetry_uvicorn import Server, running_servers


def gc_counts(server: Server) -> dict[str, list[float]]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        connection.request("GET", GC_PATH)
        counts: dict[str, list[float]] = json.loads(connection.getresponse().read())
        return counts
    finally:
        connection.close()


def wrk(server: Server, route: str, seconds: float) -> tuple[int, float]:
    command = ["wrk", "-t2", "-c32", f"-d{seconds:g}s", "-H", "Accept-Encoding: br", server.url(route)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    requests = re.search(r"(\d+) requests in", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if requests is None or rate is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    return int(requests.group(1)), float(rate.group(1))


def measure(server: Server, profile: Profile, seconds: float) -> None:
    """One plain run: requests, CPU by thread and the collector's counts, as differences over the run; kept when
    it is the round with the median CPU per request so far (the machine is shared: one slow round is noise)."""
    threads, counts = server.thread_cpu_seconds(), gc_counts(server)
    requests, rate = wrk(server, profile.route, seconds)
    after, counts_after = server.thread_cpu_seconds(), gc_counts(server)
    used = (after[0] - threads[0], after[1] - threads[1])
    profile.rounds.append((rate, sum(used) / requests * 1e6))
    middle = sorted(profile.rounds, key=lambda pair: pair[1])[(len(profile.rounds) - 1) // 2]
    if middle != profile.rounds[-1]:
        return
    profile.requests, profile.threads = requests, used
    profile.collections = [int(a - b) for a, b in zip(counts_after["collections"], counts["collections"], strict=True)]
    profile.gc_seconds = [a - b for a, b in zip(counts_after["seconds"], counts["seconds"], strict=True)]


def sample(server: Server, profile: Profile, seconds: float, rate: int, py_spy: str) -> None:
    """A second run with py-spy attached: the main thread's CPU per request (from the plain run: py-spy pauses the
    process for each sample, which slows it) shared out by the component of each sample's innermost frame."""
    with tempfile.TemporaryDirectory() as directory:
        output = Path(directory) / "samples.txt"
        command = [py_spy, "record", "--pid", str(server.process.pid), "--rate", str(rate), "--format", "raw"]
        command += ["--full-filenames", "--threads", "--duration", f"{seconds + 1:g}", "--output", str(output)]
        spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # attached before the load starts
        wrk(server, profile.route, seconds)
        spy.wait(timeout=60)
        lines = output.read_text().splitlines() if output.exists() else []
    samples = Counter[str]()
    for line in lines:
        stack, _, times = line.rpartition(" ")
        frames = stack.split(";")
        if "MainThread" in frames[0]:
            samples[component_of(frames[-1])] += int(times)
    if not samples:
        raise SystemExit(
            "py-spy took no sample of the server: it must be allowed to attach to another process (run as root, or "
            "with kernel.yama.ptrace_scope=0)"
        )
    total = samples.total()
    for component, sampled in samples.items():
        profile.components[component] = sampled / total * profile.main_thread
    profile.components[OTHER_THREADS] = profile.other_threads


async def time_in_process(profiles: dict[tuple[str, str], Profile]) -> None:
    """The same apps called in-process, rounds interleaved as the other benchmarks do (CPU µs per request)."""
    factories: dict[str, Callable[[], ASGIApp]] = {
        BARE: telemetry_load_app.bare_app,
        FLOOR: telemetry_load_app.floor_app,
        METRICS: lambda: telemetry_load_app.metrics_app(tracing=False),
        FULL: telemetry_load_app.full_app,
    }
    apps = {name: factory() for name, factory in factories.items()}
    for route in ROUTES:
        scope = request_scope(route, "br")
        for app in apps.values():
            for _ in range(20):  # fills the cache, binds labelled children
                await app(dict(scope), receive, discard)
        for round_index in range(IN_PROCESS_ROUNDS):
            names = list(apps)
            for name in [*names[round_index % 4 :], *names[: round_index % 4]]:
                gc.collect()
                started = time.process_time()
                for _ in range(IN_PROCESS_REQUESTS):
                    await apps[name](dict(scope), receive, discard)
                cpu = time.process_time() - started
                profiles[name, route].in_process.append(cpu / IN_PROCESS_REQUESTS * 1e6)


def py_spy_path() -> str:
    """py-spy's program: beside this interpreter (the bench extra installs it there), else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if os.access(beside, os.X_OK) else shutil.which("py-spy")
    if found is None:
        raise SystemExit("py-spy is not installed: pip install -e '.[bench]'")
    return found


def run(options: argparse.Namespace) -> dict[tuple[str, str], Profile]:
    profiles = {(app, route): Profile(app, route) for route in ROUTES for app in APPS}
    py_spy = py_spy_path()
    with running_servers(APPS) as servers:
        for route in ROUTES:
            names = list(servers)
            for name in names:
                wrk(servers[name], route, 1)  # warm: the cache filled, the labelled children bound
            for round_index in range(options.rounds):
                for name in [*names[round_index % 4 :], *names[: round_index % 4]]:
                    measure(servers[name], profiles[name, route], options.seconds)
            for name in names:
                sample(servers[name], profiles[name, route], 2 * options.seconds, options.rate, py_spy)
                print(f"{name} {route}: {profiles[name, route].median_rate:.0f} requests/s", file=sys.stderr)
    asyncio.run(time_in_process(profiles))
    return profiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3, help="wrk's -d per run")
    parser.add_argument("--rounds", type=int, default=3, help="plain runs per app and route")
    parser.add_argument("--rate", type=int, default=200, help="py-spy's samples per second")
    parser.add_argument("--output", type=Path, default=Path("bench/RESULTS.md"), help="Markdown file to update")
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not on PATH; install it (apt-get install wrk) to run this benchmark")
    interpreter = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else sys.executable
    text = report(run(options), options, shlex.join([interpreter, *sys.argv]), py_spy_path())
    print(text)
    write_section(options.output, "bench_profile", text)


if __name__ == "__main__":
    main()
