"""A small Chrome DevTools Protocol client driving Debian's headless Chromium, for the tests that need a real browser.

No browser is downloaded: the system's ``chromium`` (installed by scripts/install-system-deps.sh) is started with
``--remote-debugging-port=0`` in a temporary profile; the port it picked is read from the profile's
``DevToolsActivePort`` file, and one websocket to the browser carries every command (flattened sessions, one per
tab). Every wait is bounded, and everything stays on loopback.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import struct
import subprocess
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.support import stop_process

START_TIMEOUT = 30.0
COMMAND_TIMEOUT = 30.0


def chromium_path() -> str:
    """A missing chromium fails the test, never skips it: `make test` installs it."""
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is missing: run `make test` (scripts/install-system-deps.sh installs it)")
    return path


class Browser:
    """One headless Chromium and the websocket to it."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.ids = itertools.count(1)
        # Events by session, in arrival order, kept while waiting for command results.
        self.events: dict[str, list[dict[str, Any]]] = {}

    def command(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its result; events arriving meanwhile are kept for their session."""
        ident = next(self.ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        self.socket.send(json.dumps(message))
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no answer to {method} in {COMMAND_TIMEOUT:g} s")
            reply = json.loads(self.socket.recv(timeout=remaining))
            if reply.get("id") == ident:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self.events.setdefault(reply.get("sessionId", ""), []).append(reply)

    def new_tab(self, width: int, height: int, *, mobile: bool = False, scale: float = 1.0) -> Tab:
        """A tab at this viewport, in a fresh browser context."""
        # A browser context of its own: cookies and storage are not shared with the other tabs.
        context = self.command("Target.createBrowserContext")["browserContextId"]
        target = self.command("Target.createTarget", url="about:blank", browserContextId=context)["targetId"]
        session = self.command("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        tab = Tab(self, session)
        for domain in ("Page", "Runtime", "Log"):
            tab.command(f"{domain}.enable")
        tab.command(
            "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=scale, mobile=mobile
        )
        return tab


class Tab:
    """One page of the browser: navigate, evaluate, wait, read its console errors, take screenshots."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    def command(self, method: str, **params: Any) -> dict[str, Any]:
        return self.browser.command(method, self.session, **params)

    def navigate(self, url: str, timeout: float = 20.0) -> None:
        """Open ``url`` and wait until its document has loaded."""
        self.command("Page.navigate", url=url)
        self.wait_for(f"location.href.startsWith({json.dumps(url)}) && document.readyState === 'complete'", timeout)

    def evaluate(self, expression: str) -> Any:
        result = self.command("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float) -> Any:
        """Evaluate ``expression`` until it is truthy, for at most ``timeout`` seconds; returns its value."""
        deadline = time.monotonic() + timeout
        failure: RuntimeError | None = None
        while True:
            try:
                value = self.evaluate(expression)
            except RuntimeError as error:  # the page is not there yet
                value, failure = None, error
            else:
                failure = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"not true after {timeout:g} s: {expression}") from failure
            time.sleep(0.1)

    def errors(self) -> list[str]:
        """What the console and the log reported as errors: exceptions, console.error, CSP and network failures."""
        found = []
        for event in self.browser.events.get(self.session, []):
            params = event["params"]
            if event["method"] == "Runtime.exceptionThrown":
                found.append(params["exceptionDetails"].get("text", "exception"))
            elif event["method"] == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                found.append(" ".join(str(arg.get("value", arg.get("description"))) for arg in params["args"]))
            elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(f"{params['entry']['source']}: {params['entry']['text']}")
        return found

    def forget_events(self) -> None:
        self.browser.events.pop(self.session, None)

    def screenshot(self, path: Path, scale: float = 0.25) -> PixelSummary:
        """A PNG of the whole layout viewport at ``scale``, written to ``path``, summarised."""
        metrics = self.command("Page.getLayoutMetrics")["cssLayoutViewport"]
        clip = {"x": 0, "y": 0, "width": metrics["clientWidth"], "height": metrics["clientHeight"], "scale": scale}
        data = base64.b64decode(self.command("Page.captureScreenshot", format="png", clip=clip)["data"])
        path.write_bytes(data)
        return summarise_png(data)


@contextlib.contextmanager
def run_chromium() -> Iterator[Browser]:
    """Start headless Chromium on a loopback debugging port; stop it and remove its profile afterwards."""
    executable = chromium_path()
    with tempfile.TemporaryDirectory(prefix="slipstream-chromium-") as profile:
        command = [
            executable,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + START_TIMEOUT
            while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"chromium did not open its debugging port (exit status {process.poll()})")
                time.sleep(0.05)
            port, path = port_file.read_text().splitlines()[:2]
            with connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=START_TIMEOUT) as socket:
                yield Browser(socket)
        finally:
            stop_process(process)


class PixelSummary:
    """How many pixels an image has, how many distinct colours, and the share of its most common colour."""

    def __init__(self, width: int, height: int, colours: dict[bytes, int]) -> None:
        self.width = width
        self.height = height
        self.distinct = len(colours)
        self.dominant_share = max(colours.values()) / (width * height)

    @property
    def blank(self) -> bool:
        return self.distinct < 16 or self.dominant_share > 0.97


def summarise_png(data: bytes) -> PixelSummary:
    """Decode an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes) and count its colours."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, chunks, header = 8, [], b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        position += 12 + length
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, (depth, colour_type, interlace)
    channels = 4 if colour_type == 6 else 3
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    previous = bytearray(stride)
    colours: dict[bytes, int] = {}
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                corner = previous[i - channels] if i >= channels else 0
                line[i] = (line[i] + _paeth(left, up, corner)) & 0xFF
        for i in range(0, stride, channels):
            pixel = bytes(line[i : i + 3])
            colours[pixel] = colours.get(pixel, 0) + 1
        previous = line
    return PixelSummary(width, height, colours)


def _paeth(left: int, up: int, corner: int) -> int:
    """PNG's Paeth predictor: whichever neighbour is closest to left + up - corner."""
    guess = left + up - corner
    to_left, to_up, to_corner = abs(guess - left), abs(guess - up), abs(guess - corner)
    if to_left <= to_up and to_left <= to_corner:
        return left
    return up if to_up <= to_corner else corner
