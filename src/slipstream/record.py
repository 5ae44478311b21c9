"""The current request's record: what the middlewares, ``@timed`` and the SQLAlchemy hooks learn about one request.

TimingMiddleware opens a record per HTTP request and puts it in a ContextVar. Code running for that request,
in its task, in tasks it starts, or in the threadpool (``run_in_threadpool`` copies the context), finds the same
record with ``current_record()`` and adds to it; timing reads it at the end for Server-Timing, span attributes
and the report. Outside a request there is no record and the writers do nothing.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

from starlette.types import Scope

# A request timing many distinct names keeps the first ones; the rest are folded into one.
MAX_OPERATION_NAMES = 64
MAX_FINGERPRINTS = 1000
OTHER_OPERATIONS = "other"


class DatabaseHooks:
    """How many engines are instrumented: requests then report their query count, zero included."""

    engines = 0


class RequestRecord:
    """One request's facts. Created by TimingMiddleware; written by the code serving the request."""

    __slots__ = (
        "bottleneck",
        "cache",
        "db_queries",
        "db_time",
        "fingerprints",
        "n_plus_one",
        "operations",
        "route",
        "scope",
        "start",
    )

    def __init__(self, scope: Scope, start: float) -> None:
        self.start = start
        # The innermost scope a middleware handed on: the router records the matched route in it.
        self.scope = scope
        # The route template, once known: from the router's note at the end, or from a cache entry on a hit.
        self.route: str | None = None
        # HIT, MISS, STALE or BYPASS, set by the response cache.
        self.cache: str | None = None
        # name -> [calls, total seconds], in order of first use.
        self.operations: dict[str, list[float]] = {}
        self.bottleneck: str | None = None
        self.db_queries = 0
        self.db_time = 0.0
        # statement fingerprint -> executions in this request (for N+1 detection), at most MAX_FINGERPRINTS.
        self.fingerprints: dict[str, int] = {}
        # SELECT fingerprint -> where it was first run from, once it reached the N+1 threshold.
        self.n_plus_one: dict[str, str | None] = {}

    def add_operation(self, name: str, seconds: float) -> None:
        totals = self.operations.get(name)
        if totals is None:
            if len(self.operations) >= MAX_OPERATION_NAMES:
                name = OTHER_OPERATIONS
                totals = self.operations.get(name)
            if totals is None:
                totals = self.operations[name] = [0, 0.0]
        totals[0] += 1
        totals[1] += seconds

    def slowest_operation(self) -> tuple[str, float] | None:
        """The operation with the largest total time, if any."""
        if not self.operations:
            return None
        name, (_, seconds) = max(self.operations.items(), key=lambda item: item[1][1])
        return name, seconds


_current: ContextVar[RequestRecord | None] = ContextVar("slipstream_request_record", default=None)


def current_record() -> RequestRecord | None:
    """The record of the request being served here, or None outside a timed request."""
    return _current.get()


def open_record(record: RequestRecord) -> Token[RequestRecord | None]:
    return _current.set(record)


def close_record(token: Token[RequestRecord | None]) -> None:
    _current.reset(token)


def follow_scope(scope: Scope) -> None:
    """Called by a middleware handing the app a copy of the scope, so timing reads the route from the copy."""
    record = _current.get()
    if record is not None:
        record.scope = scope


def note_cache_outcome(outcome: str, route: str | None = None) -> None:
    """The cache's answer for this request, and on a hit the route the stored entry was made for."""
    record = _current.get()
    if record is not None:
        record.cache = outcome
        if route is not None:
            record.route = route


def forget_record() -> None:
    """For background work spawned from a request: what it does is not that request's to account."""
    _current.set(None)
