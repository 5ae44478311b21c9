"""The live page's JSON: tables over the last few minutes and charts over the last hour, from the history.

Every figure that metrics carry is computed from metrics, so the sidecar's page (merged workers) and an app's page
say the same; what only the app process knows (statement texts with their calling line, N+1 findings, index hints,
the cache's tiers and Redis breaker) comes from ``extras``, and the page shows those sections when they are there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from slipstream.exporters.live.history import DURATION, History, Totals
from slipstream.exporters.live.reading import ERRORS, Distribution, Key, Reading

Extras = Callable[[], dict[str, Any]]
TOP = 50


def _none() -> dict[str, Any]:
    return {}


class LiveView:
    """Builds the page's JSON from ``history`` (the ring and a fresh reading) and ``extras``."""

    def __init__(self, history: History, *, source: str, extras: Extras = _none) -> None:
        self.history = history
        self.source = source
        self.extras = extras

    def data(self) -> dict[str, Any]:
        history = self.history
        now = history.clock()
        current = history.read()
        since, base = history.window()
        recent = current.since(base)
        seconds = max(now - since, 1e-3)
        totals, window = Totals.of(current), Totals.of(recent)
        return {
            "source": self.source,
            "generated_at": round(now, 3),
            "started_at": round(history.started, 3),
            "interval": history.interval,
            "window_seconds": round(seconds, 3),
            "summary": {
                "requests": totals.requests,
                "rate": round(window.requests / seconds, 4),
                "error_ratio": _ratio(window.errors, window.requests),
                "p95": _quantile(window.duration, 0.95),
                "hit_ratio": _ratio(window.hits, window.lookups),
                "in_flight": sum(current.gauge("http_server_active_requests").values()),
            },
            "routes": routes(recent, current, seconds),
            "charts": history.charts(now, totals),
            "cache": cache(recent, current),
            "compression": compression(current),
            "database": database(recent, current, seconds),
            "operations": operations(recent, current, seconds),
            "bottlenecks": _counts(recent, current, "slipstream_bottlenecks_total", ("route", "operation")),
            **self.extras(),
        }

    def json(self) -> bytes:
        return json.dumps(self.data(), separators=(",", ":"), allow_nan=False).encode()


def routes(recent: Reading, current: Reading, seconds: float) -> list[dict[str, Any]]:
    """Per method and route: rate, error ratio, quantiles and share of time over the window, cache hit ratio."""
    window = recent.histogram(DURATION)
    busy = sum(distribution.total for distribution in window.values()) or 1.0
    errors = recent.counter(ERRORS)
    cached = _hit_ratios(recent.counter("slipstream_cache_route_requests_total"))
    outbound = recent.counter("slipstream_outbound_route_seconds_total")
    llm_calls = recent.counter("slipstream_gen_ai_route_calls_total")
    tokens = recent.counter("slipstream_gen_ai_route_tokens_total")
    costs = recent.counter("slipstream_gen_ai_route_cost_total")
    rows: list[dict[str, Any]] = []
    for key, total in current.histogram(DURATION).items():
        seen = window.get(key)
        count = seen.count if seen is not None else 0.0
        rows.append(
            {
                "method": key[0],
                "route": key[1],
                "requests": total.count,
                "rate": round(count / seconds, 4),
                "error_ratio": _ratio(errors.get(key, 0.0), count),
                "p50": _quantile(seen, 0.5),
                "p95": _quantile(seen, 0.95),
                "p99": _quantile(seen, 0.99),
                "time_share": round(seen.total / busy, 4) if seen is not None and count else 0.0,
                "hit_ratio": cached.get(key),
                # Time in outbound calls as a share of the route's time, and its LLM use, over the window.
                "outbound_share": _ratio(outbound[key], seen.total) if key in outbound and seen is not None else None,
                "llm_calls": llm_calls.get(key, 0.0),
                "tokens": tokens.get(key, 0.0),
                "cost": round(costs.get(key, 0.0), 6),
            }
        )
    rows.sort(key=lambda row: (-row["time_share"], -row["requests"]))
    return rows


def cache(recent: Reading, current: Reading) -> dict[str, Any]:
    """The cache's results by tier, over the window and since the start, and Redis errors."""
    name = "slipstream_cache_requests_total"
    window, total = recent.counter(name), current.counter(name)
    return {
        "results": sorted(
            (
                {"result": result, "tier": tier, "window": window.get((result, tier), 0.0), "total": value}
                for (result, tier), value in total.items()
                if value
            ),
            key=lambda row: (-row["total"], row["result"], row["tier"]),
        ),
        "hit_ratio": _ratio(*_hits(window)),
        "hit_ratio_total": _ratio(*_hits(total)),
        "redis_errors": sum(recent.counter("slipstream_cache_redis_errors_total").values()),
        "redis_errors_total": sum(current.counter("slipstream_cache_redis_errors_total").values()),
    }


