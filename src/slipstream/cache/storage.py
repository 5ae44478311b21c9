"""StoragePolicy: RFC 9111's rules for what a shared cache stores, and how a 304 freshens what it stored."""

from __future__ import annotations

import time
from collections.abc import Iterable

from starlette.types import Message

from slipstream.cache import policy
from slipstream.cache.entry import CacheEntry
from slipstream.cache.keys import vary_fields
from slipstream.cache.recording import ResponseRecorder
from slipstream.cache.tags import SURROGATE_KEY
from slipstream.cache.targeted import response_directives
from slipstream.config import Settings
from slipstream.http.capture import IdentityCapture
from slipstream.http.dates import parse_http_date

_SURROGATE_KEY = SURROGATE_KEY.encode("ascii")
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
        "_freshness_fields",
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
        # The response fields that can give it freshness: Cache-Control, Expires, the targeted fields, and with the
        # heuristic Last-Modified (`_without_freshness`, `refused_by_its_fields`).
        self._freshness_fields = frozenset(
            {b"cache-control", b"expires", *targets, *((b"last-modified",) if heuristic_fraction > 0 else ())}
        )

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
        probe = ResponseRecorder(_nowhere, [])
        probe.start, probe.body = start, b""
        now = time.time()
        return self.build_entry(probe, request_headers, now, now, default_ttl) is not None

    def refused_by_its_fields(self, start: Message, route_default: bool) -> bool:
        """Whether a response beginning with ``start`` is refused whatever the request: no freshness in its fields,
        and neither a route default (``route_default``: a route TTL rule matches its path, for some request) nor
        the heuristic could give it one. Most dynamic pages: the cache may hand their URL's next requests to the app
        without keeping a copy (see `RecentlyUncacheable.passes`)."""
        if route_default:
            return False
        freshness = self._freshness_fields
        for name, _ in start.get("headers", ()):
            if name.lower() in freshness:
                return False
        return True

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
        return default_ttl is None and self._freshness_fields.isdisjoint(sent)

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
