"""OpenTelemetry providers exporting over real OTLP/HTTP to an in-process receiver (tests/otlp_receiver.py)."""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

import httpx
import pytest
from opentelemetry import metrics, trace
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from slipstream.config import Settings
from slipstream.exporters.otel import Telemetry, configure_opentelemetry, signal_endpoints
from tests.otlp_receiver import OTLPReceiver
from tests.support import free_port

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@contextlib.contextmanager
def configured(settings: Settings, **options: Any) -> Iterator[Telemetry]:
    """Our providers, not installed as the globals, shut down (so flushed) when the block ends."""
    telemetry = configure_opentelemetry(settings, **{"install_globals": False, "export_timeout": 5.0, **options})
    try:
        yield telemetry
    finally:
        telemetry.shutdown()


def tracer_of(telemetry: Telemetry) -> trace.Tracer:
    tracer = telemetry.tracer("slipstream", "0.1.0")
    assert tracer is not None
    return tracer


def test_spans_reach_the_collector_at_shutdown_with_the_service_name(receiver: OTLPReceiver) -> None:
    settings = Settings(otel_endpoint=receiver.endpoint, otel_service_name="checkout")
    with configured(settings, service_version="2.3.1") as telemetry:
        tracer = tracer_of(telemetry)
        with tracer.start_as_current_span("GET /users/{id}", attributes={"http.route": "/users/{id}"}) as parent:
            with tracer.start_as_current_span("render"):
                pass
        # The batch processor holds them until its schedule or the shutdown flush.
        assert receiver.spans == []
    spans = {span.name: span for span in receiver.spans}
    assert set(spans) == {"GET /users/{id}", "render"}
    request, render = spans["GET /users/{id}"], spans["render"]
    assert request.attributes == {"http.route": "/users/{id}"}
    assert request.trace_id == render.trace_id == format(parent.get_span_context().trace_id, "032x")
    assert render.parent_span_id == request.span_id and request.parent_span_id is None
    assert request.scope == "slipstream"
    assert request.resource["service.name"] == "checkout"
    assert request.resource["service.version"] == "2.3.1"
    assert request.resource["telemetry.distro.name"] == "slipstream"
    assert request.resource["telemetry.sdk.language"] == "python"
    assert {r.path for r in receiver.requests} == {"/v1/traces"}
    assert {r.content_type for r in receiver.requests} == {"application/x-protobuf"}


def test_an_unnamed_service_is_unknown_service(receiver: OTLPReceiver) -> None:
    with configured(Settings(otel_endpoint=receiver.endpoint)) as telemetry:
        tracer_of(telemetry).start_span("alone").end()
    [span] = receiver.spans
    assert span.resource["service.name"] == "unknown_service"
    assert "service.version" not in span.resource


@pytest.mark.parametrize(
    ("ratio", "trace_flags", "exported"),
    [
        (0.0, None, False),  # a new trace, not drawn
        (0.0, "01", True),  # the caller sampled it: followed whatever the ratio
        (1.0, None, True),
        (1.0, "00", False),  # the caller did not sample it: followed too
    ],
)
def test_new_traces_are_sampled_by_ratio_and_remote_parents_are_followed(
    receiver: OTLPReceiver, ratio: float, trace_flags: str | None, exported: bool
) -> None:
    propagator = TraceContextTextMapPropagator()
    sampled_parent = propagator.extract({"traceparent": f"00-{'1' * 32}-{'2' * 16}-01"})
    parent = propagator.extract({"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-{trace_flags}"}) if trace_flags else None
    with configured(Settings(otel_endpoint=receiver.endpoint, otel_sample_ratio=ratio)) as telemetry:
        tracer = tracer_of(telemetry)
        tracer.start_span("probe", context=parent).end()
        # A span every case exports, so an empty export cannot pass for "not sampled".
        tracer.start_span("control", context=sampled_parent).end()
    spans = {span.name: span for span in receiver.spans}
    assert set(spans) == ({"probe", "control"} if exported else {"control"})
    if exported and parent is not None:
        assert (spans["probe"].trace_id, spans["probe"].parent_span_id) == (TRACE_ID, PARENT_ID)


