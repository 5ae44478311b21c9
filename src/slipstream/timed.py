"""``@timed("name")`` and ``with timed("name"):``: a child span, a histogram and an entry in the request's record.

Works on plain functions, coroutine functions, and as a ``with`` / ``async with`` block in either kind of code.
The operation goes to the app it runs for: the instrumentation of the current request, else of the app whose
lifespan started the code (background work begun at startup); outside both it is only run. The histogram is
``slipstream_operation_duration_seconds{operation}``; the names become label values, so the first 200 distinct
names are kept and any further ones are counted as ``other``.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast, overload

from opentelemetry import context as otel_context
from opentelemetry import trace

from slipstream.exporters.otel import mark_failed
from slipstream.instrumentation import Instrumentation, current_instrumentation
from slipstream.record import current_record

P = ParamSpec("P")
R = TypeVar("R")


class timed:
    """Time a block or every call of a function as the operation ``name``."""

    __slots__ = ("_instrumentation", "_span", "_start", "_token", "name")

    def __init__(self, name: str) -> None:
        if not name:
            raise ValueError("timed needs an operation name")
        self.name = name
        self._instrumentation: Instrumentation | None = None
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
        self._instrumentation = instrumentation = current_instrumentation()
        tracer = instrumentation.tracer if instrumentation is not None else None
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
        instrumentation, self._instrumentation = self._instrumentation, None
        if instrumentation is not None:
            instrumentation.operation_durations[self.name].observe(seconds)
            record = current_record()
            if record is not None:
                record.add_operation(self.name, seconds)
        span, self._span = self._span, None
        if span is not None:
            otel_context.detach(cast(Any, self._token))
            if error is not None:
                mark_failed(span, error)
            span.end()

    async def __aenter__(self) -> timed:
        return self.__enter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.__exit__(kind, error, traceback)
