"""The live page of one app: its history of the app's metrics, its findings receiver, and the page's endpoints.

With ``metrics_multiprocess_dir`` set the history reads every worker's files, as the sidecar does, so the page on
the app's port (``live_path``) shows the whole app whichever worker answers; the sections only a process knows
(statement texts, N+1 callers, Redis state) are that worker's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client.metrics_core import Metric

from slipstream.exporters.live.findings import LiveFindings
from slipstream.exporters.live.history import History
from slipstream.exporters.live.view import LiveView
from slipstream.exporters.live.web import LivePage
from slipstream.exporters.prometheus import MetricsAccess

if TYPE_CHECKING:
    from slipstream.instrumentation import Instrumentation


class AppLive:
    """Everything the live page of ``instrumentation``'s app needs; built when ``live_enabled`` is on."""

    def __init__(self, instrumentation: Instrumentation) -> None:
        s = instrumentation.settings
        self.instrumentation = instrumentation
        self.findings = LiveFindings(instrumentation.metrics)
        collect: Callable[[], Iterable[Metric]] = instrumentation.registry.collect
        if s.metrics_multiprocess_dir is not None:
            from prometheus_client.multiprocess import MultiProcessCollector

            merged: Callable[[], Iterable[Metric]] = MultiProcessCollector(  # type: ignore[no-untyped-call]
                None, path=s.metrics_multiprocess_dir
            ).collect
            writes = instrumentation.metrics.writes

            def collect() -> Iterable[Metric]:
                writes.flush()  # this worker's own increments, written in batches, are current on its page
                return merged()

        self.history = History(collect, interval=s.live_history_interval)
        self.view = LiveView(self.history, source="app", extras=self.extras)
        access = MetricsAccess(s.metrics_bearer_token, s.metrics_allow_networks)
        # At / of the metrics port, and at live_path of the app's port when set.
        self.port_page = LivePage(self.view, access)
        self.app_page = LivePage(self.view, access, s.live_path) if s.live_path is not None else None

    def extras(self) -> dict[str, Any]:
        """What only this process knows: slow statements with their caller, N+1 findings, index hints, the cache."""
        instrumentation = self.instrumentation
        extras: dict[str, Any] = {"n_plus_one_findings": self.findings.findings()}
        if instrumentation.slow_queries is not None:
            extras["slow_statements"] = instrumentation.slow_queries.snapshot()
            extras["index_hints"] = instrumentation._index_hints()
        cache = instrumentation.cache
        if cache is not None:
            memory, redis = cache.memory, cache.redis
            extras["cache_state"] = {
                "memory": {
                    "entries": len(memory),
                    "bytes": memory.bytes,
                    "max_bytes": memory.max_bytes,
                    "evictions": memory.evictions,
                },
                "redis": {"state": redis.breaker.state, "failures": redis.breaker.failures_total}
                if redis is not None
                else None,
            }
        return extras
