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


async def test_demo_assistant_calls_the_stand_in_model_as_an_llm_api() -> None:
    """/assistant calls the stand-in model through the instrumented client: the call is the request's `api` time,
    its tokens and cost reach the metrics at the demo's price, and an overloaded model is an upstream 503."""
    demo = load_example("demo_app")
    assert "/assistant" in demo.instructions("http://127.0.0.1:8000")
    sample = demo.app.state.slipstream.registry.get_sample_value
    model = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "openai", "gen_ai_request_model": "demo-mini"}
    model["gen_ai_response_model"] = "demo-mini-2025-06-01"
    calls = {"http_request_method": "POST", "server_address": "model.demo.internal"}
    failed = {**calls, "http_response_status_code": "503", "error_type": "503"}
    counted = {
        "input": ("gen_ai_client_token_usage_sum", {**model, "gen_ai_token_type": "input"}),
        "output": ("gen_ai_client_token_usage_sum", {**model, "gen_ai_token_type": "output"}),
        "cost": ("slipstream_gen_ai_cost_total", {"model": "demo-mini-2025-06-01"}),
        "503": ("http_client_request_duration_seconds_count", failed),
    }
    before = {key: sample(*where) or 0.0 for key, where in counted.items()}
    async with asgi_client(demo.app) as client:
        answered = await client.get("/assistant", params={"q": "how fast is it"})
        overloaded = await client.get("/assistant", params={"overloaded": "1"})
    grown = {key: (sample(*where) or 0.0) - before[key] for key, where in counted.items()}
    assert answered.status_code == 200 and "You asked 4 words" in answered.text
    assert re.search(r"api;dur=[\d.]+", answered.headers["server-timing"])
    assert (overloaded.status_code, overloaded.text) == (502, "the model answered 503\n")
    # 4 words and the chat format's 8 tokens in, the answer's 12 words out, at 0.15 and 0.6 per million.
    assert (grown["input"], grown["output"], grown["503"]) == (12, 12, 1)
    assert grown["cost"] == pytest.approx((12 * 0.15 + 12 * 0.6) / 1e6)
