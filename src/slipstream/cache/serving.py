"""Answering from a CacheEntry: the negotiated variant (filled once on demand), Age, 304/406/412, HEAD."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from starlette.types import Send

from slipstream.cache.entry import CacheEntry, Rendering
from slipstream.http.codecs import Codec
from slipstream.http.dates import parse_http_date
from slipstream.http.encoding import EncodingNegotiator
from slipstream.http.headers import add_vary, encoded_headers, request_header
from slipstream.http.preconditions import (
    NOT_MODIFIED,
    Preconditions,
    not_modified_headers,
    parse_entity_tag,
)
from slipstream.http.ranges import (
    PARTIAL_CONTENT,
    RANGE_NOT_SATISFIABLE,
    ByteRange,
    if_range_holds,
    not_satisfiable,
    parse_range,
    partial,
)
from slipstream.http.responses import not_acceptable, precondition_failed

if TYPE_CHECKING:
    from slipstream.exporters.metrics import CompressionBytes

NOT_ACCEPTABLE = 406
# Fills a missing variant: (entry, coding, encoded body) -> None.
VariantSink = Callable[[CacheEntry, str, bytes], None]


class EntryResponder:
    """Turns entries into responses. Holds the codecs so variants match what CompressionMiddleware would send.

    ``not_sent``: stored fields never rendered to clients (slipstream's own targeted fields, RFC 9213)."""

    def __init__(
        self,
        codecs: Mapping[str, Codec],
        status_header: bytes | None,
        count_bytes: CompressionBytes,
        not_sent: frozenset[bytes] = frozenset(),
    ) -> None:
        self.codecs = codecs
        self.not_sent = not_sent
        self.count_bytes = count_bytes
        self.negotiate = EncodingNegotiator(tuple(codecs))
        self.status_header = status_header
        self.not_acceptable = not_acceptable(codecs)

    def representation(
        self, entry: CacheEntry, coding: str | None, keep_variant: VariantSink
    ) -> tuple[Rendering, bytes]:
        """Headers and body in ``coding`` (None: identity). A coding seen for the first time is compressed once and
        kept."""
        if coding is None:
            body = entry.body
        else:
            found = entry.variants.get(coding)
            if found is None:
                found = self.codecs[coding].compress(entry.body)
                # Counted once, when made: later hits serve the kept variant, and the variant of the response
                # CompressionMiddleware compressed for the miss was counted there.
                self.count_bytes(coding, len(entry.body), len(found))
                keep_variant(entry, coding, found)
            body = found
        rendering = entry.rendered.get(coding)
        if rendering is None:
            # Worked out once per coding and kept with the entry: later hits only add Age and X-Cache.
            stored = entry.headers
            if self.not_sent:
                stored = [(k, v) for k, v in stored if k.lower() not in self.not_sent]
            if coding is None:
                headers = [*stored, (b"content-length", b"%d" % len(body))]
                if entry.compressible:
                    add_vary(headers, b"Accept-Encoding")
            else:
                headers = encoded_headers(stored, coding.encode("ascii"), len(body))
            rendering = entry.rendered[coding] = Rendering(
                headers,
                not_modified_headers(headers),
                next((parse_entity_tag(v) for k, v in headers if k == b"etag"), None),
                next((parse_http_date(v) for k, v in headers if k == b"last-modified"), None),
            )
        return rendering, body

    async def send(
        self,
        send: Send,
        entry: CacheEntry,
        *,
        method: str,
        request_headers: list[tuple[bytes, bytes]],
        outcome: str,
        age: float,
        keep_variant: VariantSink,
    ) -> None:
        # CompressionMiddleware's rules, so a hit answers as the miss did: the coding only for bodies worth it,
        # unless the client refuses identity; 406 for a 2xx when nothing is acceptable.
        choice = self.negotiate(request_header(request_headers, b"accept-encoding"))
        coding = None
        cut = None
        if method == "GET" and entry.status == 200 and choice is not None and choice.identity_acceptable:
            cut = self._range(entry, request_headers, keep_variant)
        if (
            cut is None
            and choice is not None
            and (entry.compressible or (entry.negotiated and not choice.identity_acceptable))
        ):
            coding = choice.coding
        rendering, body = self.representation(entry, coding, keep_variant)
        tag = [] if self.status_header is None else [(self.status_header, outcome.encode("ascii"))]
        trailer = [(b"age", b"%d" % int(age)), *tag]
        status, headers = entry.status, [*rendering.headers, *trailer]
        if 200 <= status < 300:
            preconditions = Preconditions.from_headers(request_headers)
            verdict = None
            if preconditions is not None:
                stored_at = None
                if rendering.last_modified is None and preconditions.if_modified_since is not None:
                    stored_at = _date_or_received(entry)
                verdict = preconditions.evaluate(
                    method, rendering.etag, rendering.last_modified, True, stored_at=stored_at
                )
            if verdict == NOT_MODIFIED:
                status, headers, body = NOT_MODIFIED, [*rendering.not_modified_headers, *trailer], b""
            elif verdict is not None:
                headers, body = precondition_failed()
                status = verdict
            elif choice is None and entry.negotiated:
                # CompressionMiddleware's 406, made now rather than stored: no Age.
                status, body = NOT_ACCEPTABLE, self.not_acceptable[1]
                headers = [*self.not_acceptable[0], *tag]
            elif cut is not None:
                span = cut.within(len(body))
                if span is None:
                    status, (headers, body) = RANGE_NOT_SATISFIABLE, not_satisfiable(len(body))
                    headers.extend(tag)
                else:
                    status, (headers, body) = PARTIAL_CONTENT, partial(headers, body, span)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    def _range(
        self, entry: CacheEntry, request_headers: list[tuple[bytes, bytes]], keep: VariantSink
    ) -> ByteRange | None:
        """The one byte range to cut from the identity body (RFC 9110 §14.2), if the request asks for one and its
        If-Range (§13.1.5), compared with the identity representation's validators, holds. Ranges are of the
        identity body: encoded variants carry weak ETags, and their bytes depend on the codec's version and level."""
        ranges = parse_range(request_header(request_headers, b"range"))
        if ranges.single is None:
            return None
        identity = self.representation(entry, None, keep)[0]
        if not if_range_holds(request_header(request_headers, b"if-range"), identity.etag, identity.last_modified):
            return None
        return ranges.single


def _date_or_received(entry: CacheEntry) -> float:
    """What If-Modified-Since is compared with when the entry has no Last-Modified (RFC 9111 §4.3.2): its Date, or
    the time the cache received it (or, later, the 304 that last freshened it: never a 304 the first would deny)."""
    for name, value in entry.headers:
        if name.lower() == b"date":
            date = parse_http_date(value)
            return entry.response_time if date is None else float(date)
    return entry.response_time
