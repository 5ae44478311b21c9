"""DeferredWrites: multiprocess increments summed in memory, written to the worker's file in batches, never lost at
shutdown, never written twice across a fork."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.multiprocess import MultiProcessCollector

from slipstream.exporters.deferred import DeferredWrites
from slipstream.exporters.metrics import bucket_observer, counter_adder, gauge_adder

BOUNDS = (0.01, 0.1, 1.0)


@pytest.fixture
def multiprocess(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """prometheus_client in multiprocess mode for the metrics made during the test: each value a memory-mapped file
    in ``tmp_path``, as in a worker started with PROMETHEUS_MULTIPROC_DIR."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue())  # type: ignore[no-untyped-call]
    yield tmp_path


def merged(directory: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """What the sidecar would serve: every sample of the directory's files."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in MultiProcessCollector(None, path=str(directory)).collect()  # type: ignore[no-untyped-call]
        for sample in family.samples
    }


def total(directory: Path, name: str) -> float:
    return sum(value for (sample, _), value in merged(directory).items() if sample == name)


def test_increments_are_summed_and_written_once_a_flush(multiprocess: Path) -> None:
    writes = DeferredWrites(60.0)  # no flush by the thread during the test
    registry = CollectorRegistry()
    histogram = Histogram("t_seconds", "Test.", ("route",), buckets=BOUNDS, registry=registry)
    counter = Counter("t_hits", "Test.", registry=registry)
    gauge = Gauge("t_active", "Test.", registry=registry, multiprocess_mode="livesum")
    observe, hit, active = (
        bucket_observer(histogram.labels("/a"), writes),
        counter_adder(counter, writes),
        (gauge_adder(gauge, writes)),
    )
    for amount in (0.005, 0.05, 0.5, 5.0, 0.05):
        active(1)
        observe(amount)
        hit(1)
        active(-1)
    assert total(multiprocess, "t_seconds_count") == 0 and total(multiprocess, "t_hits_total") == 0
    writes.flush()
    samples = merged(multiprocess)
    assert samples["t_seconds_count", (("route", "/a"),)] == 5
    assert samples["t_seconds_bucket", (("le", "0.1"), ("route", "/a"))] == 3
    assert samples["t_seconds_sum", (("route", "/a"),)] == pytest.approx(5.605)
    assert samples["t_hits_total", ()] == 5
    assert samples["t_active", ()] == 0
    writes.flush()  # nothing summed since: nothing written twice
    assert total(multiprocess, "t_hits_total") == 5
    writes.stop()


def test_the_thread_writes_within_the_interval_and_stop_writes_the_rest(multiprocess: Path) -> None:
    writes = DeferredWrites(0.05)
    hit = counter_adder(Counter("t_hits", "Test.", registry=CollectorRegistry()), writes)
    hit(2)
    deadline = time.monotonic() + 5
    while total(multiprocess, "t_hits_total") != 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert total(multiprocess, "t_hits_total") == 2
    writes.stop()
    hit(3)  # after a lifespan's end: a second lifespan starts the thread again
    deadline = time.monotonic() + 5
    while total(multiprocess, "t_hits_total") != 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert total(multiprocess, "t_hits_total") == 5
    writes.stop()
    hit(4)
    writes.stop()  # at shutdown, what is summed is written at once
    assert total(multiprocess, "t_hits_total") == 9


def test_without_multiprocess_or_an_interval_every_increment_is_written_at_once(multiprocess: Path) -> None:
    at_once = DeferredWrites(0.0)
    counter = Counter("t_hits", "Test.", registry=CollectorRegistry())
    counter_adder(counter, at_once)(1)
    assert total(multiprocess, "t_hits_total") == 1
    in_memory = CollectorRegistry()
    gauge = Gauge("t_active", "Test.", registry=in_memory, multiprocess_mode="livesum")
    gauge._value = values.MutexValue("gauge", "t_active", "t_active", (), (), "Test.")  # type: ignore[no-untyped-call]
    gauge_adder(gauge, DeferredWrites(60.0))(3)  # an in-memory value costs no file write: not deferred
    assert in_memory.get_sample_value("t_active") == 3
    with pytest.raises(ValueError, match="at least 0"):
        DeferredWrites(-1.0)


def test_a_forked_child_leaves_the_parents_sums_to_the_parent(multiprocess: Path) -> None:
    writes = DeferredWrites(60.0)
    hit = counter_adder(Counter("t_hits", "Test.", registry=CollectorRegistry()), writes)
    hit(7)
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's result is its exit status
        writes.flush()  # the child writes nothing of the parent's
        os._exit(0 if total(multiprocess, "t_hits_total") == 0 else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    writes.stop()
    assert total(multiprocess, "t_hits_total") == 7
