"""A real uvicorn on a loopback port, decoded by real clients: curl, headless Chromium, and a socket-level stream."""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import anyio.to_thread
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slipstream import CompressionMiddleware, ConditionalMiddleware
from tests.middleware.apps import StreamDecoder
from tests.support import run_uvicorn

CODINGS = ("br", "gzip", "zstd")
_rng = random.Random(2026)
DATA = "\n".join(
    f"{i:05d} {' '.join(_rng.choice(['alpha', 'beta', 'gamma', 'délta', 'ε', '🚀', 'zeta']) for _ in range(12))}"
    for i in range(1500)
)

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>pending</title></head><body>
<pre id="log"></pre>
<script>
(async () => {
  for (const coding of ["br", "gzip", "zstd"]) {
    const response = await fetch(`/${coding}/data`, {cache: "no-store"});
    const text = await response.text();
    await fetch(`/report/${coding}`, {method: "POST", body: text});
    document.getElementById("log").textContent += `${coding}:${text.length}\\n`;
  }
  document.title = "done";
})();
</script>
</body></html>
"""


class EncodingRecorder:
    """Remembers the Content-Encoding each response really went out with."""

    def __init__(self, app: ASGIApp, seen: dict[str, str]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def record(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = dict(message["headers"])
                self.seen[scope["root_path"]] = headers.get(b"content-encoding", b"identity").decode()
            await send(message)

        await self.app(scope, receive, record)


def decoding_app() -> tuple[Starlette, dict[str, str], dict[str, str]]:
    """/br, /gzip and /zstd each serve DATA with exactly one coding; /report collects what a browser decoded."""
    reports: dict[str, str] = {}
    seen: dict[str, str] = {}

    async def data(request: Request) -> Response:
        return PlainTextResponse(DATA)

    async def report(request: Request) -> Response:
        reports[request.path_params["coding"]] = (await request.body()).decode()
        return PlainTextResponse("thanks")

    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE)

    data_app = Starlette(routes=[Route("/data", data)])
    mounts = [
        Mount(f"/{coding}", EncodingRecorder(CompressionMiddleware(data_app, encodings=(coding,)), seen))
        for coding in CODINGS
    ]
    routes = [Route("/", page), Route("/report/{coding}", report, methods=["POST"]), *mounts]
    return Starlette(routes=routes), reports, seen


def require_program(name: str) -> str:
    """A missing system program fails the run: `make test` installs it from Debian's packages."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: run `make test`, which installs it")
    return path


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_program("chromium")


@pytest.fixture(scope="module")
def curl() -> str:
    return require_program("curl")


@pytest.mark.parametrize("coding", CODINGS)
def test_curl_decodes_each_coding(curl: str, coding: str) -> None:
    app, _, seen = decoding_app()
    with run_uvicorn(app) as base, tempfile.TemporaryDirectory() as tmp:
        header_file = Path(tmp) / "headers"
        output = subprocess.run(
            [
                curl,
                "--silent",
                "--show-error",
                "--compressed",
                "--dump-header",
                str(header_file),
                f"{base}/{coding}/data",
            ],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
        headers = header_file.read_text().lower()
    assert f"content-encoding: {coding}" in headers
    assert seen[f"/{coding}"] == coding
    assert output.decode() == DATA


@pytest.mark.browser
def test_chromium_decodes_br_gzip_and_zstd(chromium: str) -> None:
    app, reports, seen = decoding_app()
    with run_uvicorn(app) as base, tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=15000",
                "--dump-dom",
                f"{base}/",
            ],
            capture_output=True,
            text=True,
            timeout=90,
        ).stdout
        deadline = time.monotonic() + 30
        while len(reports) < len(CODINGS) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert "<title>done</title>" in dom
    assert seen == {f"/{coding}": coding for coding in CODINGS}
    for coding in CODINGS:
        assert reports[coding] == DATA, coding


def gated_stream_app(chunks: list[bytes], gates: list[threading.Event], content_type: str) -> ASGIApp:
    """Streams chunk N+1 only once the client has decoded chunk N: a buffering middleware would hang it."""

    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type.encode())]}
        )
        for chunk, gate in zip(chunks, gates, strict=True):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if not await anyio.to_thread.run_sync(gate.wait, 10):
                raise RuntimeError("the client never decoded the chunk")
        await send({"type": "http.response.body", "body": b""})

    return stream


@pytest.mark.parametrize(
    ("content_type", "event_stream", "expected_coding"),
    [
        ("text/plain", False, "br"),
        ("text/event-stream", False, None),
        ("text/event-stream", True, "br"),
    ],
)
def test_streams_reach_the_client_chunk_by_chunk(
    content_type: str, event_stream: bool, expected_coding: str | None
) -> None:
    chunks = [f"data: event {i} {'x' * i}\n\n".encode() for i in range(4)]
    gates = [threading.Event() for _ in chunks]
    app = CompressionMiddleware(gated_stream_app(chunks, gates, content_type), event_stream=event_stream)
    with run_uvicorn(app) as base, httpx.Client(timeout=15) as client:
        with client.stream("GET", f"{base}/stream", headers={"accept-encoding": "br"}) as response:
            assert response.headers.get("content-encoding") == expected_coding
            decoder = StreamDecoder("br") if expected_coding else None
            decoded = b""
            for raw in response.iter_raw():
                decoded += decoder.feed(raw) if decoder else raw
                for index in range(len(chunks)):
                    if decoded.startswith(b"".join(chunks[: index + 1])):
                        gates[index].set()
    assert decoded == b"".join(chunks)


def test_etag_round_trip_through_compression_over_http() -> None:
    async def page(request: Request) -> Response:
        return PlainTextResponse(DATA)

    inner = Starlette(routes=[Route("/", page)])
    app = CompressionMiddleware(ConditionalMiddleware(inner))
    with run_uvicorn(app) as base, httpx.Client() as client:
        first = client.get(f"{base}/", headers={"accept-encoding": "gzip"})
        again = client.get(f"{base}/", headers={"accept-encoding": "gzip", "if-none-match": first.headers["etag"]})
    assert first.headers["etag"].startswith('W/"')
    assert first.text == DATA
    assert again.status_code == 304
    assert again.headers["etag"] == first.headers["etag"]
    assert "content-length" not in again.headers or again.headers["content-length"] == "0"
