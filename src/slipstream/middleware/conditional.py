"""ConditionalMiddleware: ETags for complete responses, and 304 / 412 answers to conditional requests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slipstream.config import Settings
from slipstream.http.capture import CAPTURE_SCOPE_KEY, IdentityCapture
from slipstream.http.dates import parse_http_date
from slipstream.http.headers import RawHeaders
from slipstream.http.preconditions import (
    CONDITIONAL_HEADERS,
    NOT_MODIFIED,
    PRECONDITION_FAILED,
    EntityTag,
    Preconditions,
    content_etag,
    not_modified_headers,
    parse_entity_tag,
)
from slipstream.http.responses import head_body, send_precondition_failed
from slipstream.middleware.routes import app_handles_head
from slipstream.middleware.standalone import own_instrumentation
from slipstream.record import follow_scope

if TYPE_CHECKING:
    from slipstream.instrumentation import Instrumentation

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# Request fields that must not reach the GET that looks up the current validators of an unsafe request.
_PROBE_DROPS = CONDITIONAL_HEADERS | {
    b"if-range",
    b"range",
    b"content-length",
    b"content-type",
    b"content-encoding",
    b"transfer-encoding",
    b"expect",
}
# What a GET answers when there is no current representation (If-Match fails, If-None-Match: * passes).
_NO_REPRESENTATION = frozenset({404, 410})
_PASS, _HOLD, _DROP = range(3)
# What a 304 cannot repeat of its 200, even to a cache: it has no body.
_BODY_FIELDS = frozenset({b"content-length", b"transfer-encoding"})


class ConditionalMiddleware:
    """Adds ETags to complete 200 responses to GET/HEAD and answers If-* requests with 304 or 412."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        generate_etags: bool = Settings.conditional_generate_etags,
        weak_etags: bool = Settings.conditional_weak_etags,
        check_unsafe_methods: bool = Settings.conditional_check_unsafe_methods,
        instrumentation: Instrumentation | None = None,
    ) -> None:
        self.app = app
        self.generate_etags = generate_etags
        self.weak_etags = weak_etags
        self.check_unsafe_methods = check_unsafe_methods
        counter = (instrumentation or own_instrumentation()).metrics.conditional_responses
        self.replaced = {NOT_MODIFIED: counter.labels("304"), PRECONDITION_FAILED: counter.labels("412")}

    @classmethod
    def from_settings(cls, app: ASGIApp, settings: Settings, instrumentation: Instrumentation) -> ConditionalMiddleware:
        """The middleware ``install()`` adds: every option from the ``conditional_*`` settings."""
        return cls(
            app,
            generate_etags=settings.conditional_generate_etags,
            weak_etags=settings.conditional_weak_etags,
            check_unsafe_methods=settings.conditional_check_unsafe_methods,
            instrumentation=instrumentation,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        preconditions = Preconditions.from_headers(scope["headers"])
        if method in ("GET", "HEAD"):
            generate = self.generate_etags
            if method == "HEAD" and generate:
                if app_handles_head(scope):
                    # The app's own HEAD handler runs; what body it sends is not the representation to hash.
                    generate = False
                else:
                    # HEAD runs as GET so the body can be hashed: HEAD must carry the ETag GET would.
                    scope = {**scope, "method": "GET"}
                    follow_scope(scope)
            if preconditions is None and not generate:
                await self.app(scope, receive, send)
                return
            capture = scope.get(CAPTURE_SCOPE_KEY)
            refresh = isinstance(capture, IdentityCapture) and capture.revalidation
            responder = _ConditionalResponder(self, send, preconditions, method, generate, refresh)
            await self.app(scope, receive, responder.send)
            return
        if (
            preconditions is None
            or method in _SAFE_METHODS
            or not self.check_unsafe_methods
            or not preconditions.applies_to_unsafe_methods
        ):
            await self.app(scope, receive, send)
            return
        current = await self._current_validators(scope)
        # RFC 9110 §13.2.1: preconditions apply only when the request would otherwise succeed. A GET refused (401,
        # 403), redirected or failing says nothing of the current state: the app answers, as without preconditions.
        if current is not None and preconditions.evaluate(method, *current) is not None:
            self.replaced[PRECONDITION_FAILED].inc()
            await send_precondition_failed(send, method)
            return
        follow_scope(scope)
        await self.app(scope, receive, send)

    def make_etag(self, body: bytes) -> bytes:
        return content_etag(body, weak=self.weak_etags)

    async def _current_validators(self, scope: Scope) -> tuple[EntityTag | None, int | None, bool] | None:
        """GET the same URL in-process to learn the current ETag / Last-Modified before an unsafe method runs.

        Returns the validators and whether a current representation exists (2xx: yes; 404, 410: no), or None when
        the GET answered anything else or raised. The app's unsafe handler does not run when the precondition
        fails. The GET and the unsafe request are not atomic: two writers racing within that window are the app's
        to serialise.
        """
        probe = _ValidatorProbe(self)
        headers = [(key, value) for key, value in scope["headers"] if key not in _PROBE_DROPS]
        probe_scope = {**scope, "method": "GET", "headers": headers}
        # The router marks the probe's scope: timing and the database hooks read the route from it, and from the
        # request's own scope again once the app runs for real.
        follow_scope(probe_scope)
        with anyio.CancelScope() as probe.cancel_scope:
            try:
                await self.app(probe_scope, probe.receive, probe.send)
            except Exception:
                # A GET that fails tells nothing of the current representation.
                return None
        return probe.result()


class _ConditionalResponder:
    """Per-request state for GET and HEAD: adds an ETag, then evaluates the preconditions."""

    __slots__ = (
        "downstream",
        "generate",
        "is_head",
        "method",
        "middleware",
        "preconditions",
        "refresh",
        "start",
        "state",
    )

    def __init__(
        self,
        middleware: ConditionalMiddleware,
        downstream: Send,
        preconditions: Preconditions | None,
        method: str,
        generate: bool,
        refresh: bool = False,
    ) -> None:
        """``refresh``: the request is a cache's revalidation, whose 304 repeats every field of the 200."""
        self.middleware = middleware
        self.generate = generate
        self.refresh = refresh
        self.downstream = downstream
        self.preconditions = preconditions
        self.method = method
        self.is_head = method == "HEAD"
        self.start: Message = {}
        self.state = _PASS

    async def send(self, message: Message) -> None:
        # One coroutine per message: the common answers (an ETag added, no precondition) are decided here rather
        # than in helpers awaited in turn, each of which cost ~0.2 µs a response.
        message_type = message["type"]
        if message_type == "http.response.start":
            status: int = message["status"]
            if status == 200 and self.generate and not _has_etag(message.get("headers", ())):
                # Held until the first body chunk shows whether the body is complete, and so can be hashed.
                self.start = message
                self.state = _HOLD
                return
            outcome = self._outcome(message, status)
            if outcome is not None:
                await self._replace(message, outcome)
                return
            self.state = _PASS
            await self.downstream(message)
            return
        state = self.state
        if state == _DROP:
            return
        if state == _HOLD:
            start = self.start
            self.state = _PASS
            if message_type == "http.response.body":
                if not message.get("more_body", False):
                    # A complete body: it can be hashed into a strong validator.
                    etag = self.middleware.make_etag(message.get("body", b""))
                    start = {**start, "headers": [*start.get("headers", ()), (b"etag", etag)]}
                # Most requests carry no precondition: _outcome is not called for them.
                outcome = None if self.preconditions is None else self._outcome(start, start["status"])
                if outcome is not None:
                    await self._replace(start, outcome)
                    return
            await self.downstream(start)
        if self.is_head and message_type == "http.response.body":
            # The app answered as for GET; the client asked for headers only.
            stripped = head_body(message)
            if stripped is None:
                return
            message = stripped
        await self.downstream(message)

    def _outcome(self, start: Message, status: int) -> int | None:
        """What the preconditions make of the response ``start`` begins: 304, 412, or None to send it as it is."""
        preconditions = self.preconditions
        if preconditions is None or not 200 <= status < 300:
            return None
        etag, last_modified = _validators(start.get("headers", ()))
        return preconditions.evaluate(self.method, etag, last_modified, True)

    async def _replace(self, start: Message, outcome: int) -> None:
        """Send the 304 or 412 that replaces the response ``start`` begins; the app's body is dropped."""
        self.state = _DROP
        self.middleware.replaced[outcome].inc()
        if outcome == NOT_MODIFIED:
            headers = start.get("headers", ())
            if self.refresh:
                headers = [(k, v) for k, v in headers if k.lower() not in _BODY_FIELDS]
            else:
                headers = not_modified_headers(headers)
            await self.downstream({"type": "http.response.start", "status": NOT_MODIFIED, "headers": headers})
            await self.downstream({"type": "http.response.body", "body": b""})
        else:
            await send_precondition_failed(self.downstream, self.method)


class _ValidatorProbe:
    """Collects status, ETag and Last-Modified of an in-process GET, hashing the body when the app set no ETag."""

    def __init__(self, middleware: ConditionalMiddleware) -> None:
        self.middleware = middleware
        self.cancel_scope: anyio.CancelScope | None = None
        self.status = 404
        self.headers: RawHeaders = []
        self.done = False
        self.request_sent = False

    async def receive(self) -> Message:
        if self.request_sent:
            # Nothing more will arrive; the probe is cancelled as soon as the validators are known.
            await anyio.sleep_forever()
        self.request_sent = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message: Message) -> None:
        if self.done:
            return
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = list(message.get("headers", ()))
            if self.status != 200 or _has_etag(self.headers) or not self.middleware.generate_etags:
                self._finish()
        elif message["type"] == "http.response.body":
            # Streamed responses get no generated ETag on GET either, so only a complete body is hashed.
            if not message.get("more_body", False):
                self.headers.append((b"etag", self.middleware.make_etag(message.get("body", b""))))
            self._finish()

    def _finish(self) -> None:
        self.done = True
        if self.cancel_scope is not None:
            self.cancel_scope.cancel()

    def result(self) -> tuple[EntityTag | None, int | None, bool] | None:
        if 200 <= self.status < 300:
            etag, last_modified = _validators(self.headers)
            return etag, last_modified, True
        if self.status in _NO_REPRESENTATION:
            return None, None, False
        return None


def _has_etag(headers: RawHeaders | tuple[tuple[bytes, bytes], ...]) -> bool:
    for key, _ in headers:
        if key.lower() == b"etag":
            return True
    return False


def _validators(headers: RawHeaders | tuple[tuple[bytes, bytes], ...]) -> tuple[EntityTag | None, int | None]:
    etag: EntityTag | None = None
    last_modified: int | None = None
    for key, value in headers:
        name = key.lower()
        if name == b"etag":
            etag = parse_entity_tag(value)
        elif name == b"last-modified":
            last_modified = parse_http_date(value)
    return etag, last_modified
