"""Cumulative totals read from metric families: what the live page computes its rates, ratios and quantiles from.

The same families come from an app's registry or from the sidecar's merge of every worker's files, so the page
works the same for one process and for many. Only the series the page shows are kept, by the labels it groups by
(the status code, say, is summed away), at most ``MAX_KEYS`` groups a family: the rest are summed as ``__other__``.
Quantiles are estimated from the histogram buckets the way Prometheus's ``histogram_quantile`` does, so the page and
a Grafana panel agree.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric

MAX_KEYS = 500
OTHER = "__other__"
Key = tuple[str, ...]
ROUTE = ("http_request_method", "http_route")
DB = ("db_system_name", "db_operation_name", "db_collection_name")

# Histogram base name -> the labels it is grouped by.
HISTOGRAMS: dict[str, tuple[str, ...]] = {
    "http_server_request_duration_seconds": ROUTE,
    "slipstream_operation_duration_seconds": ("operation",),
    "db_client_operation_duration_seconds": DB,
    "db_client_connection_wait_time_seconds": ("pool_name",),
}
# Counter sample name -> its labels.
COUNTERS: dict[str, tuple[str, ...]] = {
    "slipstream_cache_requests_total": ("result", "tier"),
    "slipstream_cache_route_requests_total": (*ROUTE, "result"),
    "slipstream_cache_redis_errors_total": (),
    "slipstream_compression_input_bytes_total": ("encoding",),
    "slipstream_compression_output_bytes_total": ("encoding",),
    "slipstream_db_slow_queries_total": DB,
    "slipstream_db_client_errors_total": ("db_system_name", "error_type"),
    "slipstream_db_n_plus_one_total": ("http_route",),
    "slipstream_bottlenecks_total": ("http_route", "operation"),
    # Outbound calls and LLM usage by route (tokens of both types summed).
    "slipstream_outbound_route_seconds_total": ROUTE,
    "slipstream_gen_ai_route_calls_total": ROUTE,
    "slipstream_gen_ai_route_tokens_total": ROUTE,
    "slipstream_gen_ai_route_cost_total": ROUTE,
    "db_client_connection_timeouts_total": ("pool_name",),
}
# Gauge name -> its labels; gauges are read as they are now, never differenced.
GAUGES: dict[str, tuple[str, ...]] = {
    "http_server_active_requests": (),
    "db_client_connection_count": ("pool_name", "state"),
    "db_client_connection_max": ("pool_name",),
    "db_client_connection_pending_requests": ("pool_name",),
}
# Requests answered with a 5xx status, by route: read from the duration histogram's counts.
ERRORS = "http_server_errors"


class Distribution:
    """A histogram's cumulative bucket counts (``le`` bounds, +Inf last), its count and its sum."""

    __slots__ = ("bounds", "count", "counts", "total")

    def __init__(self, bounds: tuple[float, ...], counts: array[float], count: float, total: float) -> None:
        self.bounds = bounds
        self.counts = counts
        self.count = count
        self.total = total

    def since(self, base: Distribution | None) -> Distribution:
        """What was observed after ``base`` was read; all of it when the series was reset (a restart) since."""
        if base is None or base.bounds != self.bounds or base.count > self.count:
            return self
        counts = array("d", (now - then for now, then in zip(self.counts, base.counts, strict=True)))
        return Distribution(self.bounds, counts, self.count - base.count, self.total - base.total)

    def plus(self, other: Distribution) -> Distribution:
        if other.bounds != self.bounds:
            return self if self.count >= other.count else other
        counts = array("d", (a + b for a, b in zip(self.counts, other.counts, strict=True)))
        return Distribution(self.bounds, counts, self.count + other.count, self.total + other.total)

    def quantile(self, q: float) -> float | None:
        """``histogram_quantile``: linear within the bucket holding the rank; the top finite bound past it."""
        total = self.counts[-1] if self.counts else 0.0
        if total <= 0:
            return None
        rank = q * total
        below, lower = 0.0, 0.0
        for bound, cumulative in zip(self.bounds, self.counts, strict=True):
            if cumulative >= rank:
                if math.isinf(bound):
                    return lower
                inside = cumulative - below
                return bound if inside <= 0 else lower + (bound - lower) * (rank - below) / inside
            below, lower = cumulative, bound
        return lower  # pragma: no cover - the +Inf bucket holds every observation


