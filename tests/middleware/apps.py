"""Tiny raw ASGI apps with exact control over the messages they send."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import brotli
import zstandard
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Compressible, varied text: long enough to clear any minimum size.
TEXT = b"".join(b"<li id='item-%d'>Item number %d costs %d.%02d</li>\n" % (i, i, i * 3, i % 100) for i in range(200))


def respond(
    body: bytes | Sequence[bytes] = TEXT,
    *,
    status: int = 200,
    headers: Sequence[tuple[str, str]] = (("content-type", "text/html; charset=utf-8"),),
    content_length: bool = True,
) -> ASGIApp:
    """An app answering every request with ``status``, ``headers`` and ``body`` (a sequence means streamed chunks)."""
    chunks = [body] if isinstance(body, bytes) else list(body)
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers]
    if content_length and isinstance(body, bytes):
        raw_headers.append((b"content-length", str(len(body)).encode()))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": list(raw_headers)})
        for index, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": index < len(chunks) - 1})

    return app


def decode(coding: str | None, data: bytes) -> bytes:
    if coding is None:
        return data
    if coding == "br":
        return bytes(brotli.decompress(data))
    if coding == "gzip":
        return zlib.decompress(data, 47)
    assert coding == "zstd"
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


class StreamDecoder:
    """Incremental decoder, to check that every flushed chunk decodes on its own."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._brotli = brotli.Decompressor()
        self._gzip = zlib.decompressobj(47)
        self._zstd = zstandard.ZstdDecompressor().decompressobj()

    def feed(self, data: bytes) -> bytes:
        if self.coding == "br":
            return bytes(self._brotli.process(data))
        if self.coding == "gzip":
            return self._gzip.decompress(data)
        return self._zstd.decompress(data)


def body_messages(messages: Sequence[Message]) -> list[bytes]:
    return [m.get("body", b"") for m in messages if m["type"] == "http.response.body"]
