"""TimingMiddleware: the outermost view of every request's exchange, and one server span for it.

It opens the request's record (see ``slipstream.record``), which the cache, ``@timed`` and the database hooks
write to, and watches the exchange: status, body sizes, first byte, last chunk. When the last body chunk has
been handed to the server (background tasks, which Starlette runs after that, are not part of the request's
latency) it hands the finished record to the receivers of its ``Instrumentation`` (metrics, report, logs) and
ends the span. Labels are bounded: the method (unknown ones are ``_OTHER``), the route template
(``__unmatched__`` when none matched), the status code.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slipstream.instrumentation import Instrumentation
from slipstream.middleware.server_span import ServerSpans, end_span
from slipstream.record import UNMATCHED_ROUTE, RequestRecord, close_record, open_record, set_record

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
# A receiver with a bug is logged and skipped: the request it describes goes on, and so do the other receivers.
_RECEIVER_FAILED = "slipstream: a receiver failed on %s (the request goes on)"

log = logging.getLogger("slipstream.timing")


class TimingMiddleware:
    """Times every HTTP request from the outside and hands it to the instrumentation's receivers."""

    def __init__(self, app: ASGIApp, *, instrumentation: Instrumentation | None = None) -> None:
        self.app = app
        self.instrumentation = instrumentation if instrumentation is not None else Instrumentation()
        self.spans = ServerSpans()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        instrumentation = self.instrumentation
        method: str = scope["method"]
        record = RequestRecord(
            instrumentation, scope, method if method in KNOWN_METHODS else "_OTHER", time.perf_counter()
        )
        exchange = _Exchange(record, receive, send)
        token = open_record(record)
        for started in instrumentation.on_request:
            try:
                started(record)
            except Exception:
                log.exception(_RECEIVER_FAILED, "a request's arrival")
        tracer = instrumentation.tracer_source.get()
        context_token = None
        if tracer is not None:
            outer = otel_context.get_current()
            inner = self.spans.start(tracer, record)
            context_token = otel_context.attach(inner)
            exchange.contexts = (outer, inner)
        try:
            await self.app(scope, exchange.receive if exchange.counting else receive, exchange.send)
        except BaseException as error:
            exchange.fail(error)
            raise
        finally:
            if not record.finished:
                exchange.finish()
            if context_token is not None:
                otel_context.detach(context_token)
            close_record(token)


class _Exchange:
    """Watches one request's messages and writes what they show into its record."""

    __slots__ = ("contexts", "counting", "downstream", "record", "start_headers", "upstream")

    def __init__(self, record: RequestRecord, receive: Receive, send: Send) -> None:
        self.record = record
        self.upstream = receive
        self.downstream = send
        self.counting = False
        self.start_headers: Any = ()
        # The OpenTelemetry contexts before the request and with its span current, when there is a span.
        self.contexts: tuple[Context, Context] | None = None
        # -1: the request has no body (the request-size histogram describes bodies, so it is not observed).
        record.request_size = -1
        for key, value in record.scope["headers"]:
            if key == b"content-length":
                try:
                    size = int(value)
                except ValueError:
                    pass
                else:
                    if size:
                        record.request_size = size
                break
            if key == b"transfer-encoding":
                self.counting = True
                record.request_size = 0

    async def receive(self) -> Message:
        message: Message = await self.upstream()
        if message["type"] == "http.request":
            self.record.request_size += len(message.get("body", b""))
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        record = self.record
        if kind == "http.response.body":
            record.response_size += len(message.get("body", b""))
            if message.get("more_body", False):
                await self.downstream(message)
                return
        elif kind == "http.response.start":
            record.status = message["status"]
            record.first_byte = time.perf_counter()
            instrumentation = record.instrumentation
            if instrumentation.adds_response_headers:
                headers = list(message.get("headers", ()))
                for started in instrumentation.on_response:
                    try:
                        started(record, headers)
                    except Exception:
                        log.exception(_RECEIVER_FAILED, "a response's headers")
                message = {**message, "headers": headers}
            self.start_headers = message.get("headers", ())
            await self.downstream(message)
            return
        elif kind != "http.response.pathsend":
            await self.downstream(message)
            return
        # The response's last message goes to the server outside the request's context. uvicorn arms its keep-alive
        # timer while it handles that message, and the timer keeps a copy of the current context long after the
        # request (cancelled timers stay in the event loop's heap): the request's record, scope and span would
        # outlive it and be left to the garbage collector, several collections a thousand requests. What the app
        # runs after its response (background tasks) still sees them: they are set back. (Here rather than in a
        # method of its own: a coroutine call costs ~0.3 µs, on every request.)
        contexts = self.contexts
        set_record(None)
        if contexts is not None:
            otel_context.attach(contexts[0])
        try:
            await self.downstream(message)
        finally:
            set_record(record)
            if contexts is not None:
                otel_context.attach(contexts[1])
        if kind == "http.response.pathsend":
            record.response_size = next((int(v) for k, v in self.start_headers if k.lower() == b"content-length"), 0)
        self.finish()

    def fail(self, error: BaseException) -> None:
        record = self.record
        record.error = error
        if not record.status:
            # Nothing was sent: the server (or Starlette's ServerErrorMiddleware) answers 500.
            record.status = 500
        if not record.finished:
            self.finish()

    def finish(self) -> None:
        record = self.record
        record.seconds = time.perf_counter() - record.start
        record.finished = True
        if not record.status:
            record.status = 500
        route = record.route
        if route is None:
            route = record.resolve_route()
        record.label = route or UNMATCHED_ROUTE
        for finished in record.instrumentation.on_finish:
            try:
                finished(record)
            except Exception:
                log.exception(_RECEIVER_FAILED, "a finished request")
        if record.span is not None:
            end_span(record.span, record)
