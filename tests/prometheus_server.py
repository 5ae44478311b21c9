"""A real Prometheus server (Debian's /usr/bin/prometheus) on a free loopback port, scraping its targets every second.

``run_prometheus_server("127.0.0.1:9464")`` starts it with its own temp dir (TSDB, config, log), exemplar storage
on, and yields a ``PrometheusServer`` whose ``query``, ``query_exemplars`` and ``wait_for`` go through the HTTP API.
``run_prometheus_server({"app": "127.0.0.1:9464", "workers": ...}, rule_files=[...])`` scrapes one job per target
and evaluates those rule files every ``interval`` too; ``rules()`` and ``alerts()`` read what they did.
Prometheus 2.42 hands new targets to its scrape loops on a fixed 5-second tick, so the first scrape comes about
5 s after the start whatever ``interval`` is; later ones follow every ``interval``.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.support import stop_process

__all__ = ["Exemplar", "PrometheusServer", "Sample", "run_prometheus_server"]

EXECUTABLE = "/usr/bin/prometheus"
JOB = "slipstream"
R = TypeVar("R")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector: the series' labels and its value (NaN and ±Inf included)."""

    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Exemplar:
    """One stored exemplar: the labels of the series it was scraped with, its own labels, value and time."""

    series: dict[str, str]
    labels: dict[str, str]
    value: float
    timestamp: float


def scrape_config(target: str | Mapping[str, str], interval: float, rule_files: Sequence[Path] = ()) -> dict[str, Any]:
    """The whole configuration: one job scraping ``target``'s /metrics (or one per job of a ``{job: target}``).

    Prometheus 2.42 (Debian 12) asks for OpenMetrics first in its Accept header on every scrape, and only
    the OpenMetrics parser reads exemplars; the ``scrape_protocols`` setting to make that explicit arrived
    in 2.49, and this version rejects unknown keys, so the default is relied on.
    """
    seconds = f"{interval:g}s"
    jobs = {JOB: target} if isinstance(target, str) else target
    config: dict[str, Any] = {
        "global": {"scrape_interval": seconds, "scrape_timeout": seconds, "evaluation_interval": seconds},
        "storage": {"exemplars": {"max_exemplars": 10_000}},
        "scrape_configs": [
            {"job_name": job, "metrics_path": "/metrics", "static_configs": [{"targets": [address]}]}
            for job, address in jobs.items()
        ],
    }
    if rule_files:
        config["rule_files"] = [str(path) for path in rule_files]
    return config


