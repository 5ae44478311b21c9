"""The live page's endpoints: what its JSON says about an app's requests, the page's policy, and who may look."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, create_engine, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import slipstream
from slipstream.config import Settings
from slipstream.exporters.live.history import History
from slipstream.exporters.live.view import LiveView
from slipstream.exporters.live.web import COOKIE, SESSION_SECONDS, LivePage
from slipstream.exporters.prometheus import MetricsAccess, MetricsServer
from slipstream.exporters.sidecar import Sidecar
from tests.support import asgi_client, free_port

pytestmark = pytest.mark.anyio
HERE = Path(__file__).name


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path}/books.db")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE books (id INTEGER PRIMARY KEY, author_id INTEGER)"))
        connection.execute(text("INSERT INTO books (author_id) VALUES (1), (2), (3)"))
    yield engine
    engine.dispose()


def demo_app(engine: Engine, **settings: Any) -> tuple[Starlette, slipstream.Instrumentation]:
    async def cached(request: Request) -> Response:
        return PlainTextResponse("cached " * 200, headers={"cache-control": "max-age=60"})

    async def failing(request: Request) -> Response:
        return PlainTextResponse("down", status_code=503)

    async def slow_part(request: Request) -> Response:
        with slipstream.timed("render"):
            time.sleep(0.01)
        return PlainTextResponse("rendered")

    def lazy(request: Request) -> Response:
        with engine.connect() as connection:
            for author in range(4):
                connection.execute(text("SELECT id FROM books WHERE author_id = :a"), {"a": author})
        return PlainTextResponse("books")

    routes = [Route("/cached", cached), Route("/failing", failing), Route("/render", slow_part), Route("/books", lazy)]
    app = Starlette(routes=routes)
    options: dict[str, Any] = {
        "metrics_port": None,
        "live_path": "/_live",
        "db_slow_query_threshold": 0.0,
        "db_n_plus_one_threshold": 3,
        "db_spans": False,
        **settings,
    }
    instrumentation = slipstream.install(app, Settings(**options), CollectorRegistry(), engines=[engine])
    return app, instrumentation


async def test_the_json_describes_routes_cache_operations_and_the_database(engine: Engine) -> None:
    app, _ = demo_app(engine)
    async with asgi_client(app) as client:
        for _ in range(3):
            await client.get("/cached", headers={"accept-encoding": "br"})
        await client.get("/failing")
        await client.get("/render")
        await client.get("/books")
        answer = await client.get("/_live/live.json")
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    data = answer.json()
    assert data["source"] == "app"
    routes = {(row["method"], row["route"]): row for row in data["routes"]}
    assert routes["GET", "/cached"]["requests"] == 3
    assert routes["GET", "/cached"]["hit_ratio"] == round(2 / 3, 4)
    assert routes["GET", "/cached"]["error_ratio"] == 0
    assert routes["GET", "/failing"]["error_ratio"] == 1
    assert routes["GET", "/render"]["p95"] is not None
    assert sum(row["time_share"] for row in data["routes"]) == pytest.approx(1, abs=0.01)
    # The live page's own requests are answered before timing: not in the table.
    assert not any("_live" in route for _, route in routes)
    assert data["summary"]["requests"] == 6 and data["summary"]["error_ratio"] == round(1 / 6, 4)
    assert {(row["result"], row["tier"]) for row in data["cache"]["results"]} >= {("hit", "l1"), ("miss", "none")}
    assert data["compression"][0]["coding"] == "br" and data["compression"][0]["saved_bytes"] > 0
    assert [row["operation"] for row in data["operations"]] == ["render"]
    assert data["bottlenecks"] == [{"route": "/render", "operation": "render", "window": 1.0, "total": 1.0}]
    database = data["database"]
    assert database["n_plus_one"] == [{"route": "/books", "window": 1.0, "total": 1.0}]
    assert {row["operation"] for row in database["statements"]} >= {"SELECT"}
    [pool] = database["pools"]
    assert pool["pool"].startswith("sqlite:///") and pool["used"] == 0 and pool["idle"] == 1
    [finding] = data["n_plus_one_findings"]
    assert finding["route"] == "/books" and finding["executions"] == 4
    assert finding["fingerprint"] == "SELECT id FROM books WHERE author_id = ?"
    assert finding["caller"].rsplit(":", 1)[0].endswith(HERE)
    slow = {row["fingerprint"]: row for row in data["slow_statements"]}
    assert slow["SELECT id FROM books WHERE author_id = ?"]["caller"].rsplit(":", 1)[0].endswith(HERE)
    assert data["cache_state"]["memory"]["entries"] == 1 and data["cache_state"]["redis"] is None
    assert data["charts"]["time"] and data["charts"]["rate"]


async def test_the_page_is_self_contained_under_a_strict_policy(engine: Engine) -> None:
    app, _ = demo_app(engine)
    async with asgi_client(app) as client:
        page = await client.get("/_live")
        with_slash = await client.get("/_live/")
    assert page.status_code == with_slash.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["x-frame-options"] == "DENY"
    policy = dict(part.strip().split(" ", 1) for part in page.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'none'" and policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and policy["form-action"] == "'self'"
    for tag in ("script", "style"):
        [body] = re.findall(rf"<{tag}>(.*?)</{tag}>", page.text, re.DOTALL)
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert policy[f"{tag}-src"] == f"'sha256-{digest}'"
    # Nothing fetched from elsewhere: no external script, style, image or font.
    assert not re.search(r"""(src|href)=["'](?!data:)""", page.text)
    assert "@import" not in page.text and "url(" not in page.text
    assert 'data-base="/_live"' in page.text and 'action="/_live/login"' in page.text
    assert len(page.content) < 40_000


