from __future__ import annotations

import importlib.util
import logging
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import slipstream
from slipstream import CacheMiddleware, CompressionMiddleware, ConditionalMiddleware, Settings, TimingMiddleware
from tests.middleware.apps import TEXT
from tests.support import asgi_client

pytestmark = pytest.mark.anyio
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


async def test_install_composes_compression_outside_conditional() -> None:
    async def page(request: Request) -> Response:
        return PlainTextResponse(TEXT.decode())

    app = Starlette(routes=[Route("/", page)])
    slipstream.install(app, Settings())
    # Each middleware is added as itself or as its from_settings factory.
    assert [getattr(m.cls, "__self__", m.cls) for m in app.user_middleware][1:] == [
        TimingMiddleware,
        CacheMiddleware,
        CompressionMiddleware,
        ConditionalMiddleware,
    ]
    async with asgi_client(app) as client:
        response = await client.get("/", headers={"accept-encoding": "gzip"})
        revalidated = await client.get(
            "/", headers={"accept-encoding": "gzip", "if-none-match": response.headers["etag"]}
        )
    # The ETag is computed on the identity bytes, then weakened by compression outside it.
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["etag"].startswith('W/"')
    assert revalidated.status_code == 304


def test_install_skips_what_settings_switch_off() -> None:
    app = Starlette()
    slipstream.install(
        app, Settings(compression_enabled=False, conditional_enabled=False, cache_enabled=False, timing_enabled=False)
    )
    assert len(app.user_middleware) == 1


def test_install_reads_the_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIPSTREAM_COMPRESSION_ENCODINGS", "gzip")
    assert slipstream.install(Starlette()).settings.compression_encodings == ("gzip",)


def _demo_line(source: str) -> int:
    lines = (EXAMPLES / "demo_app.py").read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if source in line)


async def test_demo_app_serves_everything_it_advertises(caplog: pytest.LogCaptureFixture) -> None:
    demo = load_example("demo_app")
    assert "curl" in demo.instructions("http://127.0.0.1:8000")
    async with asgi_client(demo.app) as client:
        home = await client.get("/", headers={"accept-encoding": "br"})
        items = await client.get("/api/items", headers={"accept-encoding": "zstd"})
        logo = await client.get("/logo.png", headers={"accept-encoding": "br"})
        events = await client.get("/events", headers={"accept-encoding": "gzip"})
        stream = await client.get("/stream", headers={"accept-encoding": "gzip"})
        stale = await client.put("/notes/1", content=b"lost", headers={"if-match": '"v0"'})
        fresh = await client.put("/notes/1", content=b"kept", headers={"if-match": '"v1"'})
        missing = await client.get("/notes/7")
        cached = await client.get("/api/items", headers={"accept-encoding": "zstd"})
        purged = await client.post("/admin/purge/items")
        refilled = await client.get("/api/items")
        quote = await client.get("/quote/3")
        with caplog.at_level(logging.WARNING, logger="slipstream.sql"):
            lazy = await client.get("/authors")
            eager = await client.get("/authors/eager")
    assert home.headers["content-encoding"] == "br" and len(home.content) > 50_000
    assert items.headers["content-encoding"] == "zstd" and items.json()[0]["id"] == 0
    assert "content-encoding" not in logo.headers
    assert "content-encoding" not in events.headers and events.text.count("event: tick") == 5
    assert stream.headers["content-encoding"] == "gzip" and stream.text.count("line") == 5
    assert (stale.status_code, fresh.status_code, fresh.headers["etag"]) == (412, 200, '"v2"')
    assert missing.status_code == 404
    assert (items.headers["x-cache"], cached.headers["x-cache"], refilled.headers["x-cache"]) == ("MISS", "HIT", "MISS")
    assert purged.text == "purged 1 entries\n"
    assert re.search(r'price-quote;dur=[\d.]+;desc="bottleneck", render;dur=[\d.]+$', quote.headers["server-timing"])
    assert "load-items;dur=" in items.headers["server-timing"]
    assert "/metrics" in demo.instructions("http://127.0.0.1:8000")
    assert "db;dur=" in lazy.headers["server-timing"] and 'desc="9 queries"' in lazy.headers["server-timing"]
    assert 'desc="2 queries"' in eager.headers["server-timing"]
    assert lazy.text == eager.text
    (finding,) = [r for r in caplog.records if r.getMessage().startswith("N+1")]
    assert finding.http_route == "/authors"  # type: ignore[attr-defined]
    assert finding.caller.endswith("demo_app.py:" + str(_demo_line("for a in session.scalars(select(Author))]")))  # type: ignore[attr-defined]
