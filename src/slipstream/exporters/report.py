"""The JSON report: slowest routes (p50/p95/p99), error rates, cache hit ratio, compression savings, slow operations.

Opt-in (``report_enabled``). A receiver of finished requests; it keeps the last
``SAMPLES`` durations per route and per operation, for at most ``MAX_ROUTES`` routes and ``MAX_OPERATIONS``
operations, so its memory is bounded however long the process lives. Served at /report next to /metrics.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter as Tally
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from prometheus_client.metrics_core import Metric
from starlette.types import Receive, Scope, Send

from slipstream.exporters.metrics import Metrics
from slipstream.exporters.prometheus import MetricsAccess, refusal_response
from slipstream.outbound.totals import OutboundTotals
from slipstream.quantiles import percentile
from slipstream.record import Receiver, RequestRecord

SAMPLES = 1024
MAX_ROUTES = 500
MAX_OPERATIONS = 200
MAX_HOSTS = 50  # per route
TOP = 20
OVERFLOW = "__other__"
E = TypeVar("E")


class _Series:
    __slots__ = ("count", "errors", "samples")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.samples: deque[float] = deque(maxlen=SAMPLES)


class _Outbound:
    """One route's outbound calls: its requests that made any, and their totals summed (at most MAX_HOSTS hosts)."""

    __slots__ = ("request_seconds", "requests", "totals")

    def __init__(self) -> None:
        self.requests = 0
        self.request_seconds = 0.0  # those requests' own durations: what the calls' time is a share of
        self.totals = OutboundTotals(MAX_HOSTS, OVERFLOW)

    def add(self, totals: OutboundTotals, request_seconds: float) -> None:
        self.requests += 1
        self.request_seconds += request_seconds
        self.totals.merge(totals)

    def row(self) -> dict[str, Any]:
        totals = self.totals
        slowest = sorted(totals.hosts.items(), key=lambda item: -item[1][1])[:3]
        return {
            "requests": self.requests,
            "calls": totals.calls,
            "seconds": round(totals.seconds, 6),
            "time_share": round(totals.seconds / self.request_seconds, 4) if self.request_seconds else None,
            "llm_calls": totals.llm_calls,
            "input_tokens": totals.input_tokens,
            "output_tokens": totals.output_tokens,
            "cost": round(totals.cost, 6),
            "slowest_hosts": [
                {"host": host, "calls": int(calls), "mean": round(total / calls, 6), "max": round(top, 6)}
                for host, (calls, total, top) in slowest
            ],
        }


Rows = Callable[[], list[dict[str, Any]]]


def _none() -> list[dict[str, Any]]:
    return []