def test_histograms_reach_the_collector_at_shutdown(receiver: OTLPReceiver) -> None:
    with configured(Settings(otel_endpoint=receiver.endpoint, otel_service_name="checkout")) as telemetry:
        meter = telemetry.meter("slipstream")
        assert meter is not None
        duration = meter.create_histogram("http.server.request.duration", unit="s")
        duration.record(0.25, {"http.request.method": "GET"})
        duration.record(0.5, {"http.request.method": "GET"})
    metric = receiver.metric("http.server.request.duration")
    assert (metric.kind, metric.unit, metric.scope) == ("histogram", "s", "slipstream")
    [point] = metric.points
    assert point.attributes == {"http.request.method": "GET"}
    assert (point.count, point.sum) == (2, 0.75)
    assert sum(point.bucket_counts) == 2 and len(point.bucket_counts) == len(point.explicit_bounds) + 1
    assert metric.resource["service.name"] == "checkout"
    assert {r.path for r in receiver.requests} == {"/v1/metrics"}


def test_settings_from_the_standard_otel_variables(receiver: OTLPReceiver) -> None:
    settings = Settings.from_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint + "/",
            "OTEL_SERVICE_NAME": "billing",
            "OTEL_TRACES_SAMPLER_ARG": "1.0",
        }
    )
    with configured(settings) as telemetry:
        tracer_of(telemetry).start_span("charge").end()
        meter = telemetry.meter("slipstream")
        assert meter is not None
        meter.create_counter("charges").add(1)
    [span] = receiver.spans
    assert (span.name, span.resource["service.name"]) == ("charge", "billing")
    assert receiver.metric("charges").points[0].value == 1
    assert {r.path for r in receiver.requests} == {"/v1/traces", "/v1/metrics"}


def test_exports_compressed_by_otel_exporter_otlp_compression_are_received(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    with configured(Settings(otel_endpoint=receiver.endpoint)) as telemetry:
        tracer_of(telemetry).start_span("squeezed").end()
    assert [span.name for span in receiver.spans] == ["squeezed"]
    assert {r.content_encoding for r in receiver.requests} == {"gzip"}


@pytest.mark.parametrize(
    ("endpoint", "base"),
    [
        ("http://collector:4318", "http://collector:4318"),
        ("http://collector:4318/", "http://collector:4318"),
        ("  https://collector.example/otlp/ ", "https://collector.example/otlp"),
        ("http://collector:4318/v1/traces", "http://collector:4318"),
        ("http://collector:4318/v1/metrics/", "http://collector:4318"),
        ("https://collector.example/otlp/v1/logs", "https://collector.example/otlp"),
    ],
)
def test_signal_urls_sit_under_the_collector_base_url(endpoint: str, base: str) -> None:
    assert signal_endpoints(endpoint) == (f"{base}/v1/traces", f"{base}/v1/metrics")


@pytest.mark.parametrize("endpoint", ["localhost:4318", "collector:4318", "grpc://collector:4317", "http://", ""])
def test_an_endpoint_that_is_not_an_http_url_is_refused(endpoint: str) -> None:
    with pytest.raises(ValueError, match="otel_endpoint must be an http:// or https:// URL"):
        configure_opentelemetry(Settings(otel_endpoint=endpoint))


@pytest.mark.usefixtures("fresh_globals")
def test_without_an_endpoint_spans_go_to_the_apps_provider_or_nowhere() -> None:
    telemetry = configure_opentelemetry(Settings())
    assert (telemetry.tracer_provider, telemetry.meter_provider) == (None, None)
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    assert telemetry.tracer("slipstream") is None
    assert telemetry.meter("slipstream") is None

    proxy = trace.get_tracer_provider()
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    app_tracer_provider = TracerProvider(shutdown_on_exit=False)
    app_tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(app_tracer_provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader], shutdown_on_exit=False))

    tracer = telemetry.tracer("slipstream")
    assert tracer is not None
    tracer.start_span("handled").end()
    assert [span.name for span in spans.get_finished_spans()] == ["handled"]
    # A proxy handed out before the app set its provider now gives that provider's tracers.
    assert type(proxy.get_tracer("slipstream")) is type(tracer)
    meter = telemetry.meter("slipstream")
    assert meter is not None
    meter.create_counter("handled").add(1)
    data = reader.get_metrics_data()
    assert data is not None
    assert [m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics] == ["handled"]
    telemetry.shutdown()  # nothing of ours to stop


