"""The live page's numbers: readings of metric families, bucket quantiles, the ring's charts and its memory bound."""

from __future__ import annotations

import gc
import math
import time
import tracemalloc

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from slipstream.config import DURATION_BUCKETS
from slipstream.exporters.live.history import POINTS, RECENT, History, Totals
from slipstream.exporters.live.reading import ERRORS, MAX_KEYS, OTHER, read
from slipstream.exporters.metrics import Metrics


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def registry_with_requests() -> tuple[CollectorRegistry, Metrics]:
    registry = CollectorRegistry()
    return registry, Metrics.register(registry, DURATION_BUCKETS)


def test_quantiles_interpolate_within_buckets_as_histogram_quantile_does() -> None:
    registry = CollectorRegistry()
    histogram = Histogram("h_seconds", "h", ["http_request_method", "http_route"], registry=registry, buckets=(1, 2, 4))
    # 10 in (0, 1], 10 in (1, 2], none above.
    for value in [0.5] * 10 + [1.5] * 10:
        histogram.labels("GET", "/").observe(value)
    reading = read(registry.collect())
    assert reading.histograms == {}  # not one of the page's families
    metrics_registry, metrics = registry_with_requests()
    child = metrics.request_duration.labels("GET", "/a", "200")
    for value in [0.003] * 50 + [0.02] * 50:
        child.observe(value)
    distribution = read(metrics_registry.collect()).histogram("http_server_request_duration_seconds")[("GET", "/a")]
    # Rank 50 of 100 is the top of (0, 0.005]; rank 95 is 90% of the way through (0.01, 0.025].
    assert distribution.quantile(0.5) == pytest.approx(0.005)
    assert distribution.quantile(0.95) == pytest.approx(0.01 + 0.015 * 45 / 50)
    assert distribution.count == 100 and distribution.total == pytest.approx(1.15)
    # Past the top finite bound: that bound, as Prometheus answers.
    metrics.request_duration.labels("GET", "/slow", "200").observe(60)
    slow = read(metrics_registry.collect()).histogram("http_server_request_duration_seconds")[("GET", "/slow")]
    assert slow.quantile(0.99) == DURATION_BUCKETS[-1]


def test_statuses_are_summed_by_route_and_5xx_counted_as_errors() -> None:
    registry, metrics = registry_with_requests()
    for status, times in (("200", 7), ("404", 2), ("500", 1), ("503", 3)):
        for _ in range(times):
            metrics.request_duration.labels("GET", "/r", status).observe(0.01)
    reading = read(registry.collect())
    assert reading.histogram("http_server_request_duration_seconds")[("GET", "/r")].count == 13
    assert reading.counter(ERRORS) == {("GET", "/r"): 4}


def test_groups_past_the_cap_are_summed_as_other() -> None:
    registry = CollectorRegistry()
    counter = Counter("slipstream_db_n_plus_one", "n", ["http_route"], registry=registry)
    for index in range(MAX_KEYS + 10):
        counter.labels(f"/r{index}").inc()
    series = read(registry.collect()).counter("slipstream_db_n_plus_one_total")
    assert len(series) == MAX_KEYS + 1 and series[(OTHER,)] == 10


def test_since_subtracts_and_treats_a_counter_that_went_down_as_reset() -> None:
    registry, metrics = registry_with_requests()
    metrics.request_duration.labels("GET", "/r", "200").observe(0.01)
    metrics.cache_requests.labels("hit", "l1").inc(5)
    before = read(registry.collect())
    metrics.request_duration.labels("GET", "/r", "200").observe(0.2)
    metrics.cache_requests.labels("hit", "l1").inc(2)
    after = read(registry.collect())
    recent = after.since(before)
    assert recent.counter("slipstream_cache_requests_total")[("hit", "l1")] == 2
    window = recent.histogram("http_server_request_duration_seconds")[("GET", "/r")]
    assert window.count == 1 and window.quantile(0.5) == pytest.approx(0.175)
    # A restart: what is there now is all new.
    assert before.since(after).counter("slipstream_cache_requests_total")[("hit", "l1")] == 5


