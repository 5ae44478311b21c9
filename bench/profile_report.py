"""bench_profile.py's figures and report: one app on one route under load, the tables, and what they show."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
from dataclasses import dataclass, field

from harness import report_heading, source_revision, table_row
from profile_components import COMPONENTS, SERVER
from telemetry_contenders import ITEM_PATH, PAGE_PATH

BARE, FLOOR, METRICS, FULL = "bare app", "SDK floor", "slipstream, no tracer provider", "slipstream, everything on"
APPS = {
    BARE: "profile_apps:bare_app",
    FLOOR: "profile_apps:floor_app",
    METRICS: "profile_apps:metrics_app",
    FULL: "profile_apps:full_app",
}
ROUTES = {ITEM_PATH: "uncached ~200 B JSON", PAGE_PATH: "cached 60 KB page (br)"}
PACKAGES = "slipstream starlette uvicorn h11 opentelemetry-sdk prometheus-client".split()
IN_PROCESS_ROUNDS, IN_PROCESS_REQUESTS = 15, 300


@dataclass
class Profile:
    """One app on one route under load: requests, CPU seconds by thread, collections and their seconds by
    generation; with py-spy, CPU µs per request by component; in-process µs per request."""

    app: str
    route: str
    requests: int = 0
    threads: tuple[float, float] = (0.0, 0.0)  # CPU seconds of the main thread, of the others
    collections: list[int] = field(default_factory=lambda: [0, 0, 0])
    gc_seconds: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    # Each round's rate and CPU µs per request (all threads): the figures above are the median round's.
    rounds: list[tuple[float, float]] = field(default_factory=list)
    components: dict[str, float] = field(default_factory=dict)
    in_process: list[float] = field(default_factory=list)

    def per_request(self, seconds: float) -> float:
        return seconds / self.requests * 1e6

    @property
    def main_thread(self) -> float:
        return self.per_request(self.threads[0])

    @property
    def other_threads(self) -> float:
        return self.per_request(self.threads[1])

    @property
    def median_rate(self) -> float:
        return statistics.median(rate for rate, _ in self.rounds)


def server_overhead(profiles: dict[tuple[str, str], Profile], app: str, route: str) -> float:
    bare, profile = profiles[BARE, route], profiles[app, route]
    return profile.main_thread + profile.other_threads - bare.main_thread - bare.other_threads


def in_process_overhead(profiles: dict[tuple[str, str], Profile], app: str, route: str) -> float:
    own, bare = profiles[app, route].in_process, profiles[BARE, route].in_process
    return statistics.median(o - b for o, b in zip(own, bare, strict=True))


def gc_cells(profile: Profile) -> list[str]:
    thousands = profile.requests / 1000
    collections = "/".join(f"{count / thousands:.1f}" for count in profile.collections)
    return [collections, f"{sum(profile.gc_seconds) * 1e6 / profile.requests:.1f}"]


def report(profiles: dict[tuple[str, str], Profile], options: argparse.Namespace, command: str, py_spy: str) -> str:
    spy = subprocess.run([py_spy, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout.split(" [")[0]
    versions = f"{spy}; {wrk_version.strip()}"
    lines = report_heading("Profile under a real server", command, source_revision(), PACKAGES, versions)
    lines += [
        f"- Each app alone under `wrk -t2 -c32 -d{options.seconds:g}s -H 'Accept-Encoding: br'`, served by "
        "`uvicorn --loop asyncio --http h11` as in bench_load.py, one process, sharing the machine's "
        f"{os.cpu_count()} CPUs with wrk; {options.rounds} rounds, the apps in an order rotated each round: "
        "requests/s is the median round's, the other figures are the round's with the median CPU per request; then "
        f"a run twice as long with `py-spy record --rate {options.rate}` attached",
        f"- *{FLOOR}*: the bare app inside bench_telemetry.py's floor middleware (one SDK span with slipstream's "
        f"attributes, current during the request, to a BatchSpanProcessor over an exporter that discards). *{METRICS}* "
        f"and *{FULL}*: bench_load.py's apps (`install()`, the report on)",
        "- CPU: the process's threads from /proc over the requests wrk counted; the main thread runs the event loop, "
        "the other is the span processor's. Collections: per 1000 requests, generations 0/1/2; GC µs: CPU time "
        "inside collections (gc.callbacks) per request",
        f"- In-process: the same apps called directly ({IN_PROCESS_ROUNDS} interleaved rounds of "
        f"{IN_PROCESS_REQUESTS} requests, CPU µs, medians), as bench_telemetry.py calls them; *{METRICS}* there has "
        "`tracing_enabled=False`, the process having a global provider\n",
        "| route | app | requests/s | CPU µs/request, main thread | other threads | overhead µs | in-process "
        "µs/request | in-process overhead µs | collections /1000 requests | GC µs/request |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for (app, route), profile in profiles.items():
        overhead = f"{server_overhead(profiles, app, route):+.0f}" if app != BARE else ""
        in_process = f"{in_process_overhead(profiles, app, route):+.1f}" if app != BARE else ""
        cells = [f"{route} ({ROUTES[route]})", app, f"{profile.median_rate:.0f}", f"{profile.main_thread:.0f}"]
        cells += [f"{profile.other_threads:.1f}", overhead, f"{statistics.median(profile.in_process):.1f}"]
        lines.append(table_row([*cells, in_process, *gc_cells(profile)]))
    for route, description in ROUTES.items():
        lines += [
            f"\n### py-spy: CPU µs per request by component, {route} ({description})\n",
            "- The main thread's CPU µs per request (the table above) shared out by the innermost Python frame of "
            "each py-spy sample; time in the collector is counted where the allocation that set it off was\n",
            table_row(["component", *APPS]),
            table_row(["---", *["---:"] * len(APPS)]),
        ]
        for component in COMPONENTS:
            lines.append(
                table_row([component, *(f"{profiles[a, route].components.get(component, 0.0):.1f}" for a in APPS)])
            )
        totals = (f"{sum(profiles[a, route].components.values()):.0f}" for a in APPS)
        lines.append(table_row(["**all samples**", *totals]))
    return "\n".join([*lines, "", *findings(profiles), ""])


def findings(profiles: dict[tuple[str, str], Profile]) -> list[str]:
    item, page = ITEM_PATH, PAGE_PATH
    full, floor, metrics = (server_overhead(profiles, app, item) for app in (FULL, FLOOR, METRICS))
    full_page, floor_page = (server_overhead(profiles, app, page) for app in (FULL, FLOOR))
    rate_ratio = profiles[FULL, item].median_rate / profiles[BARE, item].median_rate
    cpu_ratio = (profiles[BARE, item].main_thread + profiles[BARE, item].other_threads) / (
        profiles[FULL, item].main_thread + profiles[FULL, item].other_threads
    )
    stretch = floor / in_process_overhead(profiles, FLOOR, item)
    ours_stretch = metrics / in_process_overhead(profiles, METRICS, item)
    full_gc, floor_gc, bare_gc = (
        sum(profiles[a, item].gc_seconds) * 1e6 / profiles[a, item].requests for a in (FULL, FLOOR, BARE)
    )
    spans = profiles[FULL, item].other_threads
    server_full, server_bare = (profiles[a, item].components.get(SERVER, 0.0) for a in (FULL, BARE))
    return [
        "### What the profile shows\n",
        f"- The server process's one CPU is the limit: everything on, {item} served {rate_ratio:.2f} of the bare "
        f"app's requests/s (medians over rounds) at {1 / cpu_ratio:.2f}x its CPU per request. A microsecond of "
        "work per request costs throughput alike whichever layer spends it; wrk and the other processes on the "
        "machine make the requests/s noisy, the CPU per request much less so.",
        f"- The OpenTelemetry SDK is the largest part: one span and nothing else adds {floor:+.0f} µs a request on "
        f"{item} and {floor_page:+.0f} µs on {page}; slipstream with everything on adds {full:+.0f} and "
        f"{full_page:+.0f}, without a tracer provider {metrics:+.0f}.",
        f"- A real server stretches the same code: the floor's span costs {stretch:.1f}x, slipstream's stack "
        f"without spans {ours_stretch:.1f}x what they cost in-process, where a tight loop keeps them in the CPU's "
        "caches; uvicorn, h11 and asyncio run between every two requests here. The in-process benchmarks rank "
        "middlewares, the load benchmark says what a user sees.",
        f"- Garbage collection: {full_gc:.1f} µs a request everything on, {floor_gc:.1f} for the SDK floor, "
        f"{bare_gc:.1f} for the bare app. Spans wait in the BatchSpanProcessor's queue (512 a batch), survive the "
        "young collections and are promoted, which sets off full collections; each walks every object the process "
        "holds, tens of milliseconds with a framework and the SDK loaded: the floor's p99 in bench_load.py. "
        "slipstream's lifespan startup now freezes what the process holds by then (`gc_freeze`), so those walk "
        "only what was made since. Before this work every finished request also stayed alive: uvicorn arms its "
        "keep-alive timer while it sends the last chunk and the timer copies the current context, which held the "
        "request's record, scopes and span (13 young collections a 1000 requests without spans); timing now hands "
        "the last chunk over outside that context.",
        f"- The span processor's thread: {spans:.1f} µs of CPU a request, woken once a batch; its GIL handovers are "
        "rare at these rates. Receive wrapping and `http.disconnect`: timing wraps `receive` only for bodies of "
        "unknown length, none here. Logging: no record is made on a request's path. Request coalescing: an uncached "
        "URL is remembered as uncacheable (hit-for-miss), so concurrent requests for it neither wait nor take a "
        "lock; with no Redis they skip the fill step altogether.",
        "- Per-request bookkeeping (report, Server-Timing, route template) is a few µs; prometheus_client's "
        "histograms, gauge and counters (a lock per increment, 9 increments a request) about as much as the rest "
        "of timing. With several workers prometheus_client writes each increment to a memory-mapped file "
        "(multiprocess mode), under a lock: slipstream sums the request path's increments and writes them every "
        "0.1 s instead (`metrics_multiprocess_flush_interval`), 4 to 6 µs less a request in-process "
        "(bench_multiprocess_writes.py; under two workers on this machine the difference is within the run-to-run "
        "noise).",
        f"- The server's own share: {server_full - server_bare:+.1f} µs a request on {item} everything on against "
        "the bare app (h11 validates every response header slipstream adds: ETag, Server-Timing, X-Cache), though "
        "the bytes written are the same there.",
    ]
