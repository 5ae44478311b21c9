"""Every metric slipstream exports, defined once, registered idempotently per registry.

Names follow OpenTelemetry's stable HTTP and database semantic conventions in Prometheus form; ours are
``slipstream_*``. Every label takes a bounded set of values: route templates, never raw paths.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from slipstream.exporters.deferred import DeferredWrites

# OpenTelemetry's advisory buckets for db.client.operation.duration (seconds).
DB_DURATION_BUCKETS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10)
QUERY_COUNT_BUCKETS: tuple[float, ...] = (0, 1, 2, 3, 5, 10, 20, 50, 100, 200, 500)
DB_LABELS = ("db_system_name", "db_operation_name", "db_collection_name")
# Body sizes from 100 B to 10 MB, by powers of ten and their halves.
SIZE_BUCKETS: tuple[float, ...] = (100, 500, 1_000, 5_000, 10_000, 50_000, 100_000, 500_000, 1_000_000, 10_000_000)

HTTP_LABELS = ("http_request_method", "http_route", "http_response_status_code")
M = TypeVar("M", bound=MetricWrapperBase)


@dataclass(frozen=True)
class Metrics:
    """The metric objects of one registry; ``Metrics.register(registry, buckets)`` builds them."""

    request_duration: Histogram
    time_to_first_byte: Histogram
    active_requests: Gauge
    request_body_size: Histogram
    response_body_size: Histogram
    cache_requests: Counter
    cache_route_requests: Counter
    cache_redis_errors: Counter
    cache_redis_breaker_open: Gauge
    compression_input_bytes: Counter
    compression_output_bytes: Counter
    conditional_responses: Counter
    operation_duration: Histogram
    bottlenecks: Counter
    db_operation_duration: Histogram
    db_errors: Counter
    db_slow_queries: Counter
    db_queries_per_request: Histogram
    db_n_plus_one: Counter
    db_connection_wait: Histogram
    db_connection_timeouts: Counter
    # The request path's increments of multiprocess values, written in batches (see DeferredWrites).
    writes: DeferredWrites

    @classmethod
    def register(
        cls,
        registry: CollectorRegistry,
        buckets: Sequence[float],
        flush_interval: float = 0.0,
    ) -> Metrics:
        """The metrics in ``registry``; those another app registered there already are shared, not duplicated.

        ``buckets`` are the request and operation duration buckets. A registry holds one histogram per name, so a
        second app asking the same registry for other buckets is refused rather than given the first app's.
        ``flush_interval``: `DeferredWrites`'s, in multiprocess mode (0: every increment written at once).
        """
        with _register_lock:
            return _create(registry, tuple(buckets), DeferredWrites(flush_interval))


class CompressionBytes:
    """Counts what a compressor was given and produced, per coding: ``count(coding, given, produced)``.

    The labelled children of ``codings`` (every coding the caller compresses with) are bound once: a labelled
    lookup per response would cost more than the increment.
    """

    def __init__(self, metrics: Metrics, codings: Iterable[str]) -> None:
        self._counters = {
            name: (metrics.compression_input_bytes.labels(name), metrics.compression_output_bytes.labels(name))
            for name in codings
        }

    def __call__(self, coding: str, given: int, produced: int) -> None:
        input_bytes, output_bytes = self._counters[coding]
        input_bytes.inc(given)
        output_bytes.inc(produced)


# Two apps registering into one registry from two threads must not both create a metric.
_register_lock = threading.RLock()


def reuse_or_register(
    kind: type[M], registry: CollectorRegistry, name: str, documentation: str, labels: Sequence[str] = (), **extra: Any
) -> M:
    """A new metric in ``registry``, or the same one already there (never "Duplicated timeseries").

    "The same" means of that kind, with those labels and, for histograms, those buckets: anything else is an error.
    """
    with _register_lock:
        existing = registry._names_to_collectors.get(name) or registry._names_to_collectors.get(name + "_total")
        if existing is None:
            return kind(name, documentation, labels, registry=registry, **extra)
        if isinstance(existing, kind) and tuple(existing._labelnames) == tuple(labels):
            bounds = [b for b in getattr(existing, "_upper_bounds", ()) if b != float("inf")]
            if "buckets" not in extra or [float(b) for b in extra["buckets"]] == bounds:
                return existing
        raise ValueError(
            f"the registry already has a different metric named {name!r} (another kind, labels or buckets); "
            "give each app with its own buckets a registry of its own"
        )


C = TypeVar("C")


class LabelledChildren(dict[Hashable, C]):
    """Labelled children by label values, each bound once (``labels()`` costs more than the observation it serves):
    ``children[method, route, status]``, or ``children[method]`` for one label. A hit is one dict look-up in C; a
    miss calls ``bind`` with the label values (``str()`` of the key's items): ``metric.labels`` for one metric, or a
    function binding several metrics that share labels, so one look-up serves them all.

    With ``limit``, keys past that many distinct ones share the child of ``overflow``, so a caller with unbounded
    names (``@timed``) still makes bounded series. Binding twice in a race is harmless: prometheus_client hands
    out the same child for the same labels.
    """

    def __init__(self, bind: Callable[..., C], limit: int | None = None, overflow: Hashable = ()) -> None:
        super().__init__()
        self.bind = bind
        self.limit = limit
        self.overflow = overflow

    def __missing__(self, key: Hashable) -> C:
        if self.limit is not None and len(self) >= self.limit:
            key = self.overflow
            found = self.get(key)
            if found is not None:
                return found
        values = key if isinstance(key, tuple) else (key,)
        child = self[key] = self.bind(*(str(item) for item in values))
        return child


def bucket_observer(child: Histogram, writes: DeferredWrites | None = None) -> Callable[[float], None]:
    """``child.observe(amount)`` for a labelled child, done as prometheus_client does it (the sum, then the first
    bucket whose bound is not below the amount, on the child's own value objects, so multiprocess mode counts it
    alike) but found by bisection rather than a scan of every bound, without re-checking the labels on each call:
    a third of an observation's cost, on every request. Exemplars still go through ``observe``. With ``writes``,
    multiprocess values are written in batches (see `DeferredWrites`)."""
    bounds = child._upper_bounds
    add_sum = _adder(child._sum, writes)
    add_bucket = [_adder(bucket, writes) for bucket in child._buckets]

    def observe(amount: float) -> None:
        add_sum(amount)
        add_bucket[bisect.bisect_left(bounds, amount)](1)

    return observe


def gauge_adder(child: Gauge, writes: DeferredWrites | None = None) -> Callable[[float], None]:
    """``child.inc(amount)`` (``dec`` is a negative amount) for a labelled child, on its own value as prometheus_client
    does it, without re-checking the labels on each call; with ``writes`` as `bucket_observer`."""
    return _adder(child._value, writes)


def counter_adder(child: Counter, writes: DeferredWrites | None = None) -> Callable[[float], None]:
    """``child.inc(amount)`` for a labelled counter child, as `gauge_adder` does it: a counter's own check (no
    negative amounts) is the caller's, whose amounts are constants or sizes."""
    return _adder(child._value, writes)


