"""The live page in a real browser: headless Chromium opens the page of the running demo under a bounded load.

The demo (examples/demo_app.py) runs as its own process with a bearer token and a history snapshot every second,
while a thread sends it a bounded mix of requests (cached, slow, failing, N+1). Chromium signs in through the page's
form, waits for refreshes, and the test reads what the page rendered: the route rows (the failing and the slowest
marked), the four charts, the cache, database and operation tables; that the console stayed free of errors; that a
screenshot is not blank; and the same at a phone's viewport, in dark mode too.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.browser import Browser, Tab, run_chromium
from tests.support import free_port, stop_process

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[3]
TOKEN = "live-page-test-token"
LOAD = ("/api/items", "/quote/3", "/authors", "/authors/eager", "/reports/broken", "/reports/slow", "/notes/1", "/")
MAX_REQUESTS = 3000


@dataclass
class Demo:
    base: str
    page: str
    sent: list[int]


@contextlib.contextmanager
def running_demo(tmp_path: Path) -> Iterator[Demo]:
    """The demo on free loopback ports, its live page guarded by ``TOKEN``, under a bounded load until the end."""
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        "SLIPSTREAM_METRICS_PORT": str(metrics_port),
        "SLIPSTREAM_METRICS_BEARER_TOKEN": TOKEN,
        "SLIPSTREAM_LIVE_HISTORY_INTERVAL": "1",
        "DEMO_DATABASE_URL": f"sqlite:///{tmp_path}/demo.db",
    }
    log = (tmp_path / "demo.log").open("wb")
    command = [sys.executable, str(ROOT / "examples" / "demo_app.py"), "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    stop = threading.Event()
    sent = [0]

    def load() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set() and sent[0] < MAX_REQUESTS:
                with contextlib.suppress(httpx.HTTPError):
                    client.get(base + LOAD[sent[0] % len(LOAD)], headers={"accept-encoding": "br"})
                sent[0] += 1
                time.sleep(0.01)

    thread = threading.Thread(target=load, name="demo-load", daemon=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{metrics_port}/", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the demo did not start: {(tmp_path / 'demo.log').read_text()}")
            time.sleep(0.1)
        printed = (tmp_path / "demo.log").read_text()
        assert (
            f"The live page, refreshed every 5 s (routes, charts, cache, database): http://127.0.0.1:{metrics_port}/"
            in printed
        )
        assert "grafana/prometheus.yml" in printed and "Grafana dashboards and alert rules" in printed
        thread.start()
        yield Demo(base, f"http://127.0.0.1:{metrics_port}/", sent)
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(15)
        stop_process(process)
        log.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with running_demo(tmp_path_factory.mktemp("demo")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with run_chromium() as chromium:
        yield chromium


def texts(tab: Tab, selector: str) -> list[str]:
    value = tab.evaluate(f"[...document.querySelectorAll({selector!r})].map((node) => node.textContent)")
    assert isinstance(value, list)
    return [str(item) for item in value]


def refreshes(tab: Tab) -> int:
    return int(tab.evaluate("Number(document.body.dataset.refreshes || 0)"))


def sign_in(tab: Tab, page: str) -> None:
    tab.navigate(page)
    # Without a session the data answers 401 and the page shows its form instead of the figures.
    tab.wait_for("!document.getElementById('login').hidden && document.getElementById('dashboard').hidden", 15)
    # That 401 is the browser's own log line; from here on the console must stay clean.
    tab.forget_events()
    tab.evaluate(
        f"document.querySelector('#login input[name=token]').value = {TOKEN!r};"
        "document.querySelector('#login form').requestSubmit(); true"
    )
    tab.wait_for("Number(document.body.dataset.refreshes || 0) >= 1", 20)


def test_the_page_of_a_running_demo_renders_rows_and_charts_and_refreshes(
    demo: Demo, browser: Browser, tmp_path: Path
) -> None:
    tab = browser.new_tab(1280, 900)
    sign_in(tab, demo.page)
    tab.evaluate("window.notReloaded = true")
    first = refreshes(tab)
    tab.wait_for(f"Number(document.body.dataset.refreshes || 0) >= {first + 2}", 20)
    assert tab.evaluate("window.notReloaded === true"), "the page reloaded instead of refreshing its figures"

    routes = texts(tab, "#routes tbody td:nth-child(2)")
    assert {"/api/items", "/quote/{item_id}", "/authors", "/authors/eager", "/reports/broken"} <= set(routes)
    assert texts(tab, "#routes tr.failing td:nth-child(2)") == ["/reports/broken"]
    assert len(texts(tab, "#routes tr.slow td:nth-child(2)")) == 1
    # Sorting by p95, slowest first: the amber row comes to the top.
    tab.evaluate("[...document.querySelectorAll('#routes th button')].find((b) => b.textContent === 'p95').click()")
    assert tab.evaluate("document.querySelector('#routes th[aria-sort]').textContent") == "p95"
    assert tab.evaluate("document.querySelector('#routes tbody tr').className") in ("slow", "failing")

    captions = texts(tab, "#charts figcaption span")
    assert captions == ["Request rate", "p95 latency", "Error rate", "Cache hit ratio"]
    # Each chart drew a line through several snapshots (one a second here).
    segments = tab.evaluate(
        "[...document.querySelectorAll('#charts svg')].map((svg) => "
        "(svg.querySelector('path.line')?.getAttribute('d') || '').split('L').length)"
    )
    assert len(segments) == 4 and min(segments) >= 3, segments

    assert any("demo_app.py:" in text for text in texts(tab, "#slow td:nth-child(2)"))
    assert any("/authors" in text for text in texts(tab, "#n-plus-one td:first-child"))
    assert "price quote" in texts(tab, "#operations td:first-child")
    assert "price quote" in texts(tab, "#bottlenecks td:nth-child(2)")
    assert "br" in texts(tab, "#compression td:first-child")
    assert {"hit", "miss"} <= set(texts(tab, "#cache-results td:first-child"))
    assert texts(tab, "#cache-tiles .tile b")[-1] == "not configured"  # the demo has no Redis URL

    assert tab.errors() == []
    shot = tab.screenshot(tmp_path / "desktop.png")
    assert not shot.blank, (shot.distinct, shot.dominant_share)
    assert demo.sent[0] < MAX_REQUESTS


def test_the_page_fits_a_phone_in_light_and_dark(demo: Demo, browser: Browser, tmp_path: Path) -> None:
    tab = browser.new_tab(390, 844, mobile=True, scale=2)
    sign_in(tab, demo.page)
    # Nothing wider than the screen: wide tables scroll inside their own box.
    assert tab.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert tab.evaluate("document.querySelector('#charts figure').getBoundingClientRect().width <= window.innerWidth")
    light = tab.evaluate("getComputedStyle(document.body).backgroundColor")
    shot = tab.screenshot(tmp_path / "phone.png", scale=0.5)
    assert not shot.blank, (shot.distinct, shot.dominant_share)

    tab.command("Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": "dark"}])
    dark = tab.evaluate("getComputedStyle(document.body).backgroundColor")
    assert light == "rgb(247, 247, 245)" and dark == "rgb(18, 20, 22)"
    tab.wait_for(f"Number(document.body.dataset.refreshes || 0) >= {refreshes(tab) + 1}", 15)
    shot = tab.screenshot(tmp_path / "phone-dark.png", scale=0.5)
    assert not shot.blank, (shot.distinct, shot.dominant_share)
    assert tab.errors() == []
