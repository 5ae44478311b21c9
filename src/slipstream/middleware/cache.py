"""CacheMiddleware: a shared HTTP cache (RFC 9111) in front of the app, with L1 memory and optional Redis L2."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slipstream.cache import policy
from slipstream.cache.entry import CacheEntry
from slipstream.cache.fetching import OriginFetcher, discard
from slipstream.cache.recording import NOT_SENT
from slipstream.cache.request_rules import RequestRules
from slipstream.cache.response_cache import Fill, ResponseCache
from slipstream.cache.serving import EntryResponder
from slipstream.cache.storage import StoragePolicy
from slipstream.cache.targeted import not_sent, target_list
from slipstream.cache.unsafe import UnsafeRequests
from slipstream.config import Settings, path_matcher
from slipstream.exporters.metrics import CompressionBytes, counter_adder
from slipstream.http.codecs import Codec
from slipstream.http.headers import RawHeaders, request_header
from slipstream.http.ranges import parse_range
from slipstream.http.responses import edited_start
from slipstream.middleware.routes import app_handles_head
from slipstream.middleware.standalone import own_instrumentation
from slipstream.record import note_cache_outcome

if TYPE_CHECKING:
    from slipstream.instrumentation import Instrumentation


class CacheMiddleware:
    """Serves stored responses without calling the app; stores what RFC 9111 lets a shared cache store."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        cache: ResponseCache | None = None,
        route_ttls: tuple[str, ...] = Settings.cache_route_ttls,
        heuristic_fraction: float = Settings.cache_heuristic_fraction,
        heuristic_max_seconds: float = Settings.cache_heuristic_max_seconds,
        exclude_paths: tuple[str, ...] = Settings.cache_exclude_paths,
        ignore_query_params: tuple[str, ...] = Settings.cache_ignore_query_params,
        key_headers: tuple[str, ...] = Settings.cache_key_headers,
        ignore_cookies: tuple[str, ...] = Settings.cache_ignore_cookies,
        store_cookie_requests: bool = Settings.cache_store_cookie_requests,
        status_header: str = Settings.cache_status_header,
        honour_client_no_cache: bool = Settings.cache_honour_client_no_cache,
        allow_set_cookie: bool = Settings.cache_allow_set_cookie,
        max_entry_bytes: int = Settings.cache_max_entry_bytes,
        targeted_fields: tuple[str, ...] = Settings.cache_targeted_fields,
        codecs: Mapping[str, Codec] | None = None,
        minimum_compress_size: int = Settings.compression_minimum_size,
        instrumentation: Instrumentation | None = None,
    ) -> None:
        """``cache``: the stores (by default an in-memory tier of the default size). ``codecs``: the codings hits
        are served in, filled on demand, as CompressionMiddleware would make them (by default its defaults);
        bodies under ``minimum_compress_size`` are served as they are."""
        # The settings dataclass validates the options, here as when they come from the environment.
        s = Settings(
            cache_route_ttls=route_ttls,
            cache_heuristic_fraction=heuristic_fraction,
            cache_heuristic_max_seconds=heuristic_max_seconds,
            cache_exclude_paths=exclude_paths,
            cache_ignore_query_params=ignore_query_params,
            cache_key_headers=key_headers,
            cache_ignore_cookies=ignore_cookies,
            cache_store_cookie_requests=store_cookie_requests,
            cache_status_header=status_header,
            cache_honour_client_no_cache=honour_client_no_cache,
            cache_allow_set_cookie=allow_set_cookie,
            cache_max_entry_bytes=max_entry_bytes,
            cache_targeted_fields=targeted_fields,
            compression_minimum_size=minimum_compress_size,
        )
        self.app = app
        instrumentation = instrumentation or own_instrumentation()
        self.cache = cache or instrumentation.cache or ResponseCache.from_settings(s)
        self.settings = s
        self.status_header = s.cache_status_header.lower().encode("latin-1") or None
        # RFC 9213: read in place of Cache-Control and Expires; those meant for slipstream alone never leave it.
        self.targets = target_list(s.cache_targeted_fields)
        self.not_sent = not_sent(self.targets)
        self.not_forwarded = NOT_SENT | self.not_sent
        metrics = instrumentation.metrics
        codecs = codecs if codecs is not None else s.codecs()
        # Variants made on demand are compressions too: counted with CompressionMiddleware's.
        self.responder = EntryResponder(codecs, self.status_header, CompressionBytes(metrics, codecs), self.not_sent)
        if self.cache.redis is not None:
            self.cache.redis.error_counter = metrics.cache_redis_errors
            breaker_open = metrics.cache_redis_breaker_open
            self.cache.redis.breaker.on_change = lambda state: breaker_open.set(state != "closed")
        requests = metrics.cache_requests
        # Each outcome's counter, incremented without re-checking its labels: one a request.
        self.outcomes = {
            (result, tier): counter_adder(requests.labels(result, tier), metrics.writes)
            for result, tier in [
                ("hit", "l1"),
                ("hit", "l2"),
                ("hit", "origin"),
                ("stale", "l1"),
                ("stale", "l2"),
                ("miss", "none"),
                ("bypass", "none"),
            ]
        }
        self.rules = RequestRules(
            ignore_query_params=s.cache_ignore_query_params,
            key_headers=s.cache_key_headers,
            ignore_cookies=s.cache_ignore_cookies,
            route_ttls=s.cache_route_ttls,
        )
        self.excluded_path = path_matcher(s.cache_exclude_paths)
        storage = StoragePolicy(
            allow_set_cookie=s.cache_allow_set_cookie,
            max_entry_bytes=s.cache_max_entry_bytes,
            minimum_compress_size=s.compression_minimum_size,
            key_headers=self.rules.key_headers,
            store_cookie_requests=s.cache_store_cookie_requests,
            targets=self.targets,
            heuristic_fraction=s.cache_heuristic_fraction,
            heuristic_max_seconds=s.cache_heuristic_max_seconds,
        )
        self.unsafe = UnsafeRequests(app, self.cache, self.rules, storage, not_sent=self.not_forwarded)
        self.origin = OriginFetcher(
            app,
            self.cache,
            self.rules,
            storage,
            serve=self._serve,
            count_miss=self.outcomes["miss", "none"],
            status_header=self.status_header,
            not_forwarded=self.not_forwarded,
        )

    @classmethod
    def from_settings(cls, app: ASGIApp, settings: Settings, instrumentation: Instrumentation) -> CacheMiddleware:
        """The middleware ``install()`` adds: the instrumentation's cache, options from the ``cache_*`` settings,
        and hits served in the codings CompressionMiddleware would use (none when compression is off)."""
        s = settings
        return cls(
            app,
            cache=instrumentation.cache,
            route_ttls=s.cache_route_ttls,
            heuristic_fraction=s.cache_heuristic_fraction,
            heuristic_max_seconds=s.cache_heuristic_max_seconds,
            exclude_paths=s.cache_exclude_paths,
            ignore_query_params=s.cache_ignore_query_params,
            key_headers=s.cache_key_headers,
            ignore_cookies=s.cache_ignore_cookies,
            store_cookie_requests=s.cache_store_cookie_requests,
            status_header=s.cache_status_header,
            honour_client_no_cache=s.cache_honour_client_no_cache,
            allow_set_cookie=s.cache_allow_set_cookie,
            max_entry_bytes=s.cache_max_entry_bytes,
            targeted_fields=s.cache_targeted_fields,
            codecs=s.codecs() if s.compression_enabled else {},
            minimum_compress_size=s.compression_minimum_size,
            instrumentation=instrumentation,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._lifespan_send(send))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        if self.excluded_path is not None and self.excluded_path(scope["path"]):
            await self.app(scope, receive, self._bypass(send))
            return
        if method not in ("GET", "HEAD"):
            await self.unsafe(scope, receive, send)
            return
        if method == "HEAD" and app_handles_head(scope):
            # The app's own HEAD handler answers, not the GET entry; and its bodiless answer is not stored.
            await self.app(scope, receive, self._bypass(send))
            return
        headers: RawHeaders = scope["headers"]
        request = policy.request_directives(
            request_header(headers, b"cache-control"),
            request_header(headers, b"pragma"),
            self.settings.cache_honour_client_no_cache,
        )
        if request.no_store:
            await self.app(scope, receive, self._bypass(send))
            return
        received, scope = scope, self.rules.keyed_request(scope)
        headers = scope["headers"]
        primary = self.rules.primary_key(scope)
        ranged = request_header(headers, b"range")
        if ranged is not None and parse_range(ranged).several:
            await self.origin.fetch(scope, receive, send, primary, None)  # a multipart answer is the app's to make
            return
        found = self.cache.lookup_memory(primary, headers)
        if found is None and ranged is not None:
            # Not coalesced: a 206 is not stored, and must not mark the URL as one whose answers are not stored.
            found = await self.cache.lookup(primary, headers)
            if found is None and request.only_if_cached:
                await _gateway_timeout(send)
                return
            if found is None:
                await self.origin.fetch(scope, receive, send, primary, None)
                return
        if found is None:
            if self.cache.passes(primary) and not request.only_if_cached:
                await self.origin.pass_through(scope, receive, send, primary, scope is not received)
                return
            fill = self.cache.hit_for_miss(primary)
            if fill is not None:
                await self._miss(scope, receive, send, primary, request.only_if_cached, fill)
                return
            async with self.cache.fill(primary, headers) as fill:
                found = fill.found
                if found is None:
                    await self._miss(scope, receive, send, primary, request.only_if_cached, fill)
                    return
        entry = found[0]
        now = time.time()
        age = entry.age(now)
        decision = policy.classify(
            age=age,
            lifetime=entry.lifetime,
            stale_while_revalidate=entry.stale_while_revalidate,
            must_revalidate=entry.must_revalidate,
            no_cache=entry.no_cache,
            request=request,
        )
        if decision is policy.Decision.FRESH:
            await self._serve(send, scope, primary, entry, "HIT", age, found[1])
        elif decision is policy.Decision.REVALIDATE_IN_BACKGROUND:
            self.origin.refresh_in_background(scope, primary, entry)
            await self._serve(send, scope, primary, entry, "STALE", age, found[1])
        elif request.only_if_cached:
            await _gateway_timeout(send)
        else:
            await self.origin.fetch(scope, receive, send, primary, entry, found[1])

    def _miss(
        self, scope: Scope, receive: Receive, send: Send, primary: str, only_if_cached: bool, fill: Fill
    ) -> Awaitable[None]:
        """What answers a miss: the app, or 504 for only-if-cached. The caller awaits it: no coroutine of its own, one
        frame fewer on every uncached request."""
        if only_if_cached:
            return _gateway_timeout(send)
        return self.origin.fetch(scope, receive, send, primary, None, fill=fill)

    async def _serve(
        self, send: Send, scope: Scope, primary: str, entry: CacheEntry, outcome: str, age: float, tier: str
    ) -> None:
        if send is not discard:
            self.outcomes[outcome.lower(), tier](1)
            note_cache_outcome(outcome, entry.route)
        headers: RawHeaders = scope["headers"]

        def keep_variant(entry: CacheEntry, coding: str, body: bytes) -> None:
            self.cache.add_variant(primary, entry, coding, body, headers)

        await self.responder.send(
            send,
            entry,
            method=scope["method"],
            request_headers=headers,
            outcome=outcome,
            age=age,
            keep_variant=keep_variant,
        )

    def _bypass(self, send: Send) -> Send:
        self.outcomes["bypass", "none"](1)
        note_cache_outcome("BYPASS")
        # Passed on untouched but for the fields meant for slipstream alone, which the app sets whatever the request.
        return edited_start(
            send, self.not_sent, [] if self.status_header is None else [(self.status_header, b"BYPASS")]
        )

    def _lifespan_send(self, send: Send) -> Send:
        async def on_shutdown(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await self.cache.close()
            await send(message)

        return on_shutdown


async def _gateway_timeout(send: Send) -> None:
    body = b"Gateway Timeout: not in cache (only-if-cached)\n"
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 504, "headers": headers})
    await send({"type": "http.response.body", "body": body})
