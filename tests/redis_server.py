"""A real redis-server on a free loopback port in a temp dir, which tests can stop and restart on the same port."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.support import stop_process

__all__ = ["RedisServer", "run_redis_server"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process; `stop()`, `restart()`, `pause()` and `resume()` exist for fault tests."""

    def __init__(
        self, executable: str, directory: Path, port: int | None = None, extra_arguments: Sequence[str] = ()
    ) -> None:
        self.executable = executable
        self.directory = directory
        self.extra_arguments = tuple(extra_arguments)
        self.port = port if port is not None else _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        assert self._process is None, "already started"
        command = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", str(self.directory), "--daemonize", "no"]
        command += ["--logfile", str(self.directory / "redis.log"), *self.extra_arguments]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if self._answers_ping():
                return
            time.sleep(0.01)
        log = (
            (self.directory / "redis.log").read_text(errors="replace")
            if (self.directory / "redis.log").exists()
            else ""
        )
        self.stop()
        pytest.fail(f"redis-server on port {self.port} did not answer PING within {timeout}s:\n{log[-2000:]}")

    def stop(self, timeout: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.send_signal(signal.SIGCONT)  # a paused server would not act on SIGTERM
            stop_process(process, timeout)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open, commands wait unanswered until `resume()`."""
        assert self._process is not None, "not started"
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._process is not None, "not started"
        self._process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False


@contextlib.contextmanager
def run_redis_server(directory: Path) -> Iterator[RedisServer]:
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.fail("redis-server is missing: run make test, which installs it")
    server = RedisServer(executable, directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