def compression(current: Reading) -> list[dict[str, Any]]:
    """Bytes in, out and saved by each content coding since the start."""
    given = current.counter("slipstream_compression_input_bytes_total")
    made = current.counter("slipstream_compression_output_bytes_total")
    rows: list[dict[str, Any]] = []
    for key, size in given.items():
        if not size:
            continue
        produced = made.get(key, 0.0)
        rows.append(
            {
                "coding": key[0],
                "input_bytes": size,
                "output_bytes": produced,
                "saved_bytes": size - produced,
                "savings_ratio": _ratio(size - produced, size),
            }
        )
    return sorted(rows, key=lambda row: -row["saved_bytes"])


def database(recent: Reading, current: Reading, seconds: float) -> dict[str, Any]:
    """Statements by operation and table, slow and failing ones, N+1 findings by route, and the pools."""
    window = recent.histogram("db_client_operation_duration_seconds")
    slow_window = recent.counter("slipstream_db_slow_queries_total")
    slow_total = current.counter("slipstream_db_slow_queries_total")
    statements: list[dict[str, Any]] = []
    for key, total in current.histogram("db_client_operation_duration_seconds").items():
        seen = window.get(key)
        statements.append(
            {
                "system": key[0],
                "operation": key[1],
                "collection": key[2],
                "calls": total.count,
                "rate": round((seen.count if seen is not None else 0.0) / seconds, 4),
                "p95": _quantile(seen, 0.95),
                "seconds": round(seen.total, 6) if seen is not None else 0.0,
                "slow": slow_window.get(key, 0.0),
                "slow_total": slow_total.get(key, 0.0),
            }
        )
    statements.sort(key=lambda row: (-row["seconds"], -row["calls"]))
    return {
        "statements": statements[:TOP],
        "errors": _counts(recent, current, "slipstream_db_client_errors_total", ("system", "error_type")),
        "n_plus_one": _counts(recent, current, "slipstream_db_n_plus_one_total", ("route",)),
        "pools": pools(recent, current),
    }


def pools(recent: Reading, current: Reading) -> list[dict[str, Any]]:
    counts = current.gauge("db_client_connection_count")
    maximum = current.gauge("db_client_connection_max")
    pending = current.gauge("db_client_connection_pending_requests")
    waits = recent.histogram("db_client_connection_wait_time_seconds")
    timeouts = current.counter("db_client_connection_timeouts_total")
    names = {key[0] for key in counts} | {key[0] for key in waits} | {key[0] for key in pending}
    return [
        {
            "pool": name,
            "idle": counts.get((name, "idle")),
            "used": counts.get((name, "used")),
            "max": maximum.get((name,)),
            "pending": pending.get((name,)),
            "wait_p95": _quantile(waits.get((name,)), 0.95),
            "timeouts": timeouts.get((name,), 0.0),
        }
        for name in sorted(names)
    ]


def operations(recent: Reading, current: Reading, seconds: float) -> list[dict[str, Any]]:
    """``@timed`` operations: calls, rate, quantiles and time over the window."""
    name = "slipstream_operation_duration_seconds"
    window = recent.histogram(name)
    rows: list[dict[str, Any]] = []
    for key, total in current.histogram(name).items():
        seen = window.get(key)
        rows.append(
            {
                "operation": key[0],
                "calls": total.count,
                "rate": round((seen.count if seen is not None else 0.0) / seconds, 4),
                "p50": _quantile(seen, 0.5),
                "p95": _quantile(seen, 0.95),
                "seconds": round(seen.total, 6) if seen is not None else 0.0,
            }
        )
    rows.sort(key=lambda row: (-row["seconds"], -row["calls"]))
    return rows[:TOP]


def _counts(recent: Reading, current: Reading, name: str, columns: tuple[str, ...]) -> list[dict[str, Any]]:
    window = recent.counter(name)
    rows: list[dict[str, Any]] = [
        {**dict(zip(columns, key, strict=True)), "window": window.get(key, 0.0), "total": value}
        for key, value in current.counter(name).items()
    ]
    rows.sort(key=lambda row: (-row["window"], -row["total"]))
    return rows[:TOP]


def _hits(counts: dict[Key, float]) -> tuple[float, float]:
    hits = sum(value for key, value in counts.items() if key[0] in ("hit", "stale"))
    return hits, hits + sum(value for key, value in counts.items() if key[0] == "miss")


def _hit_ratios(by_route: dict[Key, float]) -> dict[Key, float | None]:
    tallies: dict[Key, list[float]] = {}
    for (method, route, result), value in by_route.items():
        tally = tallies.setdefault((method, route), [0.0, 0.0])
        if result in ("hit", "stale"):
            tally[0] += value
            tally[1] += value
        elif result == "miss":
            tally[1] += value
    return {key: _ratio(hits, lookups) for key, (hits, lookups) in tallies.items()}


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole > 0 else None


def _quantile(distribution: Distribution | None, q: float) -> float | None:
    if distribution is None:
        return None
    value = distribution.quantile(q)
    return round(value, 6) if value is not None else None
