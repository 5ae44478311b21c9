"""Test harnesses: a raw ASGI send-capture, an httpx client over ASGITransport, a real uvicorn server, stopping
server processes, and instrumentations of a test's own."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Message, Scope

from slipstream.config import Settings
from slipstream.exporters.otel import Telemetry
from slipstream.instrumentation import Instrumentation, enter_app, leave_app


@dataclass
class Captured:
    """Every message the app sent, in order, for message-level assertions."""

    messages: list[Message] = field(default_factory=list)

    @property
    def start(self) -> Message:
        return self.messages[0]

    @property
    def status(self) -> int:
        return int(self.start["status"])

    @property
    def headers(self) -> dict[str, str]:
        return {k.decode("latin-1"): v.decode("latin-1") for k, v in self.start.get("headers", [])}

    def header_list(self, name: str) -> list[str]:
        wanted = name.lower().encode()
        return [v.decode("latin-1") for k, v in self.start.get("headers", []) if k == wanted]

    @property
    def bodies(self) -> list[Message]:
        return [m for m in self.messages if m["type"] == "http.response.body"]

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.bodies)


def http_scope(method: str = "GET", path: str = "/", headers: Sequence[tuple[str, str]] = ()) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }


async def call_asgi(
    app: ASGIApp,
    method: str = "GET",
    path: str = "/",
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> Captured:
    """Drive ``app`` with one request and capture every message it sends."""
    captured = Captured()
    request_sent = False

    async def receive() -> Message:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        captured.messages.append(message)

    await app(http_scope(method, path, headers), receive, send)
    return captured


@contextlib.asynccontextmanager
async def asgi_client(app: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def run_uvicorn(app: ASGIApp, timeout: float = 10.0) -> Iterator[str]:
    """Serve ``app`` with a real uvicorn on a free loopback port in a thread; yields the base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout)


def stop_process(
    process: subprocess.Popen[bytes], timeout: float = 10.0, stop_signal: int = signal.SIGTERM
) -> int | None:
    """Ask ``process`` to stop with ``stop_signal``, SIGKILL it after ``timeout`` seconds; returns its exit status."""
    if process.poll() is None:
        process.send_signal(stop_signal)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
    return process.returncode


def instrumented(
    registry: CollectorRegistry | None = None, tracer_provider: TracerProvider | None = None, **settings: Any
) -> Instrumentation:
    """An Instrumentation on ``registry`` (a fresh one by default) with ``Settings(**settings)``. Spans go to
    ``tracer_provider``; without one none are made (whatever provider the process has)."""
    telemetry = Telemetry(tracer_provider) if tracer_provider is not None else Telemetry(enabled=False)
    return Instrumentation(Settings(**settings), registry=registry or CollectorRegistry(), telemetry=telemetry)


@contextlib.contextmanager
def running(instrumentation: Instrumentation) -> Iterator[Instrumentation]:
    """Code in the block runs for ``instrumentation``'s app, as code started by its lifespan does."""
    token = enter_app(instrumentation)
    try:
        yield instrumentation
    finally:
        leave_app(token)