class PrometheusServer:
    """One Prometheus process and an HTTP client for its API; ``stop()`` ends both and removes the temp dir."""

    def __init__(
        self,
        executable: str,
        target: str | Mapping[str, str],
        interval: float = 1.0,
        port: int | None = None,
        rule_files: Sequence[Path] = (),
    ) -> None:
        self.executable = executable
        self.target = target
        self.interval = interval
        self.rule_files = rule_files
        self.port = port if port is not None else _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.directory = Path(tempfile.mkdtemp(prefix="slipstream-prometheus-"))
        self.log_path = self.directory / "prometheus.log"
        self.client = httpx.Client(base_url=self.url, timeout=5.0)
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> None:
        assert self._process is None, "already started"
        config = self.directory / "prometheus.yml"
        # JSON is YAML: no quoting rules to get wrong.
        config.write_text(json.dumps(scrape_config(self.target, self.interval, self.rule_files), indent=2))
        command = [
            self.executable,
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--storage.tsdb.path={self.directory / 'data'}",
            "--storage.tsdb.retention.time=1h",
            "--enable-feature=exemplar-storage",
        ]
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._process.poll() is None:
            if self._is_ready():
                return
            time.sleep(0.05)
        exited = self._process.poll()
        log_text = self.log()
        self.stop()
        pytest.fail(f"prometheus on port {self.port} was not ready within {timeout}s (exit {exited}):\n{log_text}")

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_process(process, timeout)
        self.client.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def log(self, limit: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def api(self, path: str, **params: str) -> Any:
        """The ``data`` of a successful API answer; a failed one fails the test with Prometheus' error."""
        response = self.client.get(f"/api/v1/{path}", params=params)
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            pytest.fail(f"prometheus {path} {params} answered {response.status_code}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[Sample]:
        """An instant query evaluated now; its result must be an instant vector."""
        data = self.api("query", query=expr)
        if data["resultType"] != "vector":
            pytest.fail(f"{expr} gave a {data['resultType']}, not a vector: {data['result']}")
        return [Sample(item["metric"], float(item["value"][1])) for item in data["result"]]

    def query_exemplars(self, expr: str, since: float = 600.0) -> list[Exemplar]:
        """Exemplars of the series ``expr`` selects, from the last ``since`` seconds."""
        now = time.time()
        data = self.api("query_exemplars", query=expr, start=f"{now - since:.3f}", end=f"{now + 60:.3f}")
        return [
            Exemplar(series["seriesLabels"], exemplar["labels"], float(exemplar["value"]), float(exemplar["timestamp"]))
            for series in data
            for exemplar in series["exemplars"]
        ]

    def rules(self) -> list[dict[str, Any]]:
        """Every rule of every group, as /api/v1/rules shows it (health, lastError, state, alerts)."""
        return [rule for group in self.api("rules")["groups"] for rule in group["rules"]]

    def alerts(self) -> list[dict[str, Any]]:
        """The pending and firing alerts."""
        active: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return active

    def targets(self) -> list[dict[str, Any]]:
        """The active targets with their health and last scrape error, for failure messages."""
        active: list[dict[str, Any]] = self.api("targets", state="active")["activeTargets"]
        return active

    def wait_for(self, expr: str, predicate: Callable[[list[Sample]], bool], timeout: float = 20.0) -> list[Sample]:
        """Query ``expr`` until ``predicate`` holds of the result (returned); fail after ``timeout`` seconds."""
        return self._poll(expr, lambda: self.query(expr), predicate, timeout)

    def wait_for_exemplars(
        self, expr: str, predicate: Callable[[list[Exemplar]], bool], timeout: float = 20.0
    ) -> list[Exemplar]:
        """``query_exemplars(expr)`` until ``predicate`` holds of the result (returned); fail after ``timeout``."""
        return self._poll(expr, lambda: self.query_exemplars(expr), predicate, timeout)

    def _poll(self, expr: str, fetch: Callable[[], R], predicate: Callable[[R], bool], timeout: float) -> R:
        poll = 0.2
        deadline = time.monotonic() + timeout
        for _ in range(math.ceil(timeout / poll) + 1):
            result = fetch()
            if predicate(result):
                return result
            if time.monotonic() > deadline:
                break
            time.sleep(poll)
        targets = [{k: t.get(k) for k in ("scrapeUrl", "health", "lastError")} for t in self.targets()]
        pytest.fail(f"{expr} still gave {result} after {timeout}s; targets: {targets}\n{self.log()}")

    def _is_ready(self) -> bool:
        try:
            return self.client.get("/-/ready", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False


@contextlib.contextmanager
def run_prometheus_server(
    target: str | Mapping[str, str], interval: float = 1.0, rule_files: Sequence[Path] = ()
) -> Iterator[PrometheusServer]:
    """A ready Prometheus scraping ``target`` ("127.0.0.1:port", or ``{job: address}``) every ``interval`` seconds and
    evaluating ``rule_files`` as often, stopped afterwards."""
    if shutil.which(EXECUTABLE) is None:
        pytest.fail(f"{EXECUTABLE} is missing: run scripts/install-system-deps.sh (Debian's prometheus package)")
    server = PrometheusServer(EXECUTABLE, target, interval, rule_files=rule_files)
    try:
        server.start()
        yield server
    finally:
        server.stop()
