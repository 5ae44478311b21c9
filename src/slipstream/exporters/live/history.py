"""The live page's history: a bounded ring of snapshots, one a minute, and the thread that takes them.

Each snapshot holds the cumulative totals the charts are drawn from (requests, 5xx, the duration buckets, cache hits
and lookups): a minute's values are the difference between two neighbours, so the ring of ``points + 1`` snapshots
gives the last hour. The full reading (every table's series) is kept in the newest ``RECENT`` snapshots only: the
tables show the last few minutes, and older readings would only take memory. So the ring's size depends on the
label values of the app's metrics (themselves bounded) and never on how long the process lives.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client.metrics_core import Metric

from slipstream.exporters.live.reading import ERRORS, Distribution, Reading, read

log = logging.getLogger("slipstream")

POINTS = 60
# Snapshots that keep their full reading: the tables' window is the newest one against the oldest of these.
RECENT = 6
DURATION = "http_server_request_duration_seconds"


@dataclass(frozen=True)
class Totals:
    """What the charts need from one reading, summed over every route."""

    requests: float
    errors: float
    duration: Distribution | None
    hits: float
    lookups: float

    @classmethod
    def of(cls, reading: Reading) -> Totals:
        duration: Distribution | None = None
        for distribution in reading.histogram(DURATION).values():
            duration = distribution if duration is None else duration.plus(distribution)
        cache = reading.counter("slipstream_cache_requests_total")
        hits = sum(value for (result, _), value in cache.items() if result in ("hit", "stale"))
        misses = sum(value for (result, _), value in cache.items() if result == "miss")
        return cls(
            requests=duration.count if duration is not None else 0.0,
            errors=sum(reading.counter(ERRORS).values()),
            duration=duration,
            hits=hits,
            lookups=hits + misses,
        )


NOTHING = Totals(requests=0.0, errors=0.0, duration=None, hits=0.0, lookups=0.0)


class Snapshot:
    __slots__ = ("reading", "time", "totals")

    def __init__(self, time: float, reading: Reading) -> None:
        self.time = time
        self.totals = Totals.of(reading)
        self.reading: Reading | None = reading


class History:
    """Snapshots of ``collect()`` every ``interval`` seconds, the last ``points + 1`` of them."""

    def __init__(
        self,
        collect: Callable[[], Iterable[Metric]],
        *,
        interval: float = 60.0,
        points: int = POINTS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not interval > 0 or points < 1:
            raise ValueError("the history needs an interval above 0 and at least one point")
        self.collect = collect
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self.ring: deque[Snapshot] = deque(maxlen=points + 1)
        self.lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def read(self) -> Reading:
        return read(self.collect())

    def sample(self) -> None:
        """Take a snapshot now; the one leaving the recent few forgets its full reading."""
        snapshot = Snapshot(self.clock(), self.read())
        with self.lock:
            self.ring.append(snapshot)
            if len(self.ring) > RECENT:
                self.ring[-RECENT - 1].reading = None

    def window(self) -> tuple[float, Reading | None]:
        """The time and reading the tables count from: the oldest recent snapshot, or the start with none yet."""
        with self.lock:
            recent = [snapshot for snapshot in self.ring if snapshot.reading is not None]
        if not recent:
            return self.started, None
        return recent[0].time, recent[0].reading

    def charts(self, now: float, current: Totals) -> dict[str, list[Any]]:
        """One point per interval, and one for the interval under way: request rate, p95, error and hit ratios."""
        with self.lock:
            marks = [(snapshot.time, snapshot.totals) for snapshot in self.ring]
        if not marks:
            # Not sampling (the app's lifespan did not run): one point for the time since the start.
            marks.append((self.started, NOTHING))
        marks.append((now, current))
        columns: dict[str, list[Any]] = {"time": [], "rate": [], "p95": [], "error_ratio": [], "hit_ratio": []}
        for (then, before), (at, after) in itertools.pairwise(marks):
            seconds = at - then
            if seconds <= 0:
                continue
            requests = _since(after.requests, before.requests)
            lookups = _since(after.lookups, before.lookups)
            duration = after.duration.since(before.duration) if after.duration is not None else None
            columns["time"].append(round(at, 3))
            columns["rate"].append(round(requests / seconds, 4))
            columns["p95"].append(_rounded(duration.quantile(0.95) if duration is not None else None))
            columns["error_ratio"].append(
                round(_since(after.errors, before.errors) / requests, 4) if requests > 0 else None
            )
            columns["hit_ratio"].append(round(_since(after.hits, before.hits) / lookups, 4) if lookups > 0 else None)
        return columns

    # The sampling thread -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Take a first snapshot now, then one every ``interval`` seconds from a daemon thread."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._safe_sample()
        self._thread = threading.Thread(target=self._run, name="slipstream-live-history", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            self._safe_sample()

    def _safe_sample(self) -> None:
        try:
            self.sample()
        except Exception:
            log.exception("slipstream: the live page's history could not read the metrics")


def _since(value: float, base: float) -> float:
    return value if base > value else value - base


def _rounded(value: float | None) -> float | None:
    return round(value, 6) if value is not None else None