async def test_a_token_is_needed_for_the_data_and_a_login_turns_it_into_a_cookie(engine: Engine) -> None:
    app, _ = demo_app(engine, metrics_bearer_token="s3cret", metrics_path="/metrics")
    async with asgi_client(app) as client:
        assert (await client.get("/_live")).status_code == 200  # the page holds no data
        refused = await client.get("/_live/live.json")
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == 'Bearer realm="slipstream"'
        assert (await client.get("/_live/live.json", headers={"authorization": "Bearer s3cret"})).status_code == 200
        wrong = await client.post("/_live/login", data={"token": "guess"})
        assert wrong.status_code == 303 and wrong.headers["location"] == "/_live#wrong-token"
        assert "set-cookie" not in wrong.headers
        signed_in = await client.post("/_live/login", data={"token": "s3cret"})
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/_live"
        cookie = signed_in.headers["set-cookie"]
        attributes = {part.strip().split("=")[0] for part in cookie.split(";")[1:]}
        assert attributes == {"Path", "Max-Age", "HttpOnly", "SameSite"}
        assert "Path=/_live/live.json" in cookie and "SameSite=Strict" in cookie
        assert f"Max-Age={SESSION_SECONDS}" in cookie and "s3cret" not in cookie
        value = cookie.split(";")[0]
        assert (await client.get("/_live/live.json", headers={"cookie": value})).status_code == 200
        # The cookie is for the page's data only: not a way into /metrics.
        assert (await client.get("/metrics", headers={"cookie": value})).status_code == 401
        expires, mac = value.split("=", 1)[1].split(".")
        forged = f"{COOKIE}={int(expires) + 3600}.{mac}"
        assert (await client.get("/_live/live.json", headers={"cookie": forged})).status_code == 401
        assert (await client.get("/_live/login")).status_code == 405
        assert (await client.put("/_live")).status_code == 405


def test_sessions_expire_and_are_secure_over_https() -> None:
    now = [1_000_000.0]
    view = LiveView(History(CollectorRegistry().collect), source="app")
    page = LivePage(view, MetricsAccess("tok"), "/live", clock=lambda: now[0])
    status, headers, _ = page.respond("POST", "/live/login", None, {}, b"token=tok", https=True)
    cookie = dict(headers)["Set-Cookie"]
    assert status == 303 and cookie.endswith("; Secure")
    session = {"cookie": "other=1; " + cookie.split(";")[0]}
    assert page.respond("GET", "/live/live.json", None, session, b"", https=True)[0] == 200
    now[0] += SESSION_SECONDS + 1
    assert page.respond("GET", "/live/live.json", None, session, b"", https=True)[0] == 401
    # Another token: every session ends.
    now[0] -= SESSION_SECONDS
    other = LivePage(view, MetricsAccess("new"), "/live", clock=lambda: now[0])
    assert other.respond("GET", "/live/live.json", None, session, b"", https=True)[0] == 401


