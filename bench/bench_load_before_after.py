"""Before/after issue 14 under a real server: slipstream's whole stack from an older source tree and from this one,
each against the bare app, under uvicorn + wrk in one run.

    python bench/bench_load_before_after.py --before DIR [--label TEXT] [--rounds N] [--seconds S]
        [--output bench/RESULTS.md]

DIR holds the older ``src/`` (``git archive <commit> src | tar -x -C DIR``); its servers import slipstream from
there (PYTHONPATH=DIR/src), the others from this checkout. Every server runs throughout, bench_load.py's apps
(bench/telemetry_load_app.py) and command; wrk loads one server and route at a time, the order rotated each round,
and the figures are medians over rounds of each round's ratio to the bare app. Replaces only its own section.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
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
# name -> (factory, whether it runs the older source)
APPS = {
    BARE: ("telemetry_load_app:bare_app", False),
    "before: everything on": ("telemetry_load_app:full_app", True),
    "after: everything on": ("telemetry_load_app:full_app", False),
    "before: no tracer provider": ("telemetry_load_app:metrics_app", True),
    "after: no tracer provider": ("telemetry_load_app:metrics_app", False),
}
PACKAGES = "starlette uvicorn h11 opentelemetry-sdk prometheus-client".split()


@contextmanager
def servers(before: Path) -> Iterator[dict[str, Server]]:
    running: dict[str, Server] = {}
    with ExitStack() as stack:
        try:
            for name, (factory, old) in APPS.items():
                log = stack.enter_context(tempfile.TemporaryFile())
                running[name] = start(factory, log, source=str(before / "src") if old else None)
            for server in running.values():
                wait_until_serving(server)
            yield running
        finally:
            for server in running.values():
                stop(server)


def run_benchmark(before: Path, rounds: int, seconds: int) -> list[Run]:
    runs = [Run(app, route) for route in ROUTES for app in APPS]
    with servers(before) as running:
        load_in_rounds(running, runs, rounds, seconds)
    return runs


def report(runs: list[Run], options: argparse.Namespace, command: str) -> str:
    lines = report_heading("Load before/after (issue 14)", command, source_revision(), PACKAGES)
    lines += [
        f"- before: {options.label}, imported from `{options.before}/src`; after: this checkout",
        f"- {options.rounds} rounds; in each, `wrk -t2 -c32 -d{options.seconds}s --latency -H 'Accept-Encoding: br'` "
        f"once per server and route, in an order rotated each round; uvicorn as in bench_load.py, one process per "
        f"app, all running throughout, sharing the machine's {os.cpu_count()} CPUs with wrk",
        "- ratio: median over rounds of the round's requests/s over the bare app's; CPU: the server's CPU µs per "
        "request (/proc), and its difference from the bare app's in the same round (median); p99: wrk's, median\n",
        *RATIO_TABLE,
    ]
    lines += ratio_rows(runs, BARE)
    by_key = {(run.app, run.route): run for run in runs}
    lines.append("")
    for route in ROUTES:
        bare = by_key[BARE, route]
        for kind in ("everything on", "no tracer provider"):
            old, new = by_key[f"before: {kind}", route], by_key[f"after: {kind}", route]
            lines.append(
                f"- {route}, {kind}: {old.ratio(bare):.2f} → {new.ratio(bare):.2f} of the bare app's requests/s, "
                f"{old.added_cpu(bare):+.0f} → {new.added_cpu(bare):+.0f} µs of server CPU a request, p99 "
                f"{statistics.median(old.p99):.1f} → {statistics.median(new.p99):.1f} ms"
            )
    return "\n".join([*lines, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="a directory holding the older src/")
    parser.add_argument("--label", default="the older source", help="what the older source is, for the report")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path("bench/RESULTS.md"))
    options = parser.parse_args()
    if not (options.before / "src" / "slipstream").is_dir():
        parser.error(f"{options.before}/src/slipstream is not there")
    interpreter = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else sys.executable
    command = shlex.join([interpreter, *sys.argv])
    text = report(run_benchmark(options.before, options.rounds, options.seconds), options, command)
    print(text)
    write_section(options.output, "bench_load_before_after", text)


if __name__ == "__main__":
    main()
