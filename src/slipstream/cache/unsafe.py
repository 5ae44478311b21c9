"""Unsafe methods through the cache: a success invalidates what it changed (RFC 9111 §4.4), and a POST response that
says it is the target's new representation is stored as the target's GET entry (RFC 9110 §9.3.3, §8.7)."""

from __future__ import annotations

import time
from urllib.parse import urljoin

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slipstream.cache import policy
from slipstream.cache.entry import CacheEntry
from slipstream.cache.keys import url_key
from slipstream.cache.recording import NOT_SENT, ResponseRecorder
from slipstream.cache.request_rules import RequestRules
from slipstream.cache.response_cache import ResponseCache
from slipstream.cache.storage import StoragePolicy
from slipstream.cache.targeted import response_directives
from slipstream.http.capture import CAPTURE_SCOPE_KEY, IdentityCapture
from slipstream.record import current_record, follow_scope


class UnsafeRequests:
    """What CacheMiddleware does with the methods it never answers itself: POST, PUT, PATCH, DELETE, …"""

    def __init__(
        self,
        app: ASGIApp,
        cache: ResponseCache,
        rules: RequestRules,
        storage: StoragePolicy,
        *,
        not_sent: frozenset[bytes] = NOT_SENT,
    ) -> None:
        """``storage``: the GET responses' rules, which a stored POST response meets too (its targeted fields are
        read in place of Cache-Control and Expires, RFC 9213). ``not_sent``: the fields removed from every response
        (Surrogate-Key, slipstream's own)."""
        self.app = app
        self.cache = cache
        self.rules = rules
        self.storage = storage
        self.not_sent = not_sent

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = 0
        locations: list[bytes] = []

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                locations.extend(v for k, v in message.get("headers", ()) if k in (b"location", b"content-location"))
            await send(message)

        # Forwarded as a miss is (``not_sent`` removed) and kept, in case it is a POST response to store: not when
        # the app saw input the key leaves out (ignored query parameters or cookies), which it may reflect.
        recorder = ResponseRecorder(watch, [], not_sent=self.not_sent)
        capture = IdentityCapture()
        storable = scope["method"] == "POST" and self.rules.keyed_request(scope) is scope
        if storable:
            scope = {**scope, CAPTURE_SCOPE_KEY: capture}
            follow_scope(scope)
        request_time = time.time()
        await self.app(scope, receive, recorder.send)
        if not policy.invalidates(scope["method"], status):
            return
        for key in self.rules.invalidated_keys(scope, locations):
            await self.cache.purge_primary(key)
        if storable:
            # Stored after the invalidation, which would otherwise drop it.
            target = self.rules.primary_key(scope)
            entry = self._post_entry(scope, target, recorder, capture, request_time, time.time())
            if entry is not None:
                await self.cache.store(target, entry, scope["headers"])

    def _post_entry(
        self,
        scope: Scope,
        target: str,
        recorder: ResponseRecorder,
        capture: IdentityCapture,
        request_time: float,
        response_time: float,
    ) -> CacheEntry | None:
        """The GET entry a POST response makes, or None. RFC 9110 §9.3.3: only with explicit freshness (read from
        a targeted field when one is in effect, RFC 9213) and a Content-Location of the target URI; §8.7: only a 2xx
        says its content is that URI's representation. The rest is what a GET response needs (`build_entry`):
        no-store, private, Authorization, Cookie, Set-Cookie, Vary: *, a complete body within the size limit. No
        route default applies (nor heuristics, with explicit freshness)."""
        start = recorder.start
        if start is None or not 200 <= start["status"] < 300:
            return None
        headers = start.get("headers", ())
        fields: dict[bytes, bytes] = {}
        for key, value in headers:
            name = key.lower()
            fields[name] = fields[name] + b", " + value if name in fields else value
        cc, expires = response_directives(fields, self.storage.targets)
        if cc.max_age is None and cc.s_maxage is None and expires is None:
            return None
        content_locations = [v for k, v in headers if k.lower() == b"content-location"]
        if len(content_locations) != 1 or not self._names_target(content_locations[0], target):
            return None
        entry = self.storage.build_entry(recorder, scope["headers"], request_time, response_time, None, capture)
        record = current_record()
        if entry is not None and record is not None:
            entry.route = record.route
        return entry

    def _names_target(self, content_location: bytes, target: str) -> bool:
        """Whether Content-Location, resolved against the target URI (RFC 3986 §5), is that URI as the cache keys
        it: same origin, path and query."""
        try:
            resolved = urljoin(target, content_location.decode("latin-1").strip())
            return url_key(resolved, self.rules.normalise_query) == target
        except ValueError:  # a malformed URL (an unclosed IPv6 bracket) names nothing
            return False
