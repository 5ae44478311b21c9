"""The apps bench_profile.py runs under uvicorn (``--factory --app-dir bench``): bench_load.py's, each behind a path
that answers the worker's garbage-collector counts, so that a load's collections can be read from outside."""

from __future__ import annotations

import gc
import json
import time
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

import telemetry_load_app

GC_PATH = "/_profile/gc"


class GcWatch:
    """Counts the collections of each generation and the CPU time spent in them (the thread that ran each) since start;
    answers ``GC_PATH`` with them as JSON, and hands every other request to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.collections = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0
        gc.callbacks.append(self._on_collection)

    def _on_collection(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.thread_time()
            return
        generation = info["generation"]
        self.collections[generation] += 1
        self.seconds[generation] += time.thread_time() - self._started

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != GC_PATH:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"collections": self.collections, "seconds": self.seconds}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def bare_app() -> GcWatch:
    return GcWatch(telemetry_load_app.bare_app())


def floor_app() -> GcWatch:
    return GcWatch(telemetry_load_app.floor_app())


def metrics_app() -> GcWatch:
    return GcWatch(telemetry_load_app.metrics_app())


def full_app() -> GcWatch:
    return GcWatch(telemetry_load_app.full_app())
