"""``@timed("name")`` and ``with timed("name"):``: a child span, a histogram and an entry in the request's record.

Works on plain functions, coroutine functions, and as a ``with`` / ``async with`` block in either kind of code.
The histogram is ``slipstream_operation_duration_seconds{operation}``; the names become label values, so the
first ``MAX_OPERATION_LABELS`` distinct names are kept and any further ones are counted as ``other``.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from prometheus_client import REGISTRY, Histogram

from slipstream.exporters.metrics import metrics_for
from slipstream.exporters.otel import APP_PROVIDERS, Telemetry, TracerSource
from slipstream.record import OTHER_OPERATIONS, current_record

MAX_OPERATION_LABELS = 200

P = ParamSpec("P")
R = TypeVar("R")


class _Sink:
    """Where timed operations go: the histogram's labelled children and the tracer, set by ``install``."""

    def __init__(self) -> None:
        self.histogram: Histogram | None = None
        # A tracer, None (no spans), or where to find one at first use (by default the app's global provider).
        self.source = TracerSource(APP_PROVIDERS)
        self.children: dict[str, Histogram] = {}
        self.lock = threading.Lock()

    def configure(self, histogram: Histogram, tracer: trace.Tracer | Telemetry | None) -> None:
        with self.lock:
            self.histogram, self.source, self.children = histogram, TracerSource(tracer), {}

    @property
    def tracer(self) -> trace.Tracer | None:
        return self.source.get()

    def child(self, name: str) -> Histogram:
        found = self.children.get(name)
        if found is None:
            with self.lock:
                histogram = self.histogram
                if histogram is None:
                    histogram = self.histogram = metrics_for(REGISTRY).operation_duration
                if len(self.children) >= MAX_OPERATION_LABELS and name not in self.children:
                    name = OTHER_OPERATIONS
                found = self.children.get(name)
                if found is None:
                    found = self.children[name] = histogram.labels(name)
        return found


_sink = _Sink()


def configure_timed(histogram: Histogram, tracer: trace.Tracer | Telemetry | None = None) -> None:
    """Send timed operations to ``histogram``; make their spans with ``tracer`` (None: no spans), or with the
    tracer a ``Telemetry`` gives at first use."""
    _sink.configure(histogram, tracer)


class timed:
    """Time a block or every call of a function as the operation ``name``."""

    __slots__ = ("_span", "_start", "_token", "name")

    def __init__(self, name: str) -> None:
        if not name:
            raise ValueError("timed needs an operation name")
        self.name = name
        self._start: float | None = None
        self._span: trace.Span | None = None
        self._token: object = None

    @overload
    def __call__(self, function: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...
    @overload
    def __call__(self, function: Callable[P, R]) -> Callable[P, R]: ...

    def __call__(self, function: Callable[P, Any]) -> Callable[P, Any]:
        name = self.name
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def timed_coroutine(*args: P.args, **kwargs: P.kwargs) -> Any:
                with timed(name):
                    return await function(*args, **kwargs)

            return timed_coroutine

        @functools.wraps(function)
        def timed_function(*args: P.args, **kwargs: P.kwargs) -> Any:
            with timed(name):
                return function(*args, **kwargs)

        return timed_function

    def __enter__(self) -> timed:
        if self._start is not None:
            raise RuntimeError(f"timed({self.name!r}) is already running; write `with timed(name):` for each block")
        tracer = _sink.tracer
        if tracer is not None:
            self._span = span = tracer.start_span(self.name, attributes={"slipstream.operation": self.name})
            self._token = otel_context.attach(trace.set_span_in_context(span))
        self._start = time.perf_counter()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        seconds = time.perf_counter() - cast(float, self._start)
        self._start = None
        _sink.child(self.name).observe(seconds)
        record = current_record()
        if record is not None:
            record.add_operation(self.name, seconds)
        span, self._span = self._span, None
        if span is not None:
            otel_context.detach(cast(Any, self._token))
            if error is not None:
                span.record_exception(error)
                span.set_status(trace.Status(trace.StatusCode.ERROR, type(error).__qualname__))
                span.set_attribute("error.type", type(error).__qualname__)
            span.end()

    async def __aenter__(self) -> timed:
        return self.__enter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.__exit__(kind, error, traceback)
