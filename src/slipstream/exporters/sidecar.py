"""The ``slipstream sidecar`` server: one /metrics for every worker process, merged from prometheus_client's files.

With several worker processes (``uvicorn --workers N``, gunicorn) a scrape of one worker would see that worker
only. In multiprocess mode prometheus_client writes every value to memory-mapped files in
``PROMETHEUS_MULTIPROC_DIR`` instead; the sidecar, a process of its own, merges them with ``MultiProcessCollector``
at each scrape and serves the sums on its own port, next to a /healthz for the orchestrator and the live page (at
/, computed from the same merged files, with its history kept by the sidecar).

Setting it up:

- ``PROMETHEUS_MULTIPROC_DIR`` must be in the workers' environment before they import prometheus_client, which
  picks its value store at import; set it in the shell or the unit file, not in the app's code.
- Empty the directory before the workers start: files left by an earlier run would be added to this run's counters.
- The workers do not serve /metrics themselves (``metrics_port=None``): the sidecar does.

What multiprocess mode cannot carry:

- Exemplars: prometheus_client ignores them in multiprocess mode, so OpenMetrics scrapes have no trace ids.
- Gauges are merged only as their declared ``multiprocess_mode``; ``http_server_active_requests`` is ``livesum``,
  the sum over the workers still alive. Any other reading (per worker, max) is not available.
- The per-worker ``process_*`` and ``python_*`` collectors: they describe the process serving the scrape, so the
  sidecar's registry holds the merged files and ``slipstream_sidecar_workers`` (the live workers) only.
  ``*_created`` samples are not written either.

Dead workers: every ``cleanup_interval`` seconds, and before each scrape, the pids named in the file names
(``counter_1234.db``, ``gauge_livesum_1234.db``) whose process is gone are given to ``mark_process_dead``. It
removes only their live gauges, so a crashed worker's requests stop counting as in flight. Their counter and
histogram files are kept on purpose: dropping them would make the merged counters go down, which Prometheus reads
as a reset and which loses those requests from every rate. They go when the directory is emptied at the next start.
"""

from __future__ import annotations

import glob
import http
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any
from wsgiref.simple_server import make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from slipstream.exporters.live.history import History
from slipstream.exporters.live.view import LiveView
from slipstream.exporters.live.web import LivePage
from slipstream.exporters.prometheus import MetricsAccess, QuietHandler, WSGIApp, wsgi_refusal

logger = logging.getLogger(__name__)

DEFAULT_CLEANUP_INTERVAL = 5.0
# prometheus_client names its files "<type>_<pid>.db", gauges "gauge_<mode>_<pid>.db".
_PID_IN_FILE_NAME = re.compile(r"_([0-9]{1,10})\.db\Z")
# os.kill takes a C int; a larger "pid" is no process.
_MAX_PID = 2**31 - 1


def worker_files(directory: str) -> dict[int, list[str]]:
    """The file names in ``directory`` by the worker pid they name; files named otherwise are left out."""
    found: dict[int, list[str]] = {}
    for path in glob.glob(os.path.join(glob.escape(directory), "*.db")):
        name = os.path.basename(path)
        match = _PID_IN_FILE_NAME.search(name)
        if match and 0 < int(match[1]) <= _MAX_PID:
            found.setdefault(int(match[1]), []).append(name)
    return found


def process_exists(pid: int) -> bool:
    """Whether ``pid`` is a process (a zombie not yet reaped by its parent counts as one)."""
    try:
        os.kill(pid, 0)
    except OSError as error:
        # EPERM: it exists but belongs to another user.
        return isinstance(error, PermissionError)
    return True


def _answer(
    start_response: Callable[..., Any],
    status: int,
    body: bytes,
    content_type: str = "text/plain; charset=utf-8",
    extra: Sequence[tuple[str, str]] = (),
) -> list[bytes]:
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), *extra]
    start_response(f"{status} {http.HTTPStatus(status).phrase}", headers)
    return [body]


class LiveWorkers(Collector):
    """``slipstream_sidecar_workers``: the worker processes alive now, so an alert can tell a host whose workers all
    died from one whose sidecar is down (then ``up`` is 0)."""

    def __init__(self, sidecar: Sidecar) -> None:
        self.sidecar = sidecar

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "slipstream_sidecar_workers",
            "Worker processes writing to the multiprocess directory that are alive.",
            value=len(self.sidecar.live_workers()),
        )


