"""Connection pools: checkout waits and timeouts as they happen, and connection counts read at scrape time."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from slipstream.exporters.metrics import Metrics

_FAMILIES = ("db_client_connection_count", "db_client_connection_max", "db_client_connection_pending_requests")


class PoolWatch:
    """One engine's pool: checkout waits and timeouts, checkouts pending, and its counts for the collector."""

    def __init__(self, engine: Engine, metrics: Metrics) -> None:
        self._engine = weakref.ref(engine)
        self.pool_name = engine.url.render_as_string(hide_password=True)
        self.wait = metrics.db_connection_wait.labels(self.pool_name)
        self.timeouts = metrics.db_connection_timeouts.labels(self.pool_name)
        self.pending = 0
        self._lock = threading.Lock()

    def install(self, pool: Any) -> None:
        """Wrap ``pool``'s checkout, and the pool ``dispose()`` makes in its place."""
        original = getattr(pool, "_do_get", None)
        if original is None or "_do_get" in pool.__dict__:
            return
        watch = self
        timeout_error = sqlalchemy.exc.TimeoutError

        def _do_get() -> Any:
            with watch._lock:
                watch.pending += 1
            start = time.perf_counter()
            try:
                return original()
            except timeout_error:
                watch.timeouts.inc()
                raise
            finally:
                watch.wait.observe(time.perf_counter() - start)
                with watch._lock:
                    watch.pending -= 1

        pool._do_get = _do_get
        # dispose() replaces the pool with pool.recreate(): the new pool is wrapped too. (An engine_disposed
        # listener would do the same, but any engine listener puts every statement on SQLAlchemy's slower path.)
        recreate = pool.recreate

        def _recreate() -> Any:
            new = recreate()
            watch.install(new)
            return new

        pool.recreate = _recreate

    @staticmethod
    def remove(pool: Any) -> None:
        pool.__dict__.pop("_do_get", None)
        pool.__dict__.pop("recreate", None)

    def state(self) -> tuple[int, int, int | None] | None:
        """(idle, used, max) of the engine's pool now, or None for pools that keep no count (NullPool, StaticPool)."""
        engine = self._engine()
        if engine is None:  # pragma: no cover - collected between the scrape's listing and this call
            return None
        pool = engine.pool
        checkedin = getattr(pool, "checkedin", None)
        checkedout = getattr(pool, "checkedout", None)
        if checkedin is None or checkedout is None:
            return None
        size = getattr(pool, "size", None)
        overflow = getattr(pool, "_max_overflow", None)
        maximum = None
        if callable(size) and isinstance(overflow, int) and overflow >= 0:
            maximum = int(size()) + overflow
        return int(checkedin()), int(checkedout()), maximum


class PoolCollector(Collector):
    """Connection counts read from the watched pools at scrape time."""

    def __init__(self) -> None:
        self.pools: weakref.WeakSet[PoolWatch] = weakref.WeakSet()

    @classmethod
    def of(cls, registry: CollectorRegistry) -> PoolCollector:
        """The registry's collector: another app's, when one registered it there first (one family per name)."""
        with _register_lock:
            existing = registry._names_to_collectors.get(_FAMILIES[0])
            if isinstance(existing, PoolCollector):
                return existing
            collector = cls()
            registry.register(collector)
            return collector

    def collect(self) -> Iterator[Metric]:
        count = GaugeMetricFamily(
            "db_client_connection_count",
            "Connections in the pool, by state (idle or used).",
            labels=("pool_name", "state"),
        )
        maximum = GaugeMetricFamily(
            "db_client_connection_max", "Most connections the pool allows (size + overflow).", labels=("pool_name",)
        )
        pending = GaugeMetricFamily(
            "db_client_connection_pending_requests",
            "Checkouts waiting for a connection from the pool.",
            labels=("pool_name",),
        )
        for watch in list(self.pools):
            state = watch.state()
            pending.add_metric((watch.pool_name,), watch.pending)
            if state is None:
                continue
            idle, used, most = state
            count.add_metric((watch.pool_name, "idle"), idle)
            count.add_metric((watch.pool_name, "used"), used)
            if most is not None:
                maximum.add_metric((watch.pool_name,), most)
        yield from (count, maximum, pending)

    def describe(self) -> Iterable[Metric]:
        # Named, so the registry refuses a second collector of these families and ``of`` can find this one.
        return [GaugeMetricFamily(name, "") for name in _FAMILIES]


_register_lock = threading.Lock()
