"""Slow statements: what happens to one (log, counter, the app's bounded top list, the index advisor), and where
in the app a statement was run from."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import deque
from types import FrameType
from typing import TYPE_CHECKING, Any

import sqlalchemy
from prometheus_client import Counter

from slipstream.quantiles import percentile
from slipstream.record import current_record
from slipstream.sqlalchemy.fingerprint import Fingerprint

if TYPE_CHECKING:
    from slipstream.sqlalchemy.index_hints import IndexAdvisor

log = logging.getLogger("slipstream.sql")

# Frames in these directories are not "the caller": the first frame outside them is.
_LIBRARY_DIRECTORIES = (
    os.path.dirname(sqlalchemy.__file__ or "sqlalchemy") + os.sep,
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,
)


class SlowQueries:
    """The slowest statement fingerprints seen, with count, p50, p95 and max; bounded in fingerprints and samples."""

    def __init__(self, limit: int = 100, samples: int = 256) -> None:
        self.limit = limit
        self.samples = samples
        self.lock = threading.Lock()
        self.entries: dict[str, _SlowStats] = {}

    def add(
        self, print_: Fingerprint, system: str, seconds: float, route: str | None, caller: str | None = None
    ) -> None:
        with self.lock:
            stats = self.entries.get(print_.text)
            if stats is None:
                if len(self.entries) >= self.limit:
                    # Keep the slowest: a newcomer replaces the fingerprint with the lowest maximum, if slower.
                    fastest = min(self.entries, key=lambda text: self.entries[text].max)
                    if self.entries[fastest].max >= seconds:
                        return
                    del self.entries[fastest]
                stats = self.entries[print_.text] = _SlowStats(print_, system, self.samples)
            stats.count += 1
            stats.max = max(stats.max, seconds)
            stats.durations.append(seconds)
            if route is not None:
                stats.route = route
            if caller is not None:
                stats.caller = caller

    def snapshot(self, top: int = 20) -> list[dict[str, Any]]:
        with self.lock:
            rows = [stats.summary() for stats in self.entries.values()]
        return sorted(rows, key=lambda row: -row["p95"])[:top]

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


class SlowStatements:
    """One engine's slow statements: a WARNING naming route and caller, a counter, the app's top list, and the
    index advisor's chance to plan a slow SELECT."""

    def __init__(self, system: str, counter: Counter, store: SlowQueries, advisor: IndexAdvisor | None) -> None:
        self.system = system
        self.counter = counter
        self.store = store
        self.advisor = advisor

    def record(self, print_: Fingerprint, statement: str, rest: tuple[Any, ...], seconds: float) -> None:
        record = current_record()
        route = record.resolve_route() if record is not None else None
        caller = caller_location()
        self.counter.labels(self.system, print_.operation, print_.collection or "").inc()
        self.store.add(print_, self.system, seconds, route, caller)
        log.warning(
            "slow query: %.1f ms %s (route %s, from %s)",
            seconds * 1000,
            print_.text,
            route,
            caller,
            extra={
                "fingerprint": print_.text,
                "duration_ms": round(seconds * 1000, 3),
                "db_system_name": self.system,
                "http_route": route,
                "caller": caller,
            },
        )
        advisor = self.advisor
        if advisor is not None and print_.operation == "SELECT" and rest:
            # do_execute / do_executemany pass (parameters, context); do_execute_no_params passes (context,).
            context = rest[-1]
            parameters = rest[0] if len(rest) > 1 else ()
            connection = getattr(context, "root_connection", None)
            if connection is not None:
                advisor.consider(connection, print_, statement, parameters)


class _SlowStats:
    __slots__ = ("caller", "count", "durations", "max", "print_", "route", "system")

    def __init__(self, print_: Fingerprint, system: str, samples: int) -> None:
        self.print_ = print_
        self.system = system
        self.count = 0
        self.max = 0.0
        self.route: str | None = None
        # Where in the app the latest slow run came from (file:line).
        self.caller: str | None = None
        self.durations: deque[float] = deque(maxlen=samples)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.durations)
        return {
            "fingerprint": self.print_.text,
            "db_system_name": self.system,
            "operation": self.print_.operation,
            "collection": self.print_.collection,
            "route": self.route,
            "caller": self.caller,
            "count": self.count,
            "p50": percentile(ordered, 0.5),
            "p95": percentile(ordered, 0.95),
            "max": round(self.max, 6),
        }


def caller_location() -> str | None:
    """``file:line`` of the innermost frame outside SQLAlchemy and slipstream, following greenlets to their parent.

    An AsyncSession runs the ORM's synchronous code in a greenlet; the code that awaited it is in the parent
    greenlet's frames, so the walk continues there when this greenlet's frames run out.
    """
    frame: FrameType | None = sys._getframe(1)
    try:
        from greenlet import getcurrent
    except ImportError:  # pragma: no cover - greenlet comes with sqlalchemy[asyncio]
        current = None
    else:
        current = getcurrent()
    while True:
        while frame is not None:
            filename = frame.f_code.co_filename
            if not filename.startswith(_LIBRARY_DIRECTORIES) and not filename.startswith("<"):
                return f"{filename}:{frame.f_lineno}"
            frame = frame.f_back
        current = current.parent if current is not None else None
        if current is None:
            return None
        frame = current.gr_frame
