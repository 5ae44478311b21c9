"""bench_multiprocess_writes.py's in-process part, run as a process of its own with PROMETHEUS_MULTIPROC_DIR set
(prometheus_client reads it at import): slipstream's whole stack (no tracer provider) writing each increment and
in batches, against the bare app, called directly in interleaved rounds. Prints, per route, each app's CPU µs per
request over the bare app's (medians over the rounds) as JSON.

    PROMETHEUS_MULTIPROC_DIR=DIR python bench/multiprocess_inprocess.py [rounds] [requests]
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import statistics
import sys
import time
from dataclasses import replace

from starlette.applications import Starlette
from starlette.types import ASGIApp, Message

import slipstream
from harness import request_scope
from telemetry_contenders import ITEM_PATH, PAGE_PATH
from telemetry_load_app import bare_app, serving_routes

EACH, BATCHED = "each increment written", "in batches every 0.1 s"


def stacked(interval: float) -> Starlette:
    app = Starlette(routes=serving_routes())
    settings = replace(slipstream.Settings.from_env(), metrics_port=None, report_enabled=True, tracing_enabled=False)
    slipstream.install(app, replace(settings, metrics_multiprocess_flush_interval=interval))
    return app


async def receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def discard(message: Message) -> None:
    return None


async def cpu_per_request(app: ASGIApp, path: str, requests: int) -> float:
    template = request_scope(path, "br")
    gc.collect()
    started = time.process_time()
    for _ in range(requests):
        await app({**template, "headers": list(template["headers"])}, receive, discard)
    return (time.process_time() - started) / requests * 1e6


async def measure(rounds: int, requests: int) -> dict[str, dict[str, float]]:
    apps: dict[str, ASGIApp] = {"bare": bare_app(), EACH: stacked(0.0), BATCHED: stacked(0.1)}
    overheads: dict[str, dict[str, float]] = {}
    for path in (ITEM_PATH, PAGE_PATH):
        for app in apps.values():
            await cpu_per_request(app, path, 50)  # fills the cache, binds the labelled children
        times: dict[str, list[float]] = {name: [] for name in apps}
        for round_index in range(rounds):
            names = list(apps)
            for name in [*names[round_index % 3 :], *names[: round_index % 3]]:
                times[name].append(await cpu_per_request(apps[name], path, requests))
        overheads[path] = {
            name: statistics.median(t - b for t, b in zip(times[name], times["bare"], strict=True))
            for name in (EACH, BATCHED)
        }
    return overheads


def main() -> None:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        raise SystemExit("PROMETHEUS_MULTIPROC_DIR must be set: this measures prometheus_client's multiprocess mode")
    rounds, requests = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) > 2 else (21, 400)
    print(json.dumps(asyncio.run(measure(rounds, requests))))


if __name__ == "__main__":
    main()
