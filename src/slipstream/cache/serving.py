"""Answering from a CacheEntry: the negotiated variant (filled once on demand), Age, 304/412, HEAD."""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import Send

from slipstream.cache.entry import CacheEntry
from slipstream.config import Settings
from slipstream.http.codecs import Codec, make_codecs
from slipstream.http.encoding import EncodingNegotiator
from slipstream.http.headers import RawHeaders, add_vary, encoded_headers, request_header
from slipstream.http.preconditions import (
    NOT_MODIFIED,
    Preconditions,
    not_modified_headers,
    parse_entity_tag,
    parse_http_date,
)

# Fills a missing variant: (entry, coding, encoded body) -> None.
VariantSink = Callable[[CacheEntry, str, bytes], None]


class EntryResponder:
    """Turns entries into responses. Holds the codecs so variants match what CompressionMiddleware would send."""

    def __init__(self, settings: Settings, status_header: bytes | None) -> None:
        self.codecs: dict[str, Codec] = make_codecs(
            settings.compression_encodings if settings.compression_enabled else (),
            brotli_quality=settings.compression_brotli_quality,
            gzip_level=settings.compression_gzip_level,
            zstd_level=settings.compression_zstd_level,
        )
        self.negotiate = EncodingNegotiator(tuple(self.codecs))
        self.status_header = status_header

    def representation(
        self, entry: CacheEntry, accept_encoding: bytes | None, keep_variant: VariantSink
    ) -> tuple[RawHeaders, bytes]:
        """Headers and body for this client. A coding seen for the first time is compressed once and kept."""
        choice = self.negotiate(accept_encoding) if entry.compressible else None
        coding = choice.coding if choice is not None else None
        if coding is None:
            body = entry.body
        else:
            found = entry.variants.get(coding)
            if found is None:
                found = self.codecs[coding].compress(entry.body)
                keep_variant(entry, coding, found)
            body = found
        headers = entry.rendered.get(coding)
        if headers is None:
            # Rendered once per coding and kept with the entry: later hits only add Age and X-Cache.
            if coding is None:
                headers = [*entry.headers, (b"content-length", b"%d" % len(body))]
                if entry.compressible:
                    add_vary(headers, b"Accept-Encoding")
            else:
                headers = encoded_headers(entry.headers, coding.encode("ascii"), len(body))
            entry.rendered[coding] = headers
        return list(headers), body

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
        headers, body = self.representation(entry, request_header(request_headers, b"accept-encoding"), keep_variant)
        headers.append((b"age", b"%d" % int(age)))
        if self.status_header is not None:
            headers.append((self.status_header, outcome.encode("ascii")))
        status = entry.status
        preconditions = Preconditions.from_headers(request_headers)
        if preconditions is not None and 200 <= status < 300:
            etag = next((parse_entity_tag(v) for k, v in headers if k == b"etag"), None)
            last_modified = next((parse_http_date(v) for k, v in headers if k == b"last-modified"), None)
            verdict = preconditions.evaluate(method, etag, last_modified, True)
            if verdict == NOT_MODIFIED:
                kept = not_modified_headers(headers)
                kept.append((b"age", b"%d" % int(age)))
                if self.status_header is not None:
                    kept.append((self.status_header, outcome.encode("ascii")))
                status, headers, body = NOT_MODIFIED, kept, b""
            elif verdict is not None:
                text = b"Precondition Failed\n"
                headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(text))]
                status, body = verdict, text
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
