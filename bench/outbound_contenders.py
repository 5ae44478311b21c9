"""The clients bench_outbound.py times: an httpx.AsyncClient each, bare or instrumented, calling a real uvicorn on
loopback; and the check that each one's instrumentation saw every call before any is timed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from prometheus_client import CollectorRegistry

from harness import request_scope
from outbound_server import CHAT_PATH, COMPLETION, EVENTS, ITEM_PATH, MODEL, SERVED_MODEL, request_body
from outbound_server import ITEM as ITEM_BODY
from slipstream import Settings, instrument_httpx
from slipstream.exporters.otel import Telemetry
from slipstream.instrumentation import Instrumentation
from slipstream.record import RequestRecord, close_record, open_record
from telemetry_spans import SpanPipeline

BARE, SLIPSTREAM, SLIPSTREAM_SPAN = "bare httpx", "slipstream, metrics only", "slipstream + span"
SLIPSTREAM_REQUEST = "slipstream, metrics only, inside a request record"
OTEL, OTEL_METER = "OpenTelemetry httpx, spans only (default)", "OpenTelemetry httpx + SDK meter"
LLM_HOST = "127.0.0.1"  # the server's address, listed in gen_ai_hosts for the LLM workloads
PRICES = (f"{MODEL}=0.15/0.6",)
CLIENT_SERIES = "http_client_request_duration_seconds_count"
TOKEN_SERIES = "gen_ai_client_token_usage_count"


@dataclass(frozen=True)
class Workload:
    """One kind of call: ``label`` for the report; a POST with ``body`` when given, read as a stream if ``stream``."""

    label: str
    path: str
    body: bytes | None = None
    stream: bool = False
    llm: bool = False

    async def __call__(self, client: httpx.AsyncClient, url: str, calls: int) -> tuple[bytes, int]:
        """Makes ``calls`` calls; the last one's body, and the chunks the caller was handed over all of them."""
        body, chunks = b"", 0
        headers = {"content-type": "application/json"}
        for _ in range(calls):
            if self.stream:
                async with client.stream("POST", url, content=self.body, headers=headers) as response:
                    parts = [part async for part in response.aiter_bytes()]
                body, chunks = b"".join(parts), chunks + len(parts)
            elif self.body is not None:
                response = await client.post(url, content=self.body, headers=headers)
                body, chunks = response.content, chunks + 1
            else:
                response = await client.get(url)
                body, chunks = response.content, chunks + 1
            if response.status_code != 200:
                raise RuntimeError(f"{self.label}: status {response.status_code}")
        return body, chunks


ITEM = Workload(f"GET {ITEM_PATH}: a JSON document of {len(ITEM_BODY)} bytes", ITEM_PATH)
CHAT_JSON = Workload(
    f"POST {CHAT_PATH}: a chat completion answered as JSON ({len(COMPLETION)} bytes), with usage",
    CHAT_PATH,
    request_body(False),
    llm=True,
)
CHAT_STREAM = Workload(
    f"POST {CHAT_PATH}, stream: {len(EVENTS)} server-sent events ({len(b''.join(EVENTS))} bytes), usage in the "
    "last but one",
    CHAT_PATH,
    request_body(True),
    stream=True,
    llm=True,
)


@dataclass(eq=False)
class CallContender:
    """One client making ``workload``'s calls. ``counted()``: calls its instrumentation has counted (None: it keeps
    no count); ``spans``: where its spans go; ``in_request``: the app whose request record the calls run inside.
    ``cpu``, ``wall``: µs per call, one sample per round."""

    name: str
    workload: Workload
    client: httpx.AsyncClient
    url: str
    counted: Callable[[], float | None] | None = None
    spans: SpanPipeline | None = None
    in_request: Instrumentation | None = None
    spans_per_call: float = 0.0
    chunks_per_call: float = 0.0
    expected: bytes = b""
    record: RequestRecord | None = None
    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)

    async def run(self, calls: int) -> tuple[float, float]:
        """Times ``calls`` calls, inside a fresh request record if ``in_request``; µs per call."""
        app = self.in_request
        self.record = RequestRecord(app, request_scope("/orders", None), "GET", 0.0) if app is not None else None
        token = open_record(self.record) if self.record is not None else None
        try:
            cpu_started, wall_started = time.process_time_ns(), time.perf_counter_ns()
            body, chunks = await self.workload(self.client, self.url, calls)
            cpu, wall = time.process_time_ns() - cpu_started, time.perf_counter_ns() - wall_started
        finally:
            if token is not None:
                close_record(token)
        if self.expected and body != self.expected:
            raise RuntimeError(f"{self.name}, {self.workload.label}: the body differs from the bare client's")
        self.chunks_per_call = chunks / calls
        return cpu / calls / 1000, wall / calls / 1000

    async def measure(self, calls: int) -> None:
        cpu, wall = await self.run(calls)
        self.cpu.append(cpu)
        self.wall.append(wall)

    async def verify(self, calls: int, expected: bytes) -> None:
        """Warms up, then checks the body, that every call was counted (and, inside a request, added to the record's
        ``api`` operation), and one span exported per call where spans are made."""
        await self.run(3)
        self.expected = expected
        counted = self.counted() if self.counted is not None else None
        spans_before = self.spans.exported() if self.spans is not None else 0
        await self.run(calls)
        if self.counted is not None and (counted is None or self.counted() != counted + calls):
            raise RuntimeError(f"{self.name}, {self.workload.label}: its count went {counted} -> {self.counted()}")
        if self.in_request is not None:
            api = self.record.operations.get("api") if self.record is not None else None
            if api is None or api[0] != calls:
                raise RuntimeError(f"{self.name}: the request record's api operation is {api}, not {calls} calls")
        if self.spans is not None:
            self.spans_per_call = (self.spans.exported() - spans_before) / calls
            if self.spans_per_call != 1:
                raise RuntimeError(f"{self.name}, {self.workload.label}: {self.spans_per_call} spans per call, not 1")


