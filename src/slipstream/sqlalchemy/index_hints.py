"""Index hints: slow SELECTs whose query plan scans a whole table, and the columns an index would need.

The plan is asked for on a separate connection from the statement's engine, in the background (a worker thread
for sync drivers, a task on the running loop for async ones), once per fingerprint and at most ``max_per_minute``
times a minute, so the statement that triggered it is never delayed and never fails because of it. The plan and
the catalog reads run on that connection's DBAPI cursor (see ``plans.full_scans``), so the instrumentation never
counts them as the app's statements. A column that already leads an index is never hinted; the indexes are read
afresh with each plan rather than cached, since plans are few (rate-limited, one per fingerprint) and a cache would
miss an index created or dropped since. Parameter values are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.pool import StaticPool

from slipstream.sqlalchemy.plans import PLAN_PREFIXES, FullScan, full_scans, postgres_filtered_scans, sqlite_full_scans
from slipstream.sqlalchemy.where_clause import where_columns

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from slipstream.sqlalchemy.fingerprint import Fingerprint

# The plan readers lived here before the split; they stay importable from here.
__all__ = ["IndexAdvisor", "IndexHint", "postgres_filtered_scans", "sqlite_full_scans", "where_columns"]

log = logging.getLogger("slipstream.sql")

_WORKER_IDLE = 30.0  # seconds an idle worker thread waits for more plans before it exits


@dataclass(frozen=True, slots=True)
class IndexHint:
    """A full scan of ``table`` that an index on ``columns`` would turn into a search."""

    table: str
    columns: tuple[str, ...]
    fingerprint: str
    plan: str
    dialect: str


class IndexAdvisor:
    """Asks the database for the plan of slow SELECTs and reports the full scans an index would avoid."""

    def __init__(
        self,
        *,
        max_per_minute: int = 6,
        max_hints: int = 100,
        on_hint: Callable[[IndexHint], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = 5.0,
        max_fingerprints: int = 1000,
    ) -> None:
        if max_per_minute < 0 or max_hints < 1 or max_fingerprints < 1 or timeout <= 0:
            raise ValueError("max_per_minute >= 0, max_hints >= 1, max_fingerprints >= 1 and timeout > 0 expected")
        self.max_per_minute = max_per_minute
        self.max_fingerprints = max_fingerprints
        self.timeout = timeout
        self.on_hint = on_hint
        self._clock = clock
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._hint_keys: OrderedDict[tuple[str, tuple[str, ...]], None] = OrderedDict()
        self._hints: deque[IndexHint] = deque(maxlen=max_hints)
        self._started: deque[float] = deque()
        self._wake = threading.Condition(self._lock)
        self._jobs: deque[Callable[[], None] | None] = deque()
        self._worker: threading.Thread | None = None
        self._pending = 0  # plans queued for or running in the worker thread
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def hints(self) -> list[IndexHint]:
        """The distinct hints found so far, newest last."""
        with self._lock:
            return list(self._hints)

    def consider(self, connection: Connection, print_: Fingerprint, statement: str, parameters: Any) -> None:
        """Plan ``statement`` in the background if it is a SELECT not planned before and the rate limit allows."""
        try:
            self._consider(connection, print_, statement, parameters)
        except Exception:
            log.debug("index hint: could not schedule a plan for %s", print_.text, exc_info=True)

    def _consider(self, connection: Connection, print_: Fingerprint, statement: str, parameters: Any) -> None:
        if print_.operation.upper() != "SELECT" or statement[:7].upper() == "EXPLAIN":
            return
        engine = connection.engine
        if engine.dialect.name not in PLAN_PREFIXES or isinstance(engine.pool, StaticPool):
            return  # a StaticPool would hand the plan the statement's own connection
        if engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:"):
            return  # another connection sees a different, empty in-memory database
        loop = asyncio.get_running_loop() if engine.dialect.is_async else None
        if isinstance(parameters, list):  # executemany: the first set of parameters stands for all
            parameters = parameters[0] if parameters else None
        with self._lock:
            if self._closed:
                return
            now = self._clock()
            while self._started and now - self._started[0] >= 60.0:
                self._started.popleft()
            if print_.text in self._seen or len(self._started) >= self.max_per_minute:
                return
            self._started.append(now)
            self._seen[print_.text] = None
            if len(self._seen) > self.max_fingerprints:
                self._seen.popitem(last=False)
            if loop is None:
                self._pending += 1
                self._jobs.append(lambda: self._plan_in_thread(engine, print_.text, statement, parameters))
                self._wake.notify()
                if self._worker is None:
                    self._worker = threading.Thread(target=self._work, name="slipstream-index-hints", daemon=True)
                    self._worker.start()
                return
        task = loop.create_task(self._plan_in_task(engine, print_.text, statement, parameters))
        self._tasks.add(task)  # the loop keeps only a weak reference to its tasks
        task.add_done_callback(self._tasks.discard)

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._wake.wait_for(lambda: bool(self._jobs), _WORKER_IDLE):
                    self._worker = None
                    return
                job = self._jobs.popleft()
            if job is None:
                return
            job()

    def _plan_in_thread(self, engine: Engine, text: str, statement: str, parameters: Any) -> None:
        try:
            if not self._closed:
                with engine.connect() as connection:
                    scans = full_scans(connection, statement, parameters, self.timeout)
                self._report(engine.dialect.name, scans, text)
        except Exception as error:
            # The class only: a driver's message can quote parameter values.
            log.debug("index hint: planning %s failed: %s", text, type(error).__name__)
        finally:
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    async def _plan_in_task(self, engine: Engine, text: str, statement: str, parameters: Any) -> None:
        # Here, not at the top: the asyncio extension needs greenlet, which only async engines bring.
        from sqlalchemy.ext.asyncio import AsyncEngine

        async def plan() -> list[FullScan]:
            # The app's AsyncEngine for this engine if it has one: a second proxy would unregister it when collected.
            async with AsyncEngine._retrieve_proxy_for_target(engine).connect() as connection:
                # run_sync: the adapted DBAPI cursor awaits the driver inside SQLAlchemy's greenlet.
                return await connection.run_sync(full_scans, statement, parameters, self.timeout)

        try:
            scans = await asyncio.wait_for(plan(), self.timeout)
            self._report(engine.dialect.name, scans, text)
        except Exception as error:
            log.debug("index hint: planning %s failed: %s", text, type(error).__name__)

    def _report(self, dialect: str, scans: list[FullScan], text: str) -> None:
        for scan in scans:
            self._add(IndexHint(scan.table, scan.columns, text, scan.plan, dialect))

    def _add(self, hint: IndexHint) -> None:
        key = (hint.table.lower(), hint.columns)
        with self._lock:
            if key in self._hint_keys:
                return
            self._hint_keys[key] = None
            if len(self._hint_keys) > self.max_fingerprints:
                self._hint_keys.popitem(last=False)
            self._hints.append(hint)
        log.warning(
            "index hint: %s(%s) would avoid a full scan for: %s",
            hint.table,
            ", ".join(hint.columns),
            hint.fingerprint,
            extra={"table": hint.table, "columns": list(hint.columns), "fingerprint": hint.fingerprint},
        )
        if self.on_hint is not None:
            try:
                self.on_hint(hint)
            except Exception:
                log.debug("index hint: on_hint failed", exc_info=True)

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for plans running in the worker thread; True when none is left."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    async def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for this loop's plan tasks and the worker thread; True when all are done."""
        deadline = time.monotonic() + timeout
        tasks = {task for task in self._tasks if task.get_loop() is asyncio.get_running_loop()}
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        while self._pending and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return not self._pending and all(task.done() for task in tasks)

    def close(self, timeout: float = 5.0) -> None:
        """Stop planning: queued plans are dropped, running tasks cancelled, the worker thread joined."""
        with self._lock:
            self._closed = True
            worker, self._worker = self._worker, None
            if worker is not None:
                self._jobs.append(None)
                self._wake.notify()
        for task in list(self._tasks):
            try:
                task.get_loop().call_soon_threadsafe(task.cancel)
            except RuntimeError:  # pragma: no cover - a loop closed while its plan task was pending
                pass
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout)
