"""The current request's record: what the middlewares, ``@timed`` and the SQLAlchemy hooks learn about one request.

TimingMiddleware opens a record per HTTP request and puts it in a ContextVar. Code running for that request,
in its task, in tasks it starts, or in the threadpool (``run_in_threadpool`` copies the context), finds the same
record with ``current_record()`` and adds to it. When the response has gone out, timing fills in what the
exchange showed (status, sizes, first byte, duration, route) and hands the record to the receivers of the app's
``Instrumentation``: metrics, report, logs and Server-Timing are receivers. Outside a request there is no record
and the writers do nothing.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

from starlette.types import Scope

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from slipstream.instrumentation import Instrumentation
    from slipstream.outbound.totals import OutboundTotals

# A request timing many distinct names keeps the first ones; the rest are folded into one.
MAX_OPERATION_NAMES = 64
MAX_FINGERPRINTS = 1000
OTHER_OPERATIONS = "other"
UNMATCHED_ROUTE = "__unmatched__"


class RequestRecord:
    """One request's facts. Created by TimingMiddleware; written by the code serving the request."""

    __slots__ = (
        "bottleneck",
        "cache",
        "db_queries",
        "db_time",
        "error",
        "fingerprints",
        "finished",
        "first_byte",
        "instrumentation",
        "label",
        "method",
        "n_plus_one",
        "operations",
        "outbound",
        "request_size",
        "response_size",
        "route",
        "scope",
        "seconds",
        "span",
        "start",
        "status",
        "top_scope",
    )

    def __init__(self, instrumentation: Instrumentation, scope: Scope, method: str, start: float) -> None:
        self.instrumentation = instrumentation
        # The scope the outermost middleware got, and the innermost one a middleware handed on: the router
        # records the matched route in that one.
        self.top_scope = self.scope = scope
        # The method as a label: unknown methods are "_OTHER".
        self.method = method
        self.start = start
        # The route template, once known: from the router's note, or from a cache entry on a hit.
        self.route: str | None = None
        # HIT, MISS, STALE or BYPASS, set by the response cache.
        self.cache: str | None = None
        # name -> [calls, total seconds], in order of first use.
        self.operations: dict[str, list[float]] = {}
        self.bottleneck: str | None = None
        # Outbound calls made for this request (instrumented HTTP clients, LLM usage); made by the first one.
        self.outbound: OutboundTotals | None = None
        self.db_queries = 0
        self.db_time = 0.0
        # statement fingerprint -> executions in this request (for N+1 detection), at most MAX_FINGERPRINTS; made
        # by the request's first statement (most requests of most apps run none).
        self.fingerprints: dict[str, int] | None = None
        # SELECT fingerprint -> where it was first run from, once it reached the N+1 threshold.
        self.n_plus_one: dict[str, str | None] | None = None
        # What the exchange showed; complete once ``finished`` is True.
        self.status = 0
        self.first_byte = 0.0
        self.request_size = 0
        self.response_size = 0
        self.seconds = 0.0
        self.label = UNMATCHED_ROUTE
        self.span: Span | None = None
        self.error: BaseException | None = None
        self.finished = False

    def resolve_route(self) -> str | None:
        """The route template, worked out from the router's note in the scope the first time it is known."""
        route = self.route
        if route is None:
            route = self.route = self.instrumentation.templates.template(self.scope, self.top_scope)
        return route

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

    def bottleneck_within(self, elapsed: float, share: float) -> tuple[str, float] | None:
        """The slowest operation and its time, if it took more than ``share`` of ``elapsed`` seconds."""
        slowest = self.slowest_operation()
        return slowest if slowest is not None and slowest[1] > share * elapsed else None


class Receiver:
    """What happens with requests: timing calls each hook a receiver overrides, in the order they were added.

    ``request_started`` runs when the request arrives, ``response_started`` when its response headers go out
    (the only hook that may add to ``headers``), ``request_finished`` once the last body chunk has been handed
    to the server, before the request's span ends (so a receiver may still annotate ``record.span``).
    A receiver must not raise: it runs on the request's path.
    """

    def request_started(self, record: RequestRecord) -> None:
        """The request has arrived."""

    def response_started(self, record: RequestRecord, headers: list[tuple[bytes, bytes]]) -> None:
        """The response's headers are about to go out."""

    def request_finished(self, record: RequestRecord) -> None:
        """The response is complete (or the app failed): every field of ``record`` is final."""


_current: ContextVar[RequestRecord | None] = ContextVar("slipstream_request_record", default=None)


def current_record() -> RequestRecord | None:
    """The record of the request being served here, or None outside a timed request."""
    return _current.get()


# Timing's four context steps a request are the ContextVar's own methods, bound once: a function wrapping each
# cost ~40 ns a call. ``open_record(record)`` returns the token ``close_record`` takes; ``set_record`` makes a record
# (or None) current without a token to reset, for timing to step out of the request and back in.
open_record = _current.set
close_record = _current.reset
set_record = _current.set


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