def test_charts_give_one_point_per_interval_from_neighbouring_snapshots() -> None:
    registry, metrics = registry_with_requests()
    clock = Clock()
    history = History(registry.collect, interval=60, clock=clock)
    history.sample()
    child = metrics.request_duration.labels("GET", "/r", "200")
    for _ in range(120):
        child.observe(0.003)
    metrics.request_duration.labels("GET", "/r", "500").observe(0.003)
    metrics.cache_requests.labels("hit", "l1").inc(3)
    metrics.cache_requests.labels("miss", "none").inc(1)
    clock.now += 60
    history.sample()
    clock.now += 30  # half an interval, no requests
    charts = history.charts(clock.now, Totals.of(history.read()))
    assert charts["time"] == [1060.0, 1090.0]
    assert charts["rate"] == [round(121 / 60, 4), 0.0]
    assert charts["error_ratio"] == [round(1 / 121, 4), None]
    assert charts["hit_ratio"] == [0.75, None]
    # Every request in (0, 0.005]: rank 95 % of the way through it.
    assert charts["p95"][0] == pytest.approx(0.00475) and charts["p95"][1] is None


def test_the_window_is_the_oldest_snapshot_keeping_its_reading() -> None:
    registry, _ = registry_with_requests()
    clock = Clock()
    history = History(registry.collect, interval=60, clock=clock)
    assert history.window() == (1000.0, None)
    for _ in range(RECENT + 3):
        history.sample()
        clock.now += 60
    with_readings = [snapshot for snapshot in history.ring if snapshot.reading is not None]
    assert len(with_readings) == RECENT
    since, reading = history.window()
    assert since == with_readings[0].time and reading is with_readings[0].reading


def test_the_ring_keeps_points_plus_one_snapshots_and_recent_readings() -> None:
    registry, metrics = registry_with_requests()
    metrics.request_duration.labels("GET", "/r", "200").observe(0.01)
    clock = Clock()
    history = History(registry.collect, interval=60, clock=clock)
    for _ in range(3 * POINTS):
        history.sample()
        clock.now += 60
    assert len(history.ring) == POINTS + 1
    assert [snapshot.reading is not None for snapshot in history.ring] == [False] * (POINTS + 1 - RECENT) + [
        True
    ] * RECENT
    assert len(history.charts(clock.now, history.ring[-1].totals)["time"]) == POINTS + 1


def test_the_ring_is_bounded_in_memory() -> None:
    """500 routes, each with every bucket: once RECENT snapshots are taken, more take no more memory."""
    registry, metrics = registry_with_requests()
    for index in range(500):
        metrics.request_duration.labels("GET", f"/route/{index}", "200").observe(0.01 * (index % 7))
    clock = Clock()
    history = History(registry.collect, interval=60, clock=clock)
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(RECENT + 1):
            history.sample()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
        for _ in range(3):
            history.sample()
        gc.collect()
        later = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # A new snapshot takes the oldest one's place: nothing accumulates.
    assert abs(later - held) < 64 * 1024, (held, later)
    # RECENT readings of 500 routes (about 1.25 MB), plus the totals of the rest: small, whatever the uptime.
    assert held < 2 * 1024 * 1024, held


def test_history_rejects_an_interval_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="interval"):
        History(lambda: [], interval=0)
    assert not math.isnan(History(lambda: [], interval=0.5).interval)


def test_the_sampling_thread_takes_a_first_snapshot_at_once_and_stops() -> None:
    registry, _ = registry_with_requests()
    history = History(registry.collect, interval=0.05)
    history.start()
    try:
        assert len(history.ring) >= 1
        deadline = time.monotonic() + 5
        while len(history.ring) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(history.ring) >= 3
    finally:
        history.stop()
    assert history._thread is None


def test_a_failing_collect_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> list[object]:
        raise RuntimeError("registry gone")

    history = History(broken, interval=60)  # type: ignore[arg-type]
    history.start()
    history.stop()
    assert "could not read the metrics" in caplog.text and not history.ring
