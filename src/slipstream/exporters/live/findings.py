"""What the live page needs beyond the other metrics, recorded from each finished request.

Two counters, so the sidecar's merge carries them too: the cache's result by route
(``slipstream_cache_route_requests_total``) and the bottleneck operation by route (``slipstream_bottlenecks_total``).
And, in the app process only, the N+1 findings with their statement and the line that ran it, the latest
``MAX_FINDINGS`` (route, statement) pairs, so memory stays bounded however many the app has.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from slipstream.exporters.metrics import LabelledChildren, Metrics, counter_adder
from slipstream.record import Receiver, RequestRecord

MAX_FINDINGS = 200
# Distinct (route, operation) pairs counted as bottlenecks; later ones are counted together.
MAX_BOTTLENECK_LABELS = 1000


class _Finding:
    __slots__ = ("caller", "executions", "last_seen", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.executions = 0
        self.caller: str | None = None
        self.last_seen = 0.0


class LiveFindings(Receiver):
    """Counts cache results and bottlenecks by route; keeps the latest N+1 findings. Runs after BottleneckLog."""

    def __init__(self, metrics: Metrics, clock: Callable[[], float] = time.time) -> None:
        cache, writes = metrics.cache_route_requests, metrics.writes
        # Counted on every request the cache saw: through the child's own value, as http_metrics counts.
        self.cache_results = LabelledChildren(
            lambda method, route, result: counter_adder(cache.labels(method, route, result.lower()), writes)
        )
        self.bottlenecks = LabelledChildren(metrics.bottlenecks.labels, MAX_BOTTLENECK_LABELS, ("__other__", "other"))
        self.clock = clock
        self.lock = threading.Lock()
        self.n_plus_one: OrderedDict[tuple[str, str, str], _Finding] = OrderedDict()

    def request_finished(self, record: RequestRecord) -> None:
        if record.cache is not None:
            self.cache_results[record.method, record.label, record.cache](1)
        if record.bottleneck is not None:
            self.bottlenecks[record.label, record.bottleneck].inc()
        if record.n_plus_one:
            self._note_n_plus_one(record)

    def _note_n_plus_one(self, record: RequestRecord) -> None:
        assert record.n_plus_one is not None
        seen = record.fingerprints or {}
        now = self.clock()
        with self.lock:
            for text, caller in record.n_plus_one.items():
                key = (record.method, record.label, text)
                finding = self.n_plus_one.get(key)
                if finding is None:
                    finding = self.n_plus_one[key] = _Finding()
                    if len(self.n_plus_one) > MAX_FINDINGS:
                        self.n_plus_one.popitem(last=False)
                else:
                    self.n_plus_one.move_to_end(key)
                finding.requests += 1
                finding.executions = seen.get(text, 0)
                finding.caller = caller
                finding.last_seen = now

    def findings(self) -> list[dict[str, Any]]:
        """The N+1 findings, the most recent first."""
        with self.lock:
            items = list(self.n_plus_one.items())
        return [
            {
                "method": method,
                "route": route,
                "fingerprint": text,
                "requests": finding.requests,
                "executions": finding.executions,
                "caller": finding.caller,
                "last_seen": round(finding.last_seen, 3),
            }
            for (method, route, text), finding in reversed(items)
        ]
