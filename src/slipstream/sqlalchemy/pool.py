"""Connection-pool gauges, read from the instrumented engines' pools when Prometheus scrapes."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from slipstream.sqlalchemy.hooks import EngineHooks


class PoolCollector(Collector):
    """Connection counts read from the instrumented engines' pools at scrape time."""

    def __init__(self) -> None:
        self.engines: weakref.WeakSet[EngineHooks] = weakref.WeakSet()

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
        for hooks in list(self.engines):
            state = hooks.pool_state()
            pending.add_metric((hooks.pool_name,), hooks.pending)
            if state is None:
                continue
            idle, used, most = state
            count.add_metric((hooks.pool_name, "idle"), idle)
            count.add_metric((hooks.pool_name, "used"), used)
            if most is not None:
                maximum.add_metric((hooks.pool_name,), most)
        yield from (count, maximum, pending)

    def describe(self) -> Iterable[Metric]:
        return []


_collectors: weakref.WeakKeyDictionary[CollectorRegistry, PoolCollector] = weakref.WeakKeyDictionary()
_collectors_lock = threading.Lock()


def pool_collector(registry: CollectorRegistry) -> PoolCollector:
    with _collectors_lock:
        found = _collectors.get(registry)
        if found is None:
            found = _collectors[registry] = PoolCollector()
            registry.register(found)
        return found
