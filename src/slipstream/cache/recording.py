"""From the app's response to a CacheEntry: records what went out, then applies RFC 9111's storage rules."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from starlette.types import Message, Send

from slipstream.cache import policy
from slipstream.cache.entry import CacheEntry
from slipstream.cache.keys import vary_fields
from slipstream.cache.tags import SURROGATE_KEY
from slipstream.cache.targeted import response_directives
from slipstream.config import Settings
from slipstream.http.capture import IdentityCapture
from slipstream.http.dates import parse_http_date
from slipstream.http.headers import length_matches
from slipstream.http.responses import head_body

_SURROGATE_KEY = SURROGATE_KEY.encode("ascii")
# Removed from the responses the cache forwards: for slipstream only (add the targeted fields that end here).
NOT_SENT = frozenset({_SURROGATE_KEY})
# Never stored: hop-by-hop fields, and fields a cache recomputes.
_NOT_STORED = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"age",
        _SURROGATE_KEY,
    }
)


# Fields a 304 does not update (RFC 9111 §3.2): those never stored; those the stored variants depend on (ETag and
# Vary, which the 304 shows as compression left them for one client, and Content-Encoding, Content-Range); and
# Set-Cookie, since a shared cache does not hand one client's cookie to the others.
_NOT_UPDATED = _NOT_STORED | {b"etag", b"vary", b"content-encoding", b"content-range", b"set-cookie"}


class ResponseRecorder:
    """Wraps ``send``: forwards the response (tagged MISS, ``not_sent`` fields removed) and keeps a copy of a complete
    one.

    With ``hold`` (revalidating a stale entry) the start message is kept back: a 304, or a 5xx the cache may
    answer with stale content, never reaches the client; anything else is forwarded as usual.
    """

    def __init__(
        self,
        downstream: Send,
        status_header: bytes | None,
        *,
        hold: bool = False,
        serve_stale_on_error: bool = False,
        head: bool = False,
        storage: StoragePolicy | None = None,
        request_headers: Iterable[tuple[bytes, bytes]] = (),
        default_ttl: float | None = None,
        on_not_stored: Callable[[], None] | None = None,
        not_sent: frozenset[bytes] = NOT_SENT,
        capture: IdentityCapture | None = None,
        streaming: set[str] | None = None,
        primary: str = "",
    ) -> None:
        """``storage`` (with the request's fields and route default) decides from the start message whether the
        response may be stored; when it may not, ``on_not_stored`` is called once, before that message goes out,
        and also when a streamed body cannot be kept. A body in several messages is kept as it goes out (each
        chunk forwarded at once), up to ``capture.limit`` bytes, when ``storage`` says yes to its start and no other
        request keeps a stream of the same URL (``primary`` in ``streaming``: concurrent downloads of one URL hold
        one copy, not one each; ``claimed`` says this one added it); ``capture`` tells compression inside to keep
        the identity chunks."""
        self.downstream = downstream
        self.storage = storage
        self.request_headers = request_headers
        self.default_ttl = default_ttl
        self.on_not_stored = on_not_stored
        self.not_sent = not_sent
        self.head = head
        self.status_header = status_header
        self.hold = hold
        self.serve_stale_on_error = serve_stale_on_error
        self.start: Message | None = None
        self.body: bytes | None = None
        self.swallowed = False  # the response was a 304 or an error the stale entry answers instead
        self.forwarded = False
        # ``storage`` said no to the start message: the response is not built into an entry at the end either.
        self.refused = False
        self.capture = capture
        self.streaming = streaming
        self.primary = primary
        self.claimed = False
        self.chunks: list[bytes] | None = None  # a streamed body kept so far
        self.kept = 0

    def may_store(self, start: Message) -> bool:
        storage = self.storage
        return storage is not None and storage.may_store_start(start, self.request_headers, self.default_ttl)

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.start = message
            status: int = message["status"]
            if self.hold and (status == 304 or (status >= 500 and self.serve_stale_on_error)):
                self.swallowed = True
                return
            if self.on_not_stored is not None and self.storage is not None and not self.may_store(message):
                self.refused = True
                self._not_stored()
            headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in self.not_sent]
            if self.status_header is not None:
                headers.append((self.status_header, b"MISS"))
            self.forwarded = True
            await self.downstream({**message, "headers": headers})
            return
        if self.swallowed:
            return
        if message["type"] == "http.response.body":
            more = message.get("more_body", False)
            if self.chunks is None and self.body is None and not more:
                self.body = message.get("body", b"")  # the common case: the whole body in one message
            else:
                self._keep_streamed(message.get("body", b""), more)
        if self.head and message["type"] == "http.response.body":
            # The app answered as for GET; the client asked for headers only.
            stripped = head_body(message)
            if stripped is None:
                return
            message = stripped
        await self.downstream(message)

    def _keep_streamed(self, chunk: bytes, more: bool) -> None:
        capture = self.capture
        if self.chunks is None:
            start = self.start
            if self.body is not None or start is None or self.refused or capture is None or self.storage is None:
                self._give_up()
                return
            if not capture.limit or not self.may_store(start) or not self._claim_stream():
                self._give_up()
                return
            self.chunks = []
            capture.keep = True
            # Nobody waits on a stream (a client may read it slowly, or never): the waiting requests go to the app
            # themselves now, and the response is stored when its last chunk has gone out.
            self._not_stored()
        assert capture is not None  # chunks are kept only with a capture
        self.kept += len(chunk)
        if self.kept > capture.limit or capture.keep is False:
            self._give_up()
            return
        self.chunks.append(chunk)
        if not more:
            body, self.chunks = b"".join(self.chunks), None
            if self.start is None or not length_matches(self.start.get("headers", ()), len(body)):
                self._give_up()
                return
            self.body = body

    def _claim_stream(self) -> bool:
        streaming = self.streaming
        if streaming is None:
            return True
        if self.primary in streaming:
            return False
        streaming.add(self.primary)
        self.claimed = True
        return True

    def _give_up(self) -> None:
        """Not storable after all (streamed and refused, or past the limit): nothing kept, nobody waits."""
        self.body = b""
        self.start = None
        self.chunks = None
        if self.capture is not None:
            self.capture.keep = False
        self._not_stored()

    def _not_stored(self) -> None:
        callback, self.on_not_stored = self.on_not_stored, None
        if callback is not None:
            callback()


def _fields(headers: Iterable[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    fields: dict[bytes, bytes] = {}
    for key, value in headers:
        name = key.lower()
        fields[name] = fields[name] + b", " + value if name in fields else value
    return fields


class StoragePolicy:
    """What one cache stores: RFC 9111's rules for a shared cache, with that cache's options, made once.

    ``key_headers``: request fields every entry is keyed on as if the response named them in Vary.
    ``store_cookie_requests``: a request carrying a Cookie is stored as RFC 9111 allows, not only when the response
    is ``public`` or keyed on the cookie. ``targets``: the targeted fields (RFC 9213) read in place of Cache-Control
    and Expires, lower-case, most specific first. ``heuristic_*``: `policy.heuristic_lifetime`, for responses
    without explicit freshness or a route default. A request's route default (``default_ttl``) is given per call.
    """

    __slots__ = (
        "allow_set_cookie",
        "heuristic_fraction",
        "heuristic_max_seconds",
        "key_headers",
        "max_entry_bytes",
        "minimum_compress_size",
        "store_cookie_requests",
        "targets",
    )

    def __init__(
        self,
        *,
        allow_set_cookie: bool = Settings.cache_allow_set_cookie,
        max_entry_bytes: int = Settings.cache_max_entry_bytes,
        minimum_compress_size: int = Settings.compression_minimum_size,
        key_headers: tuple[str, ...] = (),
        store_cookie_requests: bool = Settings.cache_store_cookie_requests,
        targets: tuple[bytes, ...] = (),
        heuristic_fraction: float = Settings.cache_heuristic_fraction,
        heuristic_max_seconds: float = Settings.cache_heuristic_max_seconds,
    ) -> None:
        self.allow_set_cookie = allow_set_cookie
        self.max_entry_bytes = max_entry_bytes
        self.minimum_compress_size = minimum_compress_size
        self.key_headers = key_headers
        self.store_cookie_requests = store_cookie_requests
        self.targets = targets
        self.heuristic_fraction = heuristic_fraction
        self.heuristic_max_seconds = heuristic_max_seconds

    def build_entry(
        self,
        recorder: ResponseRecorder,
        request_headers: Iterable[tuple[bytes, bytes]],
        request_time: float,
        response_time: float,
        default_ttl: float | None,
        capture: IdentityCapture | None = None,
    ) -> CacheEntry | None:
        """The entry to store for a complete GET response, or None when RFC 9111 (or a size limit) says no.
        ``capture``: the identity response compression kept when it encoded this one."""
        start, body = recorder.start, recorder.body
        if start is None or body is None or recorder.swallowed:
            return None
        sent = _fields(start.get("headers", ()))
        if self._without_freshness(sent, default_ttl):
            return None
        encoding = sent.get(b"content-encoding")
        identity_start, identity_body = start, body
        if capture is not None and capture.start is not None and capture.body is not None and encoding is not None:
            identity_start, identity_body = capture.start, capture.body
        if len(identity_body) + len(body) > self.max_entry_bytes:
            return None
        fields = _fields(identity_start.get("headers", ()))
        request = _fields(request_headers)
        response_cc, expires = response_directives(fields, self.targets)
        lifetime = policy.freshness_lifetime(response_cc, fields.get(b"date"), expires, default_ttl, response_time)
        if lifetime is None:
            lifetime = self._fallback_lifetime(start["status"], response_cc, fields, None, response_time)
        status: int = start["status"]
        last_modified = fields.get(b"last-modified")
        etag = fields.get(b"etag")
        refusal = policy.storable(
            method="GET",
            status=status,
            request_cc=policy.parse_cache_control(request.get(b"cache-control")),
            response_cc=response_cc,
            has_authorization=b"authorization" in request,
            has_set_cookie=b"set-cookie" in fields,
            allow_set_cookie=self.allow_set_cookie,
            vary=fields.get(b"vary"),
            lifetime=lifetime,
            has_validator=etag is not None or last_modified is not None,
            has_expires=expires is not None,
            has_cookie=b"cookie" in request and not self.store_cookie_requests and "cookie" not in self.key_headers,
        )
        vary = vary_fields(v for k, v in identity_start.get("headers", ()) if k.lower() == b"vary")
        # A validator alone (every response has one once ETags are generated) does not make a response worth
        # storing: it needs explicit freshness, a route default, or an explicit no-cache ("store, but revalidate").
        if refusal is not None or vary is None or (lifetime is None and not response_cc.no_cache):
            return None
        if self.key_headers:
            vary = tuple(sorted(set(vary).union(self.key_headers)))
        variants = {}
        if identity_start is not start and encoding is not None:
            variants[encoding.decode("latin-1").strip()] = body
        return CacheEntry(
            status=status,
            headers=[(k, v) for k, v in identity_start.get("headers", ()) if k.lower() not in _NOT_STORED],
            body=identity_body,
            etag=etag,
            last_modified=None if last_modified is None else parse_http_date(last_modified),
            response_time=response_time,
            initial_age=policy.initial_age(fields.get(b"age"), fields.get(b"date"), request_time, response_time),
            lifetime=lifetime or 0.0,
            stale_while_revalidate=float(response_cc.stale_while_revalidate or 0),
            stale_if_error=float(response_cc.stale_if_error or 0),
            no_cache=response_cc.no_cache,
            must_revalidate=response_cc.must_revalidate,
            compressible=capture is not None
            and capture.compressible
            and len(identity_body) >= self.minimum_compress_size,
            negotiated=capture is not None and capture.negotiated,
            vary=vary,
            tags=tuple(fields.get(_SURROGATE_KEY, b"").decode("latin-1").split()),
            variants=variants,
        )

    def may_store_start(
        self, start: Message, request_headers: Iterable[tuple[bytes, bytes]], default_ttl: float | None
    ) -> bool:
        """Whether a response beginning with ``start`` may yet be stored: its Content-Length (if any) within the size
        limit, and `build_entry` saying yes to it with an empty body, since nothing but the size limit looks at the
        body. A response without any freshness is refused from its fields alone: most are."""
        sent = _fields(start.get("headers", ()))
        if self._without_freshness(sent, default_ttl):
            return False
        length = sent.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_entry_bytes:
            return False
        probe = ResponseRecorder(_nowhere, None)
        probe.start, probe.body = start, b""
        now = time.time()
        return self.build_entry(probe, request_headers, now, now, default_ttl) is not None

    def freshen(
        self,
        entry: CacheEntry,
        not_modified: Message,
        request_time: float,
        response_time: float,
        default_ttl: float | None = None,
    ) -> None:
        """RFC 9111 §4.3.4 and §3.2: a 304 from the origin updates the stored entry's header fields, any of them
        (but those in ``_NOT_UPDATED``), and with them its freshness, read from the targeted fields as
        `build_entry` reads them; clients get the updated fields from now on.

        Freshness follows `build_entry`'s rule on the updated fields (explicit, else ``default_ttl``, else the
        heuristic); where none applies the entry keeps the lifetime it had."""
        refreshed = _fields(not_modified.get("headers", ()))
        updates = {name: value for name, value in refreshed.items() if name not in _NOT_UPDATED}
        entry.headers = [(k, v) for k, v in entry.headers if k.lower() not in updates]
        entry.headers.extend(updates.items())
        entry.rendered.clear()
        fields = _fields(entry.headers)
        cc, expires = response_directives(fields, self.targets)
        fallback = self._fallback_lifetime(entry.status, cc, fields, default_ttl, response_time)
        if fallback is not None:
            entry.lifetime = fallback  # below, explicit freshness in the updated fields overrides it
        date = fields.get(b"date")
        entry.lifetime = policy.freshness_lifetime(cc, date, expires, entry.lifetime, response_time) or 0.0
        entry.response_time = response_time
        entry.initial_age = policy.initial_age(refreshed.get(b"age"), date, request_time, response_time)
        entry.no_cache, entry.must_revalidate = cc.no_cache, cc.must_revalidate
        entry.stale_while_revalidate = float(cc.stale_while_revalidate or 0)
        entry.stale_if_error = float(cc.stale_if_error or 0)

    def _without_freshness(self, sent: dict[bytes, bytes], default_ttl: float | None) -> bool:
        """No freshness and no no-cache, nor a route default or a heuristic to give one: nothing to store (see
        `build_entry`). The common case of dynamic responses, told from the fields alone."""
        if default_ttl is not None or b"cache-control" in sent or b"expires" in sent:
            return False
        if any(name in sent for name in self.targets):
            return False
        return not (self.heuristic_fraction > 0 and b"last-modified" in sent)

    def _fallback_lifetime(
        self,
        status: int,
        cc: policy.CacheControl,
        fields: dict[bytes, bytes],
        default_ttl: float | None,
        now: float,
    ) -> float | None:
        """The freshness of a response without explicit freshness: its route's TTL, else the opt-in heuristic."""
        if default_ttl is not None:
            return default_ttl
        return policy.heuristic_lifetime(
            status=status,
            cc=cc,
            last_modified=fields.get(b"last-modified"),
            date=fields.get(b"date"),
            now=now,
            fraction=self.heuristic_fraction,
            max_seconds=self.heuristic_max_seconds,
        )


async def _nowhere(message: Message) -> None:
    """The downstream of a probe that forwards nothing."""