class Sidecar:
    """Merged metrics of the workers writing to ``directory``, on their own port; dead workers' live gauges removed.

    ``start()`` serves from daemon threads (``with Sidecar(...)`` starts and stops it); ``serve_forever()`` blocks
    until ``request_stop()``. One use only: a stopped sidecar is not started again.
    """

    def __init__(
        self,
        directory: str,
        port: int = 9464,
        host: str = "127.0.0.1",
        *,
        bearer_token: str | None = None,
        allow_networks: Sequence[str] = (),
        cleanup_interval: float = DEFAULT_CLEANUP_INTERVAL,
        live: bool = True,
        history_interval: float = 60.0,
    ) -> None:
        if not os.path.isdir(directory):
            raise ValueError(f"the multiprocess directory {directory!r} is not a directory")
        if not cleanup_interval > 0:
            raise ValueError(f"cleanup_interval must be above 0, got {cleanup_interval}")
        self.directory = directory
        self.cleanup_interval = cleanup_interval
        self.access = MetricsAccess(bearer_token, allow_networks)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        registry.register(LiveWorkers(self))
        self.exposition: WSGIApp = make_wsgi_app(registry)
        self.history: History | None = None
        self.live: LivePage | None = None
        if live:
            self.history = History(registry.collect, interval=history_interval)
            view = LiveView(self.history, source="sidecar", extras=lambda: {"workers": len(self.live_workers())})
            self.live = LivePage(view, self.access)
        self._cleanup_lock = threading.Lock()
        self._stopping = threading.Event()
        self._started = False
        self.httpd = make_server(host, port, self.app, ThreadingWSGIServer, handler_class=QuietHandler)
        self.port = int(self.httpd.server_port)
        self.url = f"http://{host}:{self.port}"
        self._threads = [
            threading.Thread(target=self.httpd.serve_forever, name="slipstream-sidecar", daemon=True),
            threading.Thread(target=self._clean_periodically, name="slipstream-sidecar-cleanup", daemon=True),
        ]

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """The WSGI app: GET /metrics, GET /healthz and the live page; 404 elsewhere."""
        path = environ.get("PATH_INFO", "")
        if self.live is not None and path in self.live.paths:
            return self.live.wsgi(environ, start_response)
        if path not in ("/metrics", "/healthz"):
            return _answer(start_response, 404, b"404 Not Found: the sidecar serves /metrics, /healthz and /\n")
        if environ["REQUEST_METHOD"] != "GET":
            return _answer(start_response, 405, b"405 Method Not Allowed: use GET\n", extra=[("Allow", "GET")])
        if path == "/metrics":
            refusal = self.access.wsgi_verdict(environ)
            if refusal is not None:
                return wsgi_refusal(refusal, start_response)
        if not os.path.isdir(self.directory):
            return self._unavailable(start_response, path, f"the multiprocess directory {self.directory} is missing")
        if path == "/healthz":
            body = json.dumps({"status": "ok", "workers": len(self.live_workers())}).encode()
            return _answer(start_response, 200, body, "application/json")
        self.remove_dead_workers()
        try:
            # The exposition merges the files before it calls start_response, so a failure can still be answered.
            return self.exposition(environ, start_response)
        except Exception as error:
            logger.exception("slipstream sidecar: could not merge the files in %s", self.directory)
            reason = f"could not merge the multiprocess files in {self.directory}: {error!r}"
            return self._unavailable(start_response, path, reason)

    @staticmethod
    def _unavailable(start_response: Callable[..., Any], path: str, reason: str) -> list[bytes]:
        if path == "/healthz":
            return _answer(start_response, 503, json.dumps({"status": reason}).encode(), "application/json")
        return _answer(start_response, 503, f"503 Service Unavailable: {reason}\n".encode())

    def live_workers(self) -> list[int]:
        """The pids with files in the directory whose process still exists."""
        return sorted(pid for pid in worker_files(self.directory) if process_exists(pid))

    def remove_dead_workers(self) -> list[int]:
        """Give each gone process that still has live gauges to ``mark_process_dead``; returns their pids.

        Only ``gauge_live*`` files are removed: counters and histograms of dead workers stay in the sums.
        """
        removed: list[int] = []
        with self._cleanup_lock:
            for pid, names in sorted(worker_files(self.directory).items()):
                if process_exists(pid) or not any(name.startswith("gauge_live") for name in names):
                    continue
                try:
                    mark_process_dead(pid, self.directory)  # type: ignore[no-untyped-call]
                except OSError as error:
                    logger.warning(
                        "slipstream sidecar: could not remove the live gauges of dead pid %d: %s", pid, error
                    )
                else:
                    removed.append(pid)
        return removed

    def _clean_periodically(self) -> None:
        while not self._stopping.wait(self.cleanup_interval):
            self.remove_dead_workers()

    def start(self) -> Sidecar:
        """Serve and clean up from daemon threads; returns self."""
        self._started = True
        if self.history is not None:
            self.history.start()
        for thread in self._threads:
            thread.start()
        return self

    def request_stop(self) -> None:
        """Make ``serve_forever`` return; safe to call from a signal handler."""
        self._stopping.set()

    def serve_forever(self) -> None:
        """Serve until ``request_stop()`` is called (the CLI calls it on SIGTERM and SIGINT), then stop."""
        self.start()
        try:
            self._stopping.wait()
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop serving and cleaning up, and close the listening socket."""
        self._stopping.set()
        if self.history is not None:
            self.history.stop()
        if self._started:
            self.httpd.shutdown()
            for thread in self._threads:
                thread.join(5)
        self.httpd.server_close()

    def __enter__(self) -> Sidecar:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