@dataclass
class Reading:
    """The page's series at one moment: counters and histograms cumulative, gauges as they were."""

    counters: dict[str, dict[Key, float]] = field(default_factory=dict)
    histograms: dict[str, dict[Key, Distribution]] = field(default_factory=dict)
    gauges: dict[str, dict[Key, float]] = field(default_factory=dict)

    def since(self, base: Reading | None) -> Reading:
        """Counters and histograms observed after ``base``; a series that went down counts from zero (a reset)."""
        if base is None:
            return self
        counters = {
            name: {key: _counter_since(value, base.counters.get(name, {}).get(key)) for key, value in series.items()}
            for name, series in self.counters.items()
        }
        histograms = {
            name: {key: value.since(base.histograms.get(name, {}).get(key)) for key, value in series.items()}
            for name, series in self.histograms.items()
        }
        return Reading(counters, histograms, self.gauges)

    def counter(self, name: str) -> dict[Key, float]:
        return self.counters.get(name, {})

    def histogram(self, name: str) -> dict[Key, Distribution]:
        return self.histograms.get(name, {})

    def gauge(self, name: str) -> dict[Key, float]:
        return self.gauges.get(name, {})


def _counter_since(value: float, base: float | None) -> float:
    return value if base is None or base > value else value - base


class _Buckets:
    __slots__ = ("count", "le", "total")

    def __init__(self) -> None:
        self.count = 0.0
        self.total = 0.0
        self.le: dict[float, float] = {}


def read(families: Iterable[Metric]) -> Reading:
    """The page's series in ``families`` (any others are skipped), grouped and capped."""
    counters: dict[str, dict[Key, float]] = {}
    gauges: dict[str, dict[Key, float]] = {}
    raw: dict[str, dict[Key, _Buckets]] = {}
    for family in families:
        for sample in family.samples:
            name, labels = sample.name, sample.labels
            if name in COUNTERS:
                _add(counters, name, _key(labels, COUNTERS[name]), sample.value)
                continue
            if family.type == "gauge" and name in GAUGES:
                _add(gauges, name, _key(labels, GAUGES[name]), sample.value)
                continue
            base, _, part = name.rpartition("_")
            if base not in HISTOGRAMS or part not in ("bucket", "count", "sum"):
                continue
            key = _key(labels, HISTOGRAMS[base])
            table = raw.setdefault(base, {})
            if key not in table and len(table) >= MAX_KEYS:
                key = (OTHER,) * len(key)
            entry = table.get(key)
            if entry is None:
                entry = table[key] = _Buckets()
            if part == "bucket":
                bound = float(labels["le"])
                entry.le[bound] = entry.le.get(bound, 0.0) + sample.value
            elif part == "sum":
                entry.total += sample.value
            else:
                entry.count += sample.value
                if base == "http_server_request_duration_seconds":
                    status = labels.get("http_response_status_code", "")
                    if status.isdigit() and int(status) >= 500:
                        _add(counters, ERRORS, key, sample.value)
    histograms: dict[str, dict[Key, Distribution]] = {}
    interned: dict[tuple[float, ...], tuple[float, ...]] = {}
    for base, table in raw.items():
        series = histograms[base] = {}
        for key, entry in table.items():
            bounds = tuple(sorted(entry.le))
            # One bounds tuple per family, not one per series: the ring keeps several readings.
            bounds = interned.setdefault(bounds, bounds)
            counts = array("d", (entry.le[bound] for bound in bounds))
            series[key] = Distribution(bounds, counts, entry.count, entry.total)
    return Reading(counters, histograms, gauges)


def _key(labels: dict[str, str], names: tuple[str, ...]) -> Key:
    return tuple(labels.get(name, "") for name in names)


def _add(table: dict[str, dict[Key, float]], name: str, key: Key, value: float) -> None:
    series = table.setdefault(name, {})
    if key not in series and len(series) >= MAX_KEYS:
        key = (OTHER,) * len(key)
    series[key] = series.get(key, 0.0) + value
