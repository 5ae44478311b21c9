"""Real uvicorn servers for bench_load.py: started on free loopback ports, waited for, stopped with SIGTERM."""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

BENCH = Path(__file__).resolve().parent
START_TIMEOUT, STOP_TIMEOUT = 20.0, 10.0


@dataclass
class Server:
    """One uvicorn process serving one app factory; its output goes to ``log``."""

    factory: str
    port: int
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def cpu_seconds(self) -> float:
        """User and system CPU time the process has used so far (Linux /proc)."""
        return _cpu_seconds(Path(f"/proc/{self.process.pid}/stat"))

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


def start(factory: str, log: IO[bytes]) -> Server:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--factory", "--app-dir", str(BENCH), factory, "--host", "127.0.0.1"]
    command += ["--port", str(port), "--loop", "asyncio", "--http", "h11", "--no-access-log", "--log-level", "warning"]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    return Server(factory, port, process, log)


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
def running_servers(factories: Mapping[str, str]) -> Iterator[dict[str, Server]]:
    """One serving uvicorn per named factory (``module:function`` in bench/), all stopped on exit."""
    servers: dict[str, Server] = {}
    with contextlib.ExitStack() as stack:
        try:
            for name, factory in factories.items():
                log = stack.enter_context(tempfile.TemporaryFile())
                servers[name] = start(factory, log)
            for server in servers.values():
                wait_until_serving(server)
            yield servers
        finally:
            for server in servers.values():
                stop(server)