@pytest.mark.usefixtures("fresh_globals")
def test_no_op_global_providers_count_as_none() -> None:
    trace.set_tracer_provider(trace.NoOpTracerProvider())
    metrics.set_meter_provider(metrics.NoOpMeterProvider())
    telemetry = configure_opentelemetry(Settings())
    assert telemetry.tracer("slipstream") is None
    assert telemetry.meter("slipstream") is None


@pytest.mark.usefixtures("fresh_globals")
def test_our_providers_become_the_globals_when_the_app_set_none(receiver: OTLPReceiver) -> None:
    with configured(Settings(otel_endpoint=receiver.endpoint), install_globals=True) as telemetry:
        assert trace.get_tracer_provider() is telemetry.tracer_provider
        assert metrics.get_meter_provider() is telemetry.meter_provider
        trace.get_tracer("the.app").start_span("from the app").end()
    [span] = receiver.spans
    assert (span.name, span.scope) == ("from the app", "the.app")


@pytest.mark.usefixtures("fresh_globals")
def test_the_apps_own_providers_are_never_overridden(receiver: OTLPReceiver, caplog: pytest.LogCaptureFixture) -> None:
    app_tracer_provider = TracerProvider(shutdown_on_exit=False)
    app_meter_provider = MeterProvider(shutdown_on_exit=False)
    trace.set_tracer_provider(app_tracer_provider)
    metrics.set_meter_provider(app_meter_provider)
    caplog.set_level(logging.INFO)
    with configured(Settings(otel_endpoint=receiver.endpoint), install_globals=True) as telemetry:
        assert trace.get_tracer_provider() is app_tracer_provider
        assert metrics.get_meter_provider() is app_meter_provider
        # slipstream's own spans still go where its settings say.
        tracer_of(telemetry).start_span("ours").end()
    assert [span.name for span in receiver.spans] == ["ours"]
    assert "Overriding" not in caplog.text
    assert "the app set its own OpenTelemetry tracer provider" in caplog.text
    assert "the app set its own OpenTelemetry meter provider" in caplog.text


@pytest.mark.usefixtures("fresh_globals")
def test_install_globals_false_leaves_the_globals_alone(receiver: OTLPReceiver) -> None:
    with configured(Settings(otel_endpoint=receiver.endpoint), install_globals=False):
        assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        assert isinstance(metrics.get_meter_provider(), metrics_internal._ProxyMeterProvider)


@pytest.mark.usefixtures("fresh_globals")
@pytest.mark.parametrize(
    "settings",
    [
        Settings(tracing_enabled=False, otel_endpoint="http://127.0.0.1:4318"),
        Settings.from_env({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}),
    ],
)
def test_tracing_disabled_means_no_spans_even_with_an_app_provider(settings: Settings) -> None:
    trace.set_tracer_provider(TracerProvider(shutdown_on_exit=False))
    metrics.set_meter_provider(MeterProvider(shutdown_on_exit=False))
    telemetry = configure_opentelemetry(settings)
    assert (telemetry.enabled, telemetry.tracer_provider, telemetry.meter_provider) == (False, None, None)
    assert telemetry.tracer("slipstream") is None
    assert telemetry.meter("slipstream") is None


def record_a_little(telemetry: Telemetry) -> None:
    tracer_of(telemetry).start_span("lost").end()
    meter = telemetry.meter("slipstream")
    assert meter is not None
    meter.create_histogram("lost.duration").record(1.0)