def instrumentation(registry: CollectorRegistry, llm: bool, spans: SpanPipeline | None = None) -> Instrumentation:
    """An app's instrumentation on ``registry``; the server's host is an LLM API's (with a price) when ``llm``."""
    settings = Settings(gen_ai_hosts=(LLM_HOST,), gen_ai_prices=PRICES) if llm else Settings()
    telemetry = Telemetry(spans.provider) if spans is not None else Telemetry(enabled=False)
    return Instrumentation(settings, registry=registry, telemetry=telemetry)


def slipstream_count(registry: CollectorRegistry, workload: Workload) -> Callable[[], float | None]:
    """Calls counted in the client duration histogram; for an LLM call, only those whose input tokens were read."""
    method = "GET" if workload.body is None else "POST"
    labels = {"http_request_method": method, "server_address": LLM_HOST, "http_response_status_code": "200"}
    if not workload.llm:
        return lambda: registry.get_sample_value(CLIENT_SERIES, {**labels, "error_type": ""})
    tokens = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "openai", "gen_ai_request_model": MODEL}
    tokens |= {"gen_ai_response_model": SERVED_MODEL, "gen_ai_token_type": "input"}

    def both() -> float | None:
        calls = registry.get_sample_value(CLIENT_SERIES, {**labels, "error_type": ""})
        return calls if calls == registry.get_sample_value(TOKEN_SERIES, tokens) else None

    return both


def otel_count(reader: InMemoryMetricReader) -> Callable[[], float | None]:
    """Calls the OpenTelemetry instrumentation's duration histogram counted, from the SDK's in-memory reader."""

    def count() -> float | None:
        data = reader.get_metrics_data()
        for resource_metrics in data.resource_metrics if data is not None else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name in ("http.client.duration", "http.client.request.duration"):
                        points = metric.data.data_points
                        return float(sum(point.count for point in points if isinstance(point, HistogramDataPoint)))
        return None

    return count


def contenders(workload: Workload, base_url: str, meter: bool) -> list[CallContender]:
    """The bare client and each instrumented one for ``workload``; the OpenTelemetry one with an SDK meter and the
    slipstream one inside a request record only when ``meter``."""
    url = base_url + workload.path
    ours, traced = CollectorRegistry(), CollectorRegistry()
    our_spans, their_spans = SpanPipeline(), SpanPipeline()

    def client() -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=10)

    def otel(spans: SpanPipeline, meter_provider: MeterProvider | NoOpMeterProvider) -> httpx.AsyncClient:
        instrumented = client()
        HTTPXClientInstrumentor.instrument_client(
            instrumented, tracer_provider=spans.provider, meter_provider=meter_provider
        )
        return instrumented

    found = [
        CallContender(BARE, workload, client(), url),
        CallContender(
            SLIPSTREAM,
            workload,
            instrument_httpx(client(), instrumentation=instrumentation(ours, workload.llm)),
            url,
            slipstream_count(ours, workload),
        ),
        CallContender(
            SLIPSTREAM_SPAN,
            workload,
            instrument_httpx(client(), instrumentation=instrumentation(traced, workload.llm, our_spans)),
            url,
            slipstream_count(traced, workload),
            our_spans,
        ),
        CallContender(OTEL, workload, otel(their_spans, NoOpMeterProvider()), url, spans=their_spans),
    ]
    if meter:
        reader, metered_spans = InMemoryMetricReader(), SpanPipeline()
        metered = otel(metered_spans, MeterProvider(metric_readers=[reader]))
        found.append(CallContender(OTEL_METER, workload, metered, url, otel_count(reader), metered_spans))
        in_request = CollectorRegistry()
        app = instrumentation(in_request, workload.llm)
        recorded = instrument_httpx(client(), instrumentation=app)
        counted = slipstream_count(in_request, workload)
        found.insert(2, CallContender(SLIPSTREAM_REQUEST, workload, recorded, url, counted, in_request=app))
    return found