class Report(Receiver):
    """Bounded in-memory summaries of recent requests and operations, with the database's slow statements."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        slow_queries: Rows = _none,
        index_hints: Rows = _none,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self.slow_queries = slow_queries
        self.index_hints = index_hints
        self.clock = clock
        self.started = clock()
        self.lock = threading.Lock()
        self.routes: dict[tuple[str, str], _Series] = {}
        self.operations: dict[str, _Series] = {}
        self.cache: Tally[str] = Tally()
        self.outbound: dict[tuple[str, str], _Outbound] = {}

    def request_finished(self, record: RequestRecord) -> None:
        key = (record.method, record.label)
        with self.lock:
            # The route's series is there on all but its first request: looked up here, _entry only to make it.
            series = self.routes.get(key)
            if series is None:
                series = _entry(self.routes, key, (OVERFLOW, OVERFLOW), MAX_ROUTES, _Series)
            series.count += 1
            series.errors += record.status >= 500
            series.samples.append(record.seconds)
            if record.cache is not None:
                self.cache[record.cache] += 1
            if record.operations:
                for name, (calls, total) in record.operations.items():
                    operation = _entry(self.operations, name, OVERFLOW, MAX_OPERATIONS, _Series)
                    operation.count += int(calls)
                    operation.samples.append(total / calls)
            if record.outbound is not None:
                self._note_outbound(record, record.outbound)

    def _note_outbound(self, record: RequestRecord, totals: OutboundTotals) -> None:
        route = _entry(self.outbound, (record.method, record.label), (OVERFLOW, OVERFLOW), MAX_ROUTES, _Outbound)
        route.add(totals, record.seconds)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            routes = [
                {"method": method, "route": route, **_summary(series)}
                for (method, route), series in self.routes.items()
            ]
            operations = [{"operation": name, **_summary(series)} for name, series in self.operations.items()]
            cache = dict(self.cache)
            outbound = [
                {"method": method, "route": route, **calls.row()} for (method, route), calls in self.outbound.items()
            ]
        for row in routes:
            row["error_rate"] = round(row.pop("errors") / row["requests"], 4)
        for row in operations:
            row["calls"] = row.pop("requests")
            del row["errors"]
        served = sum(cache.get(outcome, 0) for outcome in ("HIT", "STALE", "MISS"))
        hits = cache.get("HIT", 0) + cache.get("STALE", 0)
        return {
            "generated_at": self.clock(),
            "window_started_at": self.started,
            "samples_per_series": SAMPLES,
            "slowest_routes": sorted(routes, key=lambda row: -row["p95"])[:TOP],
            "error_routes": sorted(
                (row for row in routes if row["error_rate"] > 0), key=lambda row: -row["error_rate"]
            )[:TOP],
            "cache": {
                "outcomes": cache,
                "hit_ratio": round(hits / served, 4) if served else None,
            },
            "compression": self._compression(),
            "slowest_operations": sorted(operations, key=lambda row: -row["p95"])[:TOP],
            # Routes that called other services: by time in those calls, each with its slowest hosts.
            "outbound_routes": sorted(outbound, key=lambda row: -row["seconds"])[:TOP],
            "slow_queries": self.slow_queries()[:TOP],
            "index_hints": self.index_hints(),
        }

    def _compression(self) -> dict[str, dict[str, float | None]]:
        given = _by_label(self.metrics.compression_input_bytes.collect())
        made = _by_label(self.metrics.compression_output_bytes.collect())
        return {
            coding: {
                "input_bytes": size,
                "output_bytes": made.get(coding, 0.0),
                "savings_ratio": round(1 - made.get(coding, 0.0) / size, 4) if size else None,
            }
            for coding, size in given.items()
        }

    def json(self) -> bytes:
        return json.dumps(self.snapshot(), separators=(",", ":")).encode()


def _entry(table: dict[Any, E], key: Any, overflow: Any, limit: int, make: Callable[[], E]) -> E:
    """``table[key]``, made on first use; past ``limit`` keys, new ones share the ``overflow`` entry."""
    found = table.get(key)
    if found is None:
        if len(table) >= limit:
            key = overflow
            found = table.get(key)
        if found is None:
            found = table[key] = make()
    return found


def _summary(series: _Series) -> dict[str, Any]:
    ordered = sorted(series.samples)
    return {
        "requests": series.count,
        "errors": series.errors,
        "p50": percentile(ordered, 0.5),
        "p95": percentile(ordered, 0.95),
        "p99": percentile(ordered, 0.99),
        "max": round(ordered[-1], 6),
    }


def _by_label(families: Iterable[Metric]) -> dict[str, float]:
    return {s.labels["encoding"]: s.value for f in families for s in f.samples if s.name.endswith("_total")}


class ReportApp:
    """The report as an ASGI app, to mount on the app's port when ``report_path`` asks for it."""

    def __init__(self, report: Report, access: MetricsAccess | None = None) -> None:
        self.report = report
        self.access = access or MetricsAccess()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        authorization = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        refusal = self.access.verdict(client[0] if client else None, authorization)
        if refusal is not None:
            status, headers, body = refusal_response(refusal)
        else:
            status, body = 200, self.report.json()
            headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
        headers = [*headers, (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
