"""@timed and `with timed(...)`: histogram, request record, child spans, errors, bounded names."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from slipstream import RequestRecord, timed
from slipstream.instrumentation import MAX_OPERATION_LABELS, Instrumentation
from slipstream.record import MAX_OPERATION_NAMES, close_record, current_record, open_record
from tests.support import http_scope, instrumented, running

pytestmark = pytest.mark.anyio


@pytest.fixture
def instrumentation() -> Iterator[Instrumentation]:
    """The code of each test runs for an app of its own, as code started by that app's lifespan does."""
    with running(instrumented()) as instrumentation:
        yield instrumentation


@pytest.fixture
def registry(instrumentation: Instrumentation) -> CollectorRegistry:
    return instrumentation.registry


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with running(instrumented(tracer_provider=provider)):
        yield exporter
    provider.shutdown()


def count(registry: CollectorRegistry, operation: str) -> float:
    return registry.get_sample_value("slipstream_operation_duration_seconds_count", {"operation": operation}) or 0.0


async def test_decorates_coroutine_and_plain_functions(registry: CollectorRegistry) -> None:
    @timed("fetch")
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    @timed("compute")
    def compute(x: int) -> int:
        return x + 1

    assert await fetch(2) == 4
    assert compute(2) == 3
    assert fetch.__name__ == "fetch"
    assert (count(registry, "fetch"), count(registry, "compute")) == (1, 1)


async def test_blocks_with_and_async_with(registry: CollectorRegistry) -> None:
    with timed("block"):
        pass
    async with timed("block"):
        pass
    assert count(registry, "block") == 2


def test_outside_a_request_there_is_no_record_to_write(registry: CollectorRegistry) -> None:
    assert current_record() is None
    with timed("lonely"):
        pass
    assert count(registry, "lonely") == 1


def test_outside_any_app_the_operation_only_runs() -> None:
    with timed("nowhere"):
        value = 1
    assert value == 1 and current_record() is None


def test_each_app_gets_its_own_operations() -> None:
    first, second = instrumented(), instrumented()
    with running(first):
        with timed("shared name"):
            pass
        with running(second), timed("shared name"):
            pass
        with timed("first only"):
            pass
    assert (count(first.registry, "shared name"), count(second.registry, "shared name")) == (1, 1)
    assert (count(first.registry, "first only"), count(second.registry, "first only")) == (1, 0)


def test_inside_a_request_the_record_gets_calls_and_totals(instrumentation: Instrumentation) -> None:
    record = RequestRecord(instrumentation, http_scope(), "GET", 0.0)
    token = open_record(record)
    try:
        for _ in range(3):
            with timed("query"):
                pass
    finally:
        close_record(token)
    calls, seconds = record.operations["query"]
    assert calls == 3 and seconds >= 0
    assert record.slowest_operation() == ("query", seconds)


def test_a_timed_object_cannot_run_twice_at_once(registry: CollectorRegistry) -> None:
    block = timed("once")
    with block, pytest.raises(RuntimeError, match="already running"), block:
        pass
    with block:  # and can be used again once finished
        pass


def test_names_are_required() -> None:
    with pytest.raises(ValueError, match="name"):
        timed("")


def test_errors_end_the_span_with_an_error_status(spans: InMemorySpanExporter) -> None:
    with pytest.raises(KeyError), timed("lookup"):
        raise KeyError("missing")
    (span,) = spans.get_finished_spans()
    assert span.name == "lookup"
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.attributes is not None and span.attributes["error.type"] == "KeyError"


def test_nested_operations_nest_their_spans(spans: InMemorySpanExporter) -> None:
    with timed("outer"), timed("inner"):
        pass
    inner, outer = spans.get_finished_spans()
    assert inner.parent is not None and outer.context is not None
    assert inner.parent.span_id == outer.context.span_id


def test_operation_labels_are_bounded(registry: CollectorRegistry) -> None:
    for n in range(MAX_OPERATION_LABELS + 50):
        with timed(f"op-{n}"):
            pass
    values = {
        sample.labels["operation"]
        for family in registry.collect()
        for sample in family.samples
        if sample.name == "slipstream_operation_duration_seconds_count"
    }
    assert len(values) == MAX_OPERATION_LABELS + 1
    assert count(registry, "other") == 50


def test_record_operation_names_are_bounded(instrumentation: Instrumentation) -> None:
    record = RequestRecord(instrumentation, http_scope(), "GET", 0.0)
    for n in range(MAX_OPERATION_NAMES + 10):
        record.add_operation(f"op-{n}", 0.001)
    assert len(record.operations) == MAX_OPERATION_NAMES + 1
    assert record.operations["other"][0] == 10
    assert RequestRecord(instrumentation, http_scope(), "GET", 0.0).slowest_operation() is None
