"""Real uvicorn servers for bench_load.py and bench_profile.py: started on free loopback ports, waited for, stopped
with SIGTERM; with several workers, in prometheus_client's multiprocess mode with a `slipstream sidecar` each."""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from load_runs import Run, parse_wrk

BENCH = Path(__file__).resolve().parent
START_TIMEOUT, STOP_TIMEOUT = 20.0, 10.0


@dataclass
class Server:
    """One uvicorn process (and its workers) serving one app factory; its output goes to ``log``. With a sidecar,
    ``sidecar_port`` serves the workers' merged metrics."""

    factory: str
    port: int
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    sidecar_port: int | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def cpu_seconds(self) -> float:
        """User and system CPU time the process and its worker processes have used so far (Linux /proc)."""
        total, pids = 0.0, [self.process.pid]
        while pids:
            pid = pids.pop()
            with contextlib.suppress(OSError):  # a process that ended meanwhile
                total += _cpu_seconds(Path(f"/proc/{pid}/stat"))
                for task in Path(f"/proc/{pid}/task").iterdir():
                    pids += [int(child) for child in (task / "children").read_text().split()]
        return total

    def thread_cpu_seconds(self) -> tuple[float, float]:
        """CPU time so far of the process's main thread (the event loop's), and of all its other threads."""
        main = others = 0.0
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                if task.name == str(self.process.pid):
                    main = _cpu_seconds(task / "stat")
                else:
                    others += _cpu_seconds(task / "stat")
        return main, others

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")


def _cpu_seconds(stat: Path) -> float:
    fields = stat.read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def fetch_http(server: Server, path: str) -> tuple[int, dict[str, str]]:
    """A GET with Accept-Encoding: br: the status and the headers (names lower-cased); the body is read and dropped."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        connection.request("GET", path, headers={"Accept-Encoding": "br"})
        response = connection.getresponse()
        response.read()
        return response.status, {name.lower(): value for name, value in response.getheaders()}
    finally:
        connection.close()


def uvicorn_command(factory: str, port: int, workers: int = 1) -> list[str]:
    """``python -m uvicorn ...``; with several workers through bench/uvicorn_nodelay.py (uvicorn issue 3149)."""
    program = ["-m", "uvicorn"] if workers == 1 else [str(BENCH / "uvicorn_nodelay.py")]
    command = [sys.executable, *program, "--factory", "--app-dir", str(BENCH), factory, "--host", "127.0.0.1"]
    command += ["--port", str(port), "--loop", "asyncio", "--http", "h11", "--no-access-log", "--log-level", "warning"]
    return [*command, "--workers", str(workers)] if workers > 1 else command


def start(
    factory: str,
    log: IO[bytes],
    workers: int = 1,
    multiproc_dir: str | None = None,
    source: str | None = None,
    environment: Mapping[str, str] | None = None,
) -> Server:
    """uvicorn serving ``factory``; ``source``: a directory to import slipstream from instead (PYTHONPATH);
    ``environment``: variables added to this process's for it."""
    port = free_port()
    env = {**os.environ, **(environment or {})}
    if multiproc_dir:
        env["PROMETHEUS_MULTIPROC_DIR"] = multiproc_dir
    if source:
        env["PYTHONPATH"] = source
    process = subprocess.Popen(uvicorn_command(factory, port, workers), stdout=log, stderr=subprocess.STDOUT, env=env)
    return Server(factory, port, process, log)


def start_sidecar(multiproc_dir: str, log: IO[bytes]) -> tuple[subprocess.Popen[bytes], int]:
    """`slipstream sidecar` (as ``python -m slipstream.cli``) over ``multiproc_dir`` on a free port."""
    port = free_port()
    command = [sys.executable, "-m", "slipstream.cli", "sidecar", "--dir", multiproc_dir, "--host", "127.0.0.1"]
    process = subprocess.Popen([*command, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    return process, port


def scrape(port: int) -> str:
    """The text of ``/metrics`` on ``port``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        return connection.getresponse().read().decode()
    finally:
        connection.close()


def wait_until_serving(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"uvicorn for {server.factory} exited with {server.process.returncode}:\n{server.output()}"
            )
        with contextlib.suppress(OSError):
            fetch_http(server, "/")
            return
        time.sleep(0.1)
    raise RuntimeError(f"uvicorn for {server.factory} did not answer on port {server.port}:\n{server.output()}")


def stop(server: Server) -> None:
    """SIGTERM (uvicorn's graceful shutdown, lifespan included), then SIGKILL if it has not exited in time."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=STOP_TIMEOUT)


@contextlib.contextmanager
def running_servers(
    factories: Mapping[str, str], workers: int = 1, sidecars: Collection[str] = ()
) -> Iterator[dict[str, Server]]:
    """One serving uvicorn per named factory (``module:function`` in bench/), all stopped on exit. With several
    ``workers``, each server writes its metrics to a multiprocess directory of its own, and those named in
    ``sidecars`` get a `slipstream sidecar` serving them."""
    servers: dict[str, Server] = {}
    sidecar_processes: list[subprocess.Popen[bytes]] = []
    with contextlib.ExitStack() as stack:
        try:
            for name, factory in factories.items():
                log = stack.enter_context(tempfile.TemporaryFile())
                directory = stack.enter_context(tempfile.TemporaryDirectory()) if workers > 1 else None
                servers[name] = start(factory, log, workers, directory)
                if directory is not None and name in sidecars:
                    sidecar, servers[name].sidecar_port = start_sidecar(directory, log)
                    sidecar_processes.append(sidecar)
            for server in servers.values():
                wait_until_serving(server)
            yield servers
        finally:
            for server in servers.values():
                stop(server)
            for sidecar in sidecar_processes:
                sidecar.terminate()
                sidecar.wait(timeout=STOP_TIMEOUT)


def wrk_load(server: Server, run: Run, seconds: int) -> None:
    """``wrk -t2 -c32`` on ``run``'s route for ``seconds`` (br accepted); its figures and the server's CPU µs per
    request go to ``run``."""
    command = ["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", "-H", "Accept-Encoding: br", server.url(run.route)]
    cpu_before = server.cpu_seconds()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    run.cpu.append((server.cpu_seconds() - cpu_before) / parse_wrk(done.stdout, run) * 1e6)


def load_in_rounds(running: Mapping[str, Server], runs: list[Run], rounds: int, seconds: int) -> None:
    """Each run's server warmed (three requests of its route: a page's cache filled in each worker, most likely),
    then `wrk_load` on every run once a round, in an order rotated each round; a server that logged a traceback
    fails the benchmark."""
    for run in runs:
        for _ in range(3):
            fetch_http(running[run.app], run.route)
    for round_index in range(rounds):
        shift = round_index % len(runs)
        for run in [*runs[shift:], *runs[:shift]]:
            wrk_load(running[run.app], run, seconds)
        print(f"round {round_index + 1}/{rounds} done", file=sys.stderr)
    for name, server in running.items():
        if "Traceback" in server.output():
            raise RuntimeError(f"{name} failed under load:\n{server.output()}")
