"""Outbound calls of instrumented httpx clients, against a real local LLM server under uvicorn: metrics, spans and
their parentage, Server-Timing and the bottleneck, token usage and cost, streaming untouched, bounded labels."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import httpx
import httpx2
import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

import slipstream
from slipstream import Settings, TimingMiddleware, instrument_httpx, record_llm_usage
from slipstream.instrumentation import Instrumentation
from slipstream.outbound.httpx_client import InstrumentedTransport
from tests.outbound import llm_server
from tests.support import asgi_client, instrumented, run_uvicorn, running

pytestmark = pytest.mark.anyio
MODEL = "gpt-test"
SERVED = MODEL + "-2026-01-01"
SETTINGS: dict[str, Any] = {"gen_ai_hosts": ("127.0.0.1",), "gen_ai_prices": (f"{MODEL}=2/8", "claude-test=3/15")}


@pytest.fixture(scope="module")
def llm() -> Iterator[str]:
    with run_uvicorn(llm_server.app) as url:
        yield url


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    exporter.provider = provider  # type: ignore[attr-defined]
    yield exporter
    provider.shutdown()


def sample(inst: Instrumentation, name: str, **labels: str) -> float:
    return inst.registry.get_sample_value(name, labels) or 0.0


def client_count(inst: Instrumentation, status: str, method: str = "POST", error: str = "") -> float:
    return sample(
        inst,
        "http_client_request_duration_seconds_count",
        http_request_method=method,
        server_address="127.0.0.1",
        http_response_status_code=status,
        error_type=error,
    )


def tokens(inst: Instrumentation, kind: str, provider: str, requested: str, served: str) -> float:
    return sample(
        inst,
        "gen_ai_client_token_usage_sum",
        gen_ai_operation_name="chat",
        gen_ai_provider_name=provider,
        gen_ai_request_model=requested,
        gen_ai_response_model=served,
        gen_ai_token_type=kind,
    )


@contextlib.asynccontextmanager
async def app_calling(llm: str, inst: Instrumentation) -> AsyncIterator[httpx.AsyncClient]:
    """A client for an app whose endpoints call the LLM server through instrumented clients, closed after."""
    client = instrument_httpx(httpx.AsyncClient(timeout=10), instrumentation=inst)
    sync_client = instrument_httpx(httpx.Client(timeout=10), instrumentation=inst)
    # The OpenAI SDK builds on httpx2 (httpx's successor, same API); the other endpoints use httpx.
    sdk_client = instrument_httpx(httpx2.AsyncClient(timeout=10), instrumentation=inst)
    sdk = openai.AsyncOpenAI(base_url=f"{llm}/v1", api_key="sk-test-secret", http_client=sdk_client, max_retries=0)

    async def ask(request: Request) -> Response:
        answer = await sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "say hello"}])
        return PlainTextResponse(answer.choices[0].message.content or "")

    async def stream(request: Request) -> Response:
        start, arrivals, text = time.perf_counter(), [], ""
        chunks = await sdk.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "say hello"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in chunks:
            arrivals.append(time.perf_counter() - start)
            text += "".join(choice.delta.content or "" for choice in chunk.choices)
        return JSONResponse({"arrivals": arrivals, "text": text})

    async def anthropic(request: Request) -> Response:
        body = {
            "model": "claude-test",
            "max_tokens": 50,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        }
        async with client.stream("POST", f"{llm}/v1/messages", json=body) as response:
            text = b"".join([chunk async for chunk in response.aiter_bytes()])
        return PlainTextResponse(str(text.count(b"event: content_block_delta")))

    async def slow(request: Request) -> Response:
        await client.get(f"{llm}/slow", params={"seconds": "0.25"})
        return PlainTextResponse("done")

    def sync_twice(request: Request) -> Response:  # a sync endpoint: Starlette runs it in the threadpool
        for _ in range(2):
            sync_client.get(f"{llm}/status/204")
        return PlainTextResponse("ok")

    routes = [Route("/ask", ask), Route("/stream", stream), Route("/anthropic", anthropic), Route("/slow", slow)]
    app = Starlette(routes=[*routes, Route("/sync", sync_twice)])
    try:
        async with asgi_client(TimingMiddleware(app, instrumentation=inst)) as http:
            yield http
    finally:
        await client.aclose()
        await sdk_client.aclose()
        sync_client.close()


def by_kind(exporter: InMemorySpanExporter, kind: SpanKind) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.kind == kind]


async def test_an_openai_sdk_call_is_measured_within_its_request(llm: str, spans: InMemorySpanExporter) -> None:
    inst = instrumented(tracer_provider=spans.provider, **SETTINGS)  # type: ignore[attr-defined]
    async with app_calling(llm, inst) as http:
        response = await http.get("/ask")
    assert response.text == "Hello from the model"
    assert client_count(inst, "200") == 1
    # "say hello": 2 words + 7, as the server counts; 4 words out.
    assert tokens(inst, "input", "openai", MODEL, SERVED) == 9
    assert tokens(inst, "output", "openai", MODEL, SERVED) == 4
    assert sample(inst, "slipstream_gen_ai_cost_total", model=SERVED) == pytest.approx((9 * 2 + 4 * 8) / 1e6)
    assert "api;dur=" in response.headers["server-timing"]
    (server,), (call,) = by_kind(spans, SpanKind.SERVER), by_kind(spans, SpanKind.CLIENT)
    assert call.parent is not None and call.parent.span_id == server.context.span_id
    assert call.context.trace_id == server.context.trace_id
    attributes = dict(call.attributes or {})
    assert attributes["http.request.method"] == "POST" and attributes["http.response.status_code"] == 200
    assert attributes["url.full"] == f"{llm}/v1/chat/completions"
    assert attributes["gen_ai.request.model"] == MODEL and attributes["gen_ai.response.model"] == SERVED
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (9, 4)
    assert not any("sk-test-secret" in str(value) for value in attributes.values())


async def test_a_streamed_answer_passes_chunk_by_chunk_and_its_usage_is_read(llm: str) -> None:
    inst = instrumented(**SETTINGS)
    async with app_calling(llm, inst) as http:
        result = (await http.get("/stream")).json()
    assert result["text"] == "Hello from the model"
    arrivals = result["arrivals"]
    # The server sends an event every 0.1 s: the first one reaches the caller long before the last.
    assert arrivals[0] < arrivals[-1] - 2 * llm_server.CHUNK_DELAY
    assert tokens(inst, "input", "openai", MODEL, SERVED) == 9
    assert tokens(inst, "output", "openai", MODEL, SERVED) == 4
    assert (
        sample(
            inst,
            "gen_ai_client_operation_duration_seconds_sum",
            gen_ai_operation_name="chat",
            gen_ai_provider_name="openai",
            gen_ai_request_model=MODEL,
            gen_ai_response_model=SERVED,
        )
        >= 3 * llm_server.CHUNK_DELAY
    )


async def test_an_anthropic_style_stream_counts_the_last_output_tokens(llm: str) -> None:
    inst = instrumented(**SETTINGS)
    async with app_calling(llm, inst) as http:
        assert (await http.get("/anthropic")).text == "4"
    assert tokens(inst, "input", "anthropic", "claude-test", "claude-test") == 21
    assert tokens(inst, "output", "anthropic", "claude-test", "claude-test") == 12
    assert sample(inst, "slipstream_gen_ai_cost_total", model="claude-test") == pytest.approx((21 * 3 + 12 * 15) / 1e6)


async def test_a_slow_call_is_the_requests_bottleneck(llm: str) -> None:
    inst = instrumented(**SETTINGS)
    async with app_calling(llm, inst) as http:
        timing = (await http.get("/slow")).headers["server-timing"]
    entry = next(part for part in timing.split(", ") if part.startswith("api;"))
    assert float(entry.split("dur=")[1].split(";")[0]) >= 250
    assert 'desc="bottleneck"' in entry


async def test_a_sync_client_in_the_threadpool_adds_to_its_request(llm: str) -> None:
    inst = instrumented(**SETTINGS)
    async with app_calling(llm, inst) as http:
        timing = (await http.get("/sync")).headers["server-timing"]
    assert "api;dur=" in timing and 'desc="2 calls' in timing
    assert client_count(inst, "204", method="GET") == 2


async def test_errors_are_labelled_by_status_or_exception(llm: str) -> None:
    inst = instrumented(**SETTINGS)
    client = instrument_httpx(httpx.AsyncClient(timeout=5), instrumentation=inst)
    with running(inst):  # outside any request: measured all the same
        await client.get(f"{llm}/status/503")
        with pytest.raises(httpx.ConnectError):
            await client.get("http://127.0.0.1:1/")
    assert client_count(inst, "503", method="GET", error="503") == 1
    refused = sample(
        inst,
        "http_client_request_duration_seconds_count",
        http_request_method="GET",
        server_address="127.0.0.1",
        http_response_status_code="",
        error_type="ConnectError",
    )
    assert refused == 1
    await client.aclose()


def test_server_addresses_are_bounded() -> None:
    inst = instrumented(outbound_max_hosts=2)
    # A body as a stream, as real transports give it: the call ends when it has been read.
    answer = httpx.MockTransport(lambda request: httpx.Response(200, stream=httpx.ByteStream(b"ok")))
    transport = InstrumentedTransport(answer, inst)
    with httpx.Client(transport=cast(httpx.BaseTransport, transport)) as client:
        for host in ("a.example", "b.example", "c.example", "d.example", "a.example"):
            client.get(f"http://{host}/")
    counts = {
        host: sample(
            inst,
            "http_client_request_duration_seconds_count",
            http_request_method="GET",
            server_address=host,
            http_response_status_code="200",
            error_type="",
        )
        for host in ("a.example", "b.example", "other")
    }
    assert counts == {"a.example": 2, "b.example": 1, "other": 2}


def test_without_an_app_a_call_goes_out_unmeasured() -> None:
    transport = InstrumentedTransport(httpx.MockTransport(lambda request: httpx.Response(200, text="plain")))
    with httpx.Client(transport=cast(httpx.BaseTransport, transport)) as client:
        assert client.get("http://example.test/").text == "plain"


def test_instrumenting_twice_wraps_once() -> None:
    client = httpx.Client()
    instrument_httpx(instrument_httpx(client))
    transport = client._transport
    assert isinstance(transport, InstrumentedTransport) and not isinstance(transport.inner, InstrumentedTransport)
    client.close()


def test_usage_recorded_by_hand() -> None:
    inst = instrumented(**SETTINGS)
    with running(inst):
        record_llm_usage(model="claude-test", input_tokens=100, output_tokens=10, provider="anthropic", seconds=1.5)
    assert tokens(inst, "input", "anthropic", "claude-test", "claude-test") == 100
    assert sample(inst, "slipstream_gen_ai_cost_total", model="claude-test") == pytest.approx((300 + 150) / 1e6)


def test_prices_are_checked() -> None:
    with pytest.raises(ValueError, match="gen_ai_prices"):
        Settings(gen_ai_prices=("gpt-4o=cheap",))
    assert Settings.from_env({"SLIPSTREAM_GEN_AI_PRICES": "a=1/2,b=3/4"}).gen_ai_prices == ("a=1/2", "b=3/4")


async def test_the_report_the_live_page_and_the_route_counters_show_each_routes_calls(llm: str) -> None:
    client = httpx.AsyncClient(timeout=10)

    async def ask(request: Request) -> Response:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "say hello"}]}
        answer = await client.post(f"{llm}/v1/chat/completions", json=body)
        await client.get(f"{llm}/status/204")
        return PlainTextResponse(answer.json()["choices"][0]["message"]["content"])

    async def plain(request: Request) -> Response:
        return PlainTextResponse("no calls")

    app = Starlette(routes=[Route("/ask", ask), Route("/plain", plain)])
    settings = Settings(metrics_port=None, report_enabled=True, report_path="/_report", live_path="/_live", **SETTINGS)
    inst = slipstream.install(app, settings, CollectorRegistry(), http_clients=[client])
    try:
        async with asgi_client(app) as http:
            for path in ("/ask", "/ask", "/plain"):
                assert (await http.get(path)).status_code == 200
            report = (await http.get("/_report")).json()
            live = (await http.get("/_live/live.json")).json()
    finally:
        await client.aclose()
    route = {"http_request_method": "GET", "http_route": "/ask"}
    assert sample(inst, "slipstream_outbound_route_calls_total", **route) == 4
    assert sample(inst, "slipstream_gen_ai_route_calls_total", **route) == 2
    assert sample(inst, "slipstream_gen_ai_route_tokens_total", **route, gen_ai_token_type="input") == 18
    assert sample(inst, "slipstream_gen_ai_route_cost_total", **route) == pytest.approx(2 * (9 * 2 + 4 * 8) / 1e6)
    assert sample(inst, "slipstream_outbound_route_calls_total", http_request_method="GET", http_route="/plain") == 0
    [row] = report["outbound_routes"]
    assert (row["route"], row["requests"], row["calls"], row["llm_calls"]) == ("/ask", 2, 4, 2)
    assert (row["input_tokens"], row["output_tokens"]) == (18, 8)
    assert 0 < row["time_share"] <= 1
    assert [host["host"] for host in row["slowest_hosts"]] == ["127.0.0.1"] and row["slowest_hosts"][0]["calls"] == 4
    rows = {r["route"]: r for r in live["routes"]}
    assert (rows["/ask"]["llm_calls"], rows["/ask"]["tokens"]) == (2, 26)
    assert 0 < rows["/ask"]["outbound_share"] <= 1 and rows["/ask"]["cost"] > 0
    assert rows["/plain"]["outbound_share"] is None and rows["/plain"]["llm_calls"] == 0


def test_model_labels_are_bounded() -> None:
    inst = instrumented(outbound_max_hosts=2, gen_ai_prices=("m=1/1",))
    with running(inst):
        for model in ("m1", "m2", "m3", "m4", "m1"):
            record_llm_usage(model=model, input_tokens=1, output_tokens=1, provider="openai")
    families = {f.name: f for f in inst.registry.collect()}
    models = {s.labels["gen_ai_request_model"] for s in families["gen_ai_client_token_usage"].samples}
    costs = {s.labels["model"] for s in families["slipstream_gen_ai_cost"].samples if s.name.endswith("_total")}
    assert models == costs == {"m1", "m2", "other"}
