"""The cache's calls to the app: a miss, the revalidation of a stale entry, and stale-while-revalidate's background
refresh. Each forwards the response as it comes (or holds it back while revalidating) and stores what may be stored."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slipstream.cache import policy
from slipstream.cache.entry import CacheEntry
from slipstream.cache.recording import ResponseRecorder
from slipstream.cache.request_rules import RequestRules
from slipstream.cache.response_cache import Fill, ResponseCache
from slipstream.cache.storage import StoragePolicy
from slipstream.http.capture import CAPTURE_SCOPE_KEY, IdentityCapture
from slipstream.http.headers import RawHeaders
from slipstream.http.preconditions import CONDITIONAL_HEADERS
from slipstream.http.responses import edited_headers, head_body
from slipstream.record import current_record, follow_scope, forget_record, note_cache_outcome

# A revalidation asks for the whole response: a 304 lets the stored one answer the client's range, and a 200
# replaces it; a 206 would do neither.
_VALIDATION_DROPS = CONDITIONAL_HEADERS | {b"if-range", b"range"}

# Serves a stored entry: (send, scope, primary key, entry, outcome, age, tier).
Serve = Callable[[Send, Scope, str, CacheEntry, str, float, str], Awaitable[None]]


async def discard(message: Message) -> None:
    """The client of a background refresh: nobody."""


class OriginFetcher:
    """Calls the app for one CacheMiddleware, which serves stored entries with ``serve`` and counts each response
    forwarded from the app with ``count_miss`` (given 1)."""

    def __init__(
        self,
        app: ASGIApp,
        cache: ResponseCache,
        rules: RequestRules,
        storage: StoragePolicy,
        *,
        serve: Serve,
        count_miss: Callable[[float], None],
        status_header: bytes | None,
        not_forwarded: frozenset[bytes],
    ) -> None:
        self.app = app
        self.cache = cache
        self.rules = rules
        self.storage = storage
        self.serve = serve
        self.count_miss = count_miss
        self.miss_tag = [] if status_header is None else [(status_header, b"MISS")]
        self.not_forwarded = not_forwarded

    async def fetch(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        primary: str,
        stale: CacheEntry | None,
        tier: str = "none",
        fill: Fill | None = None,
    ) -> None:
        """Call the app (a miss, or a revalidation of ``stale`` with its validators) and store what may be stored.

        For a miss, ``fill`` hears as soon as the response shows it will not be stored, so nobody waits for it."""
        storage = self.storage
        capture = IdentityCapture(revalidation=stale is not None, limit=storage.max_entry_bytes)
        # HEAD runs as GET, so a HEAD miss fills the entry the next GET (or HEAD) is served from.
        inner: Scope = {**scope, CAPTURE_SCOPE_KEY: capture, "method": "GET"}
        follow_scope(inner)
        # What the client gets unless a revalidation or an error turns it into a HIT or STALE (noted then).
        note_cache_outcome("MISS")
        serve_stale_on_error = False
        if stale is not None:
            inner["headers"] = _with_validators(scope["headers"], stale)
            serve_stale_on_error = policy.within_stale_if_error(
                age=stale.age(time.time()),
                lifetime=stale.lifetime,
                stale_if_error=stale.stale_if_error,
                must_revalidate=stale.must_revalidate,
                no_cache=stale.no_cache,
            )
        default_ttl = self.rules.default_ttl(scope)
        recorder = ResponseRecorder(
            send,
            self.miss_tag,
            hold=stale is not None,
            serve_stale_on_error=serve_stale_on_error,
            head=scope["method"] == "HEAD",
            storage=storage,
            request_headers=scope["headers"],
            default_ttl=default_ttl,
            on_not_stored=None if fill is None else fill.not_stored,
            not_sent=self.not_forwarded,
            capture=capture,
            streaming=self.cache.streaming,
            primary=primary,
        )
        request_time = time.time()
        try:
            await self.app(inner, receive, recorder.send)
        except Exception:
            if not (serve_stale_on_error and not recorder.forwarded and stale is not None):
                raise
            await self.serve(send, scope, primary, stale, "STALE", stale.age(time.time()), tier)
            return
        finally:
            if recorder.claimed:
                self.cache.streaming.discard(primary)
        response_time = time.time()
        if recorder.forwarded and send is not discard:
            self.count_miss(1)
        if stale is not None and recorder.swallowed and recorder.start is not None:
            if recorder.start["status"] == 304:
                storage.freshen(stale, recorder.start, request_time, response_time, default_ttl)
                await self.cache.store(primary, stale, scope["headers"])
                await self.serve(send, scope, primary, stale, "HIT", stale.age(response_time), "origin")
            else:
                await self.serve(send, scope, primary, stale, "STALE", stale.age(response_time), tier)
            return
        if recorder.refused:
            # The start message showed it, and the waiting requests were let go then. Refused for its own fields
            # whatever the request, the URL's next requests pass straight to the app for a while.
            start = recorder.start
            if fill is not None and start is not None:
                if storage.refused_by_its_fields(start, self.rules.has_route_ttl(scope["path"])):
                    self.cache.uncacheable.add(primary, passing=True)
            return
        entry = storage.build_entry(recorder, scope["headers"], request_time, response_time, default_ttl, capture)
        if entry is None:
            if fill is not None:
                fill.not_stored()
            return
        record = current_record()
        if record is not None:
            entry.route = record.route
        await self.cache.store(primary, entry, scope["headers"])

    async def pass_through(self, scope: Scope, receive: Receive, send: Send, primary: str, keyed: bool) -> None:
        """A miss for a URL whose last response was refused for its own fields whatever the request (a dynamic page
        without freshness), with no Redis to ask: the app answers, forwarded as a miss, and nothing is kept: no copy
        of the body, no scope of its own (``keyed``: the scope is already the cache's copy). The cheap path of the
        most common uncached request.

        If the response may be stored now (the app changed its fields), the URL's hit-for-miss ends and the next
        request fills the entry; if it is refused for this request only, the next one goes the whole way."""
        head = scope["method"] == "HEAD"
        if head:
            # Run as GET, as a miss is: the same headers as the entry the GET would fill.
            scope = {**scope, "method": "GET"}
            keyed = True
        if keyed:
            follow_scope(scope)
        note_cache_outcome("MISS")
        await self.app(scope, receive, _Passing(self, send, primary, scope, head).send)

    def refresh_in_background(self, scope: Scope, primary: str, entry: CacheEntry) -> None:
        """stale-while-revalidate: refresh once, off the request, while stale copies are served."""
        key = "refresh " + primary
        if key in self.cache.refreshing:
            return
        self.cache.refreshing.add(key)
        finished = False

        async def receive() -> Message:
            return {"type": "http.request", "body": b""} if not finished else {"type": "http.disconnect"}

        async def refresh() -> None:
            nonlocal finished
            forget_record()
            try:
                await self.fetch(scope, receive, discard, primary, entry)
            finally:
                finished = True
                self.cache.refreshing.discard(key)

        self.cache.spawn(refresh())


class _Passing:
    """Wraps one pass-through's ``send``: decides from the start message whether the URL keeps passing, removes the
    fields meant for slipstream, adds the status header, and drops the body of a HEAD request's answer."""

    __slots__ = ("downstream", "fetcher", "head", "primary", "scope")

    def __init__(self, fetcher: OriginFetcher, downstream: Send, primary: str, scope: Scope, head: bool) -> None:
        self.fetcher = fetcher
        self.downstream = downstream
        self.primary = primary
        self.scope = scope
        self.head = head

    async def send(self, message: Message) -> None:
        if message["type"] != "http.response.start":
            if self.head and message["type"] == "http.response.body":
                stripped = head_body(message)
                if stripped is None:
                    return
                message = stripped
            await self.downstream(message)
            return
        fetcher, scope, primary = self.fetcher, self.scope, self.primary
        storage, rules, uncacheable = fetcher.storage, fetcher.rules, fetcher.cache.uncacheable
        if storage.refused_by_its_fields(message, rules.has_route_ttl(scope["path"])):
            uncacheable.renew(primary)  # as expected: the window starts over
        elif storage.may_store_start(message, scope["headers"], rules.default_ttl(scope)):
            uncacheable.discard(primary)
        else:
            uncacheable.add(primary)
        fetcher.count_miss(1)
        await self.downstream(edited_headers(message, fetcher.not_forwarded, fetcher.miss_tag))


def _with_validators(headers: RawHeaders, stale: CacheEntry) -> RawHeaders:
    """The client's request with its own preconditions replaced by the stored entry's validators."""
    rebuilt = [(k, v) for k, v in headers if k not in _VALIDATION_DROPS]
    if stale.etag is not None:
        rebuilt.append((b"if-none-match", stale.etag))
    for key, value in stale.headers:
        if key.lower() == b"last-modified":
            rebuilt.append((b"if-modified-since", value))
    return rebuilt
