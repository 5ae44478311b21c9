"""Multiprocess mode's increments on the request path, summed in memory and written to prometheus_client's files in
batches.

In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) prometheus_client writes every increment to the process's
memory-mapped file as it happens, under a process-wide lock: about 0.4 µs more than an in-memory increment, and a
request makes a dozen (three histograms, the in-flight gauge twice, the cache's counters). `DeferredWrites` sums
them per value instead and writes each value that changed once per ``interval``, from a thread of its own, when
the instrumentation stops, and when the process exits. What `slipstream sidecar` merges lags by at most
``interval``; a worker killed outright (SIGKILL, the OOM killer) loses at most its last ``interval`` of increments,
as a process exporting in batches does. ``interval`` 0 writes every increment at once, as prometheus_client does.

Not "when no request is in flight": a fast app's requests run one after the other on the event loop even under
load (each without a pause inside), so that would write after every request and batch nothing.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from collections.abc import Callable
from typing import Protocol


class Value(Protocol):
    """A prometheus_client value object (``MutexValue``, or ``MmapedValue`` in multiprocess mode)."""

    def inc(self, amount: float) -> None: ...


class DeferredWrites:
    """Sums increments of multiprocess values and writes them every ``interval`` seconds (see the module)."""

    def __init__(self, interval: float) -> None:
        if interval < 0:
            raise ValueError(f"the flush interval must be at least 0, got {interval}")
        self.interval = interval
        self._pending: dict[Value, float] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._hooked = False

    def adder(self, value: Value) -> Callable[[float], None]:
        """``value.inc``, deferred when the value is written to a multiprocess file and ``interval`` is above 0."""
        if self.interval <= 0 or not getattr(value, "_multiprocess", False):
            return value.inc
        if not self._hooked:
            # Only once something is deferred (hooks cannot be removed: most instances never need them).
            self._hooked = True
            reference = weakref.ref(self)
            atexit.register(_flush_if_alive, reference)
            os.register_at_fork(after_in_child=lambda: _forget_if_alive(reference))
        pending = self._pending

        def add(amount: float) -> None:
            with self._lock:
                pending[value] = pending.get(value, 0.0) + amount
            if self._thread is None:
                self._start()

        return add

    def flush(self) -> None:
        """Write what was summed since the last flush, one increment per value that changed."""
        with self._lock:
            summed = list(self._pending.items())
            self._pending.clear()
        for value, amount in summed:
            if amount:
                value.inc(amount)

    def stop(self) -> None:
        """Stop the writing thread and write what is left (the instrumentation's shutdown). An increment after
        this starts the thread again (a second lifespan)."""
        with self._lock:
            thread, self._thread = self._thread, None
            stopped = self._stopped
            self._stopped = threading.Event()
        stopped.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=max(1.0, 2 * self.interval))
        self.flush()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = thread = threading.Thread(
                target=self._run, args=(self._stopped,), name="slipstream-metrics-writer", daemon=True
            )
        thread.start()

    def _run(self, stopped: threading.Event) -> None:
        while not stopped.wait(self.interval):
            self.flush()

    def _after_fork(self) -> None:
        """In a child forked from a process that summed increments: those are the parent's to write, and the
        parent's thread and lock are not the child's. The child starts its own thread at its first increment."""
        self._lock = threading.Lock()
        self._pending.clear()
        self._thread = None


def _flush_if_alive(reference: weakref.ref[DeferredWrites]) -> None:
    writes = reference()
    if writes is not None:
        writes.flush()


def _forget_if_alive(reference: weakref.ref[DeferredWrites]) -> None:
    writes = reference()
    if writes is not None:
        writes._after_fork()
