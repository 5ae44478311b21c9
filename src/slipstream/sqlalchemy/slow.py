"""Slow statements: the bounded top list an app's report shows, and where in the app a statement was run from."""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from types import FrameType
from typing import Any

import sqlalchemy

from slipstream.quantiles import percentile
from slipstream.sqlalchemy.fingerprint import Fingerprint

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

    def add(self, print_: Fingerprint, system: str, seconds: float, route: str | None) -> None:
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

    def snapshot(self, top: int = 20) -> list[dict[str, Any]]:
        with self.lock:
            rows = [stats.summary() for stats in self.entries.values()]
        return sorted(rows, key=lambda row: -row["p95"])[:top]

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


class _SlowStats:
    __slots__ = ("count", "durations", "max", "print_", "route", "system")

    def __init__(self, print_: Fingerprint, system: str, samples: int) -> None:
        self.print_ = print_
        self.system = system
        self.count = 0
        self.max = 0.0
        self.route: str | None = None
        self.durations: deque[float] = deque(maxlen=samples)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.durations)
        return {
            "fingerprint": self.print_.text,
            "db_system_name": self.system,
            "operation": self.print_.operation,
            "collection": self.print_.collection,
            "route": self.route,
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