async def test_an_allowlist_guards_the_page_too(engine: Engine) -> None:
    app, _ = demo_app(engine, metrics_allow_networks=("10.0.0.0/8",))
    async with asgi_client(app) as client:  # httpx's ASGI transport reports 127.0.0.1
        assert (await client.get("/_live")).status_code == 403
        assert (await client.get("/_live/live.json")).status_code == 403
        assert (await client.post("/_live/login", data={"token": "x"})).status_code == 403


def test_the_metrics_port_serves_the_page_at_its_root() -> None:
    registry = CollectorRegistry()
    view = LiveView(History(registry.collect), source="app")
    server = MetricsServer(free_port(), registry=registry, live=LivePage(view, MetricsAccess()))
    try:
        base = f"http://127.0.0.1:{server.port}"
        page = httpx.get(f"{base}/")
        assert page.status_code == 200 and "slipstream live" in page.text
        assert "script-src 'sha256-" in page.headers["content-security-policy"]
        assert httpx.get(f"{base}/live.json").json()["routes"] == []
        missing = httpx.get(f"{base}/nothing")
        assert missing.status_code == 404 and "live page at /" in missing.text
        assert httpx.get(f"{base}/metrics").status_code == 200
    finally:
        server.stop()


def test_a_browser_signs_in_on_the_metrics_port() -> None:
    registry = CollectorRegistry()
    view = LiveView(History(registry.collect), source="app")
    page = LivePage(view, MetricsAccess("tok"))
    server = MetricsServer(free_port(), registry=registry, bearer_token="tok", live=page)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client:
            assert client.get("/live.json").status_code == 401
            signed_in = client.post("/login", data={"token": "tok"})
            assert signed_in.status_code == 303 and signed_in.headers["location"] == "/"
            assert "Path=/live.json" in signed_in.headers["set-cookie"]
            # httpx keeps the cookie, as a browser does, and sends it to /live.json only.
            assert client.get("/live.json").status_code == 200
            assert client.get("/metrics").status_code == 401
    finally:
        server.stop()


def test_a_multiprocess_worker_page_reads_every_workers_files(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    instrumentation = slipstream.Instrumentation(
        Settings(metrics_port=None, metrics_multiprocess_dir=str(tmp_path), live_path="/_live"), registry=registry
    )
    assert instrumentation.live is not None
    instrumentation.start()
    try:
        # No worker has written anything here: the merged view is empty, whatever this process's registry holds.
        instrumentation.metrics.request_duration.labels("GET", "/mine", "200").observe(0.1)
        assert instrumentation.live.view.data()["routes"] == []
        assert len(instrumentation.live.history.ring) == 1
    finally:
        instrumentation.stop()
    # A second lifespan samples again.
    instrumentation.start()
    instrumentation.stop()
    assert len(instrumentation.live.history.ring) == 2


def test_the_sidecar_serves_the_page_of_the_merged_files(tmp_path: Path) -> None:
    with Sidecar(str(tmp_path), free_port(), history_interval=60) as sidecar:
        assert httpx.get(f"{sidecar.url}/").status_code == 200
        data = httpx.get(f"{sidecar.url}/live.json").json()
    assert data["source"] == "sidecar" and data["workers"] == 0 and len(data["charts"]["time"]) == 1
    with Sidecar(str(tmp_path), free_port(), live=False) as sidecar:
        assert httpx.get(f"{sidecar.url}/").status_code == 404


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"live_path": "live"}, "live_path"),
        ({"live_path": "/"}, "live_path"),
        ({"live_history_interval": 0}, "live_history_interval"),
    ],
)
def test_settings_check_the_live_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings(**options)


def test_live_enabled_off_builds_nothing_and_serves_nothing() -> None:
    app = Starlette()
    instrumentation = slipstream.install(app, Settings(live_enabled=False, live_path="/_live"), CollectorRegistry())
    assert instrumentation.live is None
