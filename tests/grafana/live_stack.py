"""The demo app served two ways, and a bounded load on both: one uvicorn process with its own metrics port, and
``uvicorn --workers 2`` in multiprocess mode behind ``slipstream sidecar``; every process on a free loopback port.

The load makes every kind of series the dashboards read: successes, 5xx (a failing statement), cache misses and
hits, 304 and 412, compressed bodies, request bodies, slow statements, an N+1, @timed operations, and calls to the
demo's stand-in LLM API (tokens, cost, and a 503 every other round).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support import free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
# Upper bounds of the load, whatever the checks wait for.
MAX_ROUNDS = 300
MAX_SECONDS = 120.0
LOOPBACK = ("--host", "127.0.0.1")


@dataclass
class Served:
    """An app's base URL and the scrape target Prometheus reads its metrics from (its own port, or the sidecar)."""

    url: str
    metrics: str


@dataclass
class Stack:
    single: Served
    workers: Served
    processes: dict[str, tuple[subprocess.Popen[bytes], Path]] = field(default_factory=dict)

    def logs(self) -> str:
        return "\n".join(
            f"--- {name}\n{log.read_text(errors='replace')[-2000:]}" for name, (_, log) in self.processes.items()
        )


def port(number: int) -> tuple[str, str]:
    return ("--port", str(number))


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLIPSTREAM_", "PROMETHEUS_MULTIPROC_DIR"))}
    # This checkout's package and its examples/, whatever the environment's slipstream is.
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    # Statements of the demo's slow report (about 0.2 s) count as slow even on a fast machine.
    return {**env, "SLIPSTREAM_DB_SLOW_QUERY_THRESHOLD": "0.05", **extra}


def _wait_until_answered(url: str, process: subprocess.Popen[bytes], stack: Stack) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{url} did not answer 200 within {START_TIMEOUT:g} s (exit {process.poll()})\n{stack.logs()}")


@contextlib.contextmanager
def demo_stack(directory: Path) -> Iterator[Stack]:
    """Both ways of serving the demo, started and answering; every process stopped afterwards."""
    app, app_metrics, workers, sidecar = (free_port() for _ in range(4))
    multiproc = directory / "multiproc"
    multiproc.mkdir()
    commands: Mapping[str, tuple[list[str], dict[str, str]]] = {
        "single": (
            [sys.executable, "examples/demo_app.py", *LOOPBACK, *port(app)],
            _environment(SLIPSTREAM_METRICS_PORT=str(app_metrics), SLIPSTREAM_METRICS_HOST="127.0.0.1"),
        ),
        "workers": (
            [sys.executable, "-m", "uvicorn", "examples.demo_app:app", "--workers", "2", *LOOPBACK, *port(workers)],
            _environment(PROMETHEUS_MULTIPROC_DIR=str(multiproc)),
        ),
        "sidecar": (
            [sys.executable, "-m", "slipstream.cli", "sidecar", "--dir", str(multiproc), *LOOPBACK, *port(sidecar)],
            _environment(),
        ),
    }
    stack = Stack(
        Served(f"http://127.0.0.1:{app}", f"127.0.0.1:{app_metrics}"),
        Served(f"http://127.0.0.1:{workers}", f"127.0.0.1:{sidecar}"),
    )
    try:
        for name, (command, env) in commands.items():
            log = directory / f"{name}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
            stack.processes[name] = (process, log)
        _wait_until_answered(f"{stack.single.url}/logo.png", stack.processes["single"][0], stack)
        _wait_until_answered(f"http://{stack.single.metrics}/metrics", stack.processes["single"][0], stack)
        _wait_until_answered(f"{stack.workers.url}/logo.png", stack.processes["workers"][0], stack)
        _wait_until_answered(f"http://{stack.workers.metrics}/healthz", stack.processes["sidecar"][0], stack)
        yield stack
    finally:
        for process, _ in stack.processes.values():
            stop_process(process)


class Load(threading.Thread):
    """Rounds of requests on every app until ``stop()``, at most ``MAX_ROUNDS`` rounds and ``MAX_SECONDS``."""

    def __init__(self, urls: list[str]) -> None:
        super().__init__(name="grafana-live-load", daemon=True)
        self.urls = urls
        self.rounds = 0
        self.statuses: dict[int, int] = {}
        self.failures: list[str] = []
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(30)

    def run(self) -> None:
        clients = [httpx.Client(base_url=url, timeout=10) for url in self.urls]
        deadline = time.monotonic() + MAX_SECONDS
        try:
            while not self._halt.is_set() and self.rounds < MAX_ROUNDS and time.monotonic() < deadline:
                for client in clients:
                    self._round(client)
                self.rounds += 1
        finally:
            for client in clients:
                client.close()

    def _get(self, client: httpx.Client, method: str, path: str, **kwargs: object) -> httpx.Response | None:
        try:
            response = client.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as error:
            self.failures.append(f"{method} {client.base_url}{path}: {error!r}")
            return None
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        return response

    def _round(self, client: httpx.Client) -> None:
        self._get(client, "GET", "/", headers={"accept-encoding": "br"})
        items = self._get(client, "GET", "/api/items", headers={"accept-encoding": "gzip"})  # miss, then hits
        etag = items.headers.get("etag", "") if items is not None else ""
        self._get(client, "GET", "/api/items", headers={"if-none-match": etag, "accept-encoding": "gzip"})  # 304
        self._get(client, "PUT", "/notes/1", headers={"if-match": '"v0"'}, content=b"lost update")  # 412
        self._get(client, "PUT", "/notes/2", content=f"note {self.rounds}".encode())  # a request body
        self._get(client, "GET", "/authors")  # an N+1
        self._get(client, "GET", "/authors/eager")
        self._get(client, "GET", f"/quote/{self.rounds % 20}")  # @timed operations
        self._get(client, "GET", "/reports/broken")  # 500: a statement on a missing table
        self._get(client, "GET", "/logo.png")
        self._get(client, "GET", "/assistant", params={"q": f"round {self.rounds}"})  # an LLM call: tokens, cost
        if self.rounds % 2 == 0:
            self._get(client, "GET", "/assistant", params={"overloaded": "1"})  # the model's 503, the route's 502
        if self.rounds % 5 == 0:
            self._get(client, "GET", "/reports/slow")  # a slow statement