def test_a_collector_that_is_down_fails_nothing(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(otel_endpoint=f"http://127.0.0.1:{free_port()}")
    telemetry = configure_opentelemetry(settings, install_globals=False, export_timeout=0.5, shutdown_timeout=10)
    record_a_little(telemetry)
    started = time.monotonic()
    telemetry.shutdown()
    # Refused connections are given up on within the export timeout, long before the shutdown budget.
    assert time.monotonic() - started < 5
    assert "Failed to export spans batch" in caplog.text
    assert "did not finish within" not in caplog.text


def test_a_collector_that_never_answers_cannot_hold_up_shutdown(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as black_hole:
        # Listening but never accepting: the kernel completes the connection and nothing ever answers.
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(16)
        settings = Settings(otel_endpoint=f"http://127.0.0.1:{black_hole.getsockname()[1]}")
        threads_before = set(threading.enumerate())
        telemetry = configure_opentelemetry(settings, install_globals=False, export_timeout=1.5, shutdown_timeout=0.2)
        record_a_little(telemetry)
        started = time.monotonic()
        telemetry.shutdown()
        assert 0.2 <= time.monotonic() - started < 1.2
        assert "OpenTelemetry export did not finish within 0.2s" in caplog.text
        # The abandoned exports (ours and the SDK's worker threads) end at their own timeout; wait for them so
        # nothing outlives the test.
        for thread in set(threading.enumerate()) - threads_before:
            thread.join(15)
            assert not thread.is_alive(), thread.name


class RefusingSpanProcessor(SpanProcessor):
    def shutdown(self) -> None:
        raise RuntimeError("span processor exploded")


class RefusingMetricReader(InMemoryMetricReader):
    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        raise RuntimeError("metric reader exploded")


@pytest.mark.parametrize("failing", [("tracer",), ("meter",), ("tracer", "meter")])
def test_a_failing_shutdown_is_logged_never_raised_and_runs_once(
    failing: Sequence[str], caplog: pytest.LogCaptureFixture
) -> None:
    tracer_provider = meter_provider = None
    if "tracer" in failing:
        tracer_provider = TracerProvider(shutdown_on_exit=False)
        tracer_provider.add_span_processor(RefusingSpanProcessor())
    if "meter" in failing:
        meter_provider = MeterProvider(metric_readers=[RefusingMetricReader()], shutdown_on_exit=False)
    telemetry = Telemetry(tracer_provider, meter_provider)
    telemetry.shutdown()
    for name in failing:
        assert f"shutting down the OpenTelemetry {name} provider failed" in caplog.text
    assert len(caplog.records) == len(failing)
    telemetry.shutdown()
    assert len(caplog.records) == len(failing)


class BlockOTLPExporter(importlib.abc.MetaPathFinder):
    """Import as it goes where opentelemetry-exporter-otlp-proto-http is not installed."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.startswith("opentelemetry.exporter.otlp"):
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


def test_without_the_otlp_extra_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in sys.modules if name.startswith("opentelemetry.exporter.otlp")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [BlockOTLPExporter(), *sys.meta_path])
    with pytest.raises(ImportError, match=r"pip install 'slipstream\[otel\]'") as raised:
        configure_opentelemetry(Settings(otel_endpoint="http://127.0.0.1:4318"))
    assert isinstance(raised.value.__cause__, ModuleNotFoundError)
    # Without an endpoint nothing is exported, so nothing needs the extra.
    assert configure_opentelemetry(Settings()).tracer_provider is None


def test_an_app_that_never_calls_shutdown_still_exports_at_exit(receiver: OTLPReceiver) -> None:
    # A process of its own: the global providers and the exit hook are the real, once-per-process ones.
    script = f"""
import warnings
warnings.simplefilter("error")
from opentelemetry import trace
from slipstream.config import Settings
from slipstream.exporters.otel import configure_opentelemetry

configure_opentelemetry(Settings(otel_endpoint={receiver.endpoint!r}, otel_service_name="exiting"))
trace.get_tracer("the.app").start_span("left for exit").end()
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    [span] = receiver.spans
    assert (span.name, span.resource["service.name"]) == ("left for exit", "exiting")


def test_the_receiver_refuses_what_is_not_otlp(receiver: OTLPReceiver) -> None:
    with httpx.Client(base_url=receiver.endpoint) as client:
        assert client.post("/v1/traces", content=b"\xff not protobuf").status_code == 400
        assert client.post("/v1/logs", content=b"").status_code == 404
        assert client.post("/v1/traces", content=b"not gzip", headers={"content-encoding": "gzip"}).status_code == 400
    assert receiver.spans == []