def _adder(value: Any, writes: DeferredWrites | None) -> Callable[[float], None]:
    add: Callable[[float], None] = value.inc if writes is None else writes.adder(value)
    return add


def _create(registry: CollectorRegistry, buckets: tuple[float, ...], writes: DeferredWrites) -> Metrics:
    def make(kind: type[M], name: str, documentation: str, labels: Sequence[str] = (), **extra: Any) -> M:
        return reuse_or_register(kind, registry, name, documentation, labels, **extra)

    route = ("http_request_method", "http_route")
    return Metrics(
        writes=writes,
        request_duration=make(
            Histogram,
            "http_server_request_duration_seconds",
            "Duration of HTTP server requests, to the last byte of the response body.",
            HTTP_LABELS,
            buckets=buckets,
        ),
        time_to_first_byte=make(
            Histogram,
            "slipstream_http_server_time_to_first_byte_seconds",
            "Time from the request's arrival to the start of its response.",
            route,
            buckets=buckets,
        ),
        active_requests=make(
            Gauge,
            "http_server_active_requests",
            "Number of HTTP server requests in flight.",
            ("http_request_method",),
            multiprocess_mode="livesum",
        ),
        request_body_size=make(
            Histogram,
            "http_server_request_body_size_bytes",
            "Size of HTTP server request bodies.",
            route,
            buckets=SIZE_BUCKETS,
        ),
        response_body_size=make(
            Histogram,
            "http_server_response_body_size_bytes",
            "Size of HTTP server response bodies, as sent (after compression).",
            HTTP_LABELS,
            buckets=SIZE_BUCKETS,
        ),
        cache_requests=make(
            Counter,
            "slipstream_cache_requests",
            "Requests seen by the response cache, by result (hit, miss, stale, bypass) and the tier that answered.",
            ("result", "tier"),
        ),
        cache_route_requests=make(
            Counter,
            "slipstream_cache_route_requests",
            "Requests seen by the response cache, by route and result (hit, miss, stale, bypass).",
            (*route, "result"),
        ),
        cache_redis_errors=make(
            Counter,
            "slipstream_cache_redis_errors",
            "Redis calls that failed or timed out; the request was served as if Redis were absent.",
        ),
        cache_redis_breaker_open=make(
            Gauge,
            "slipstream_cache_redis_breaker_open",
            "1 while the circuit breaker in front of Redis is open or trying one call (Redis is skipped), else 0.",
            multiprocess_mode="max",
        ),
        compression_input_bytes=make(
            Counter,
            "slipstream_compression_input_bytes",
            "Bytes given to the compressor, by content coding.",
            ("encoding",),
        ),
        compression_output_bytes=make(
            Counter,
            "slipstream_compression_output_bytes",
            "Bytes the compressor produced, by content coding.",
            ("encoding",),
        ),
        conditional_responses=make(
            Counter,
            "slipstream_conditional_responses",
            "Responses ConditionalMiddleware replaced with 304 or 412 (the cache answers its own 304s as hits).",
            ("http_response_status_code",),
        ),
        operation_duration=make(
            Histogram,
            "slipstream_operation_duration_seconds",
            "Duration of operations timed with @timed or `with timed(...)`.",
            ("operation",),
            buckets=buckets,
        ),
        bottlenecks=make(
            Counter,
            "slipstream_bottlenecks",
            "Requests whose slowest operation took more than timing_bottleneck_share of the request, by operation.",
            ("http_route", "operation"),
        ),
        db_operation_duration=make(
            Histogram,
            "db_client_operation_duration_seconds",
            "Duration of database statements, as the driver ran them (executemany counted once).",
            DB_LABELS,
            buckets=DB_DURATION_BUCKETS,
        ),
        db_errors=make(
            Counter,
            "slipstream_db_client_errors",
            "Database statements that raised, by the driver's error type.",
            ("db_system_name", "error_type"),
        ),
        db_slow_queries=make(
            Counter,
            "slipstream_db_slow_queries",
            "Statements slower than the slow-query threshold.",
            DB_LABELS,
        ),
        db_queries_per_request=make(
            Histogram,
            "slipstream_db_queries_per_request",
            "Database statements run while serving one HTTP request.",
            ("http_route",),
            buckets=QUERY_COUNT_BUCKETS,
        ),
        db_n_plus_one=make(
            Counter,
            "slipstream_db_n_plus_one",
            "Requests in which one SELECT fingerprint ran at least the N+1 threshold times.",
            ("http_route",),
        ),
        db_connection_wait=make(
            Histogram,
            "db_client_connection_wait_time_seconds",
            "Time to obtain a connection from the pool.",
            ("pool_name",),
            buckets=DB_DURATION_BUCKETS,
        ),
        db_connection_timeouts=make(
            Counter,
            "db_client_connection_timeouts",
            "Connection checkouts that timed out waiting for the pool.",
            ("pool_name",),
        ),
    )
