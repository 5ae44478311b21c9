"""The HTTP cache conformance suite for bench_conformance.py: installed, described, its origin server and a proxy
under test started on loopback ports, its CLI client run against the proxy. Every wait is bounded.

The suite (http-tests/cache-tests, the one behind cache-tests.fyi) is vendored in bench/conformance/cache-tests/ at
SUITE_COMMIT with the published results of that commit: its npm release is much older than the results (see
bench/conformance/README.md). The one package its client needs, undici, comes from the npm registry, pinned by
bench/conformance/package-lock.json and installed with ``npm ci`` into the git-ignored bench/conformance/node_modules.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from conformance_proxy import ORIGIN_VARIABLE

BENCH = Path(__file__).resolve().parent
SUITE = BENCH / "conformance"
SUITE_COMMIT = "b55b8bda3dbb8c927c04e85bd8d496a8caa3e4ba"
NODE_MAJOR_MINIMUM = 20
INSTALL_TIMEOUT, DESCRIBE_TIMEOUT, START_TIMEOUT, STOP_TIMEOUT = 300.0, 60.0, 20.0, 10.0
# The client runs 25 tests at a time, each request given up after 10 s; the whole suite takes about a minute.
CLIENT_TIMEOUT = 900.0
# Each run's result: True for a pass, else [error name, message], as the suite's CLI prints them.
Results = dict[str, Any]


def require_node() -> str:
    """node's version; exits with a message if node or npm is missing or too old."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise SystemExit("node and npm are not on PATH; install Node.js 20 or newer to run the conformance suite")
    version = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True, timeout=30).stdout
    if int(version.strip().lstrip("v").split(".")[0]) < NODE_MAJOR_MINIMUM:
        raise SystemExit(f"node {version.strip()} is too old: the suite's client needs Node.js 20 or newer")
    return version.strip()


def install_client_packages() -> None:
    """``npm ci`` in bench/conformance/, unless node_modules already holds exactly what the lock file pins."""
    lock = json.loads((SUITE / "package-lock.json").read_text())
    installed = SUITE / "node_modules" / ".package-lock.json"
    pinned = {path: entry for path, entry in lock["packages"].items() if path}
    if installed.exists() and json.loads(installed.read_text()).get("packages") == pinned:
        return
    print("npm ci in bench/conformance", file=sys.stderr)
    command = ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"]
    subprocess.run(command, cwd=SUITE, check=True, timeout=INSTALL_TIMEOUT, stdout=sys.stderr)


def describe_suite() -> dict[str, Any]:
    """The suite's areas with their tests (id, kind, name, spec anchors) and the published results' versions."""
    command = ["node", "--no-warnings", "describe.mjs"]
    output = subprocess.run(command, cwd=SUITE, capture_output=True, text=True, check=True, timeout=DESCRIBE_TIMEOUT)
    description: dict[str, Any] = json.loads(output.stdout)
    return description


def published_results(file: str) -> Results:
    results: Results = json.loads((SUITE / "cache-tests" / "results" / file).read_text())
    return results


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass
class Server:
    """A process listening on a loopback port; its output goes to ``log``."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def wait_until_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.output()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not listen on port {self.port} in {START_TIMEOUT:.0f} s:\n{self.output()}")

    def stop(self) -> None:
        """SIGTERM (uvicorn's graceful shutdown), then SIGKILL if it has not exited in time."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)


@contextlib.contextmanager
def serving(name: str, command: list[str], port: int, env: dict[str, str], cwd: Path) -> Iterator[Server]:
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, cwd=cwd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
        server = Server(name, port, process, log)
        try:
            server.wait_until_listening()
            yield server
        finally:
            server.stop()


@contextlib.contextmanager
def origin_server() -> Iterator[Server]:
    """The suite's test server (bench/conformance/origin.mjs) on a free loopback port."""
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        # The settings `npm run server --port=N` would pass; the server writes its pid file where it is told.
        env = {"npm_config_protocol": "http", "npm_config_port": str(port), "npm_config_pidfile": f"{directory}/pid"}
        with serving("the suite's origin server", ["node", "origin.mjs"], port, env, SUITE) as server:
            yield server


@contextlib.contextmanager
def proxy_server(factory: str, origin: Server) -> Iterator[Server]:
    """uvicorn serving ``conformance_proxy:<factory>`` on a free loopback port, forwarding to ``origin``.

    uvicorn's own Date and Server fields are off: it would send its Date next to the one the app passes on (it does
    not look whether the app sent one), and the fields a proxy forwards are the origin's."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--factory", "--app-dir", str(BENCH), f"conformance_proxy:{factory}"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--loop", "asyncio", "--http", "h11"]
    command += ["--no-access-log", "--log-level", "warning", "--no-date-header", "--no-server-header"]
    with serving(f"uvicorn {factory}", command, port, {ORIGIN_VARIABLE: origin.url}, BENCH.parent) as server:
        yield server


def run_client(base_url: str, test_id: str = "") -> tuple[Results, str]:
    """The suite's CLI client against ``base_url``: every test (its JSON results) or, given ``test_id``, that test
    alone with the requests and responses the client and the origin saw (printed, not parsed: empty results)."""
    command = ["node", "--no-warnings", "cache-tests/test-engine/cli.mjs"]
    # What `npm run cli --base=URL --id=ID` would pass; an empty id is every test.
    env = {**os.environ, "npm_config_base": base_url, "npm_config_id": test_id, "npm_package_config_id": test_id}
    try:
        done = subprocess.run(command, cwd=SUITE, env=env, capture_output=True, text=True, timeout=CLIENT_TIMEOUT)
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"the suite's client did not finish in {CLIENT_TIMEOUT:.0f} s") from error
    if done.returncode != 0:
        raise RuntimeError(f"the suite's client exited with {done.returncode}:\n{done.stderr[-4000:]}")
    if test_id:
        return {}, done.stdout
    results: Results = json.loads(done.stdout)
    return results, done.stderr
