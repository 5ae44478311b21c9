"""CompressionMiddleware: brotli, zstd and gzip negotiated from Accept-Encoding, streaming-safe."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slipstream.config import Settings, path_matcher
from slipstream.exporters.metrics import CompressionBytes
from slipstream.http.capture import CAPTURE_SCOPE_KEY, IdentityCapture
from slipstream.http.codecs import Codec, StreamCompressor
from slipstream.http.content_types import CompressiblePolicy
from slipstream.http.encoding import EncodingChoice, EncodingNegotiator
from slipstream.http.headers import RawHeaders, add_vary, encoded_headers, length_matches, request_header, weaken_etag
from slipstream.http.responses import not_acceptable
from slipstream.middleware.standalone import own_instrumentation

if TYPE_CHECKING:
    from slipstream.instrumentation import Instrumentation

# Responder states: pass messages through, hold the start until the first body, compress a stream, drop the rest.
_PASS, _HOLD, _STREAM, _DROP = range(4)
_NO_BODY_STATUSES = frozenset({204, 206, 304})


class CompressionMiddleware:
    """Compresses HTTP responses with the best coding both sides accept. See the README for every option."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        encodings: tuple[str, ...] = Settings.compression_encodings,
        minimum_size: int = Settings.compression_minimum_size,
        brotli_quality: int = Settings.compression_brotli_quality,
        gzip_level: int = Settings.compression_gzip_level,
        zstd_level: int = Settings.compression_zstd_level,
        thread_threshold: int = Settings.compression_thread_threshold,
        event_stream: bool = Settings.compression_event_stream,
        exclude_content_types: tuple[str, ...] = Settings.compression_exclude_content_types,
        include_content_types: tuple[str, ...] = Settings.compression_include_content_types,
        exclude_paths: tuple[str, ...] = Settings.compression_exclude_paths,
        instrumentation: Instrumentation | None = None,
    ) -> None:
        # The settings dataclass validates every option, here as when they come from the environment.
        s = Settings(
            compression_encodings=encodings,
            compression_minimum_size=minimum_size,
            compression_brotli_quality=brotli_quality,
            compression_gzip_level=gzip_level,
            compression_zstd_level=zstd_level,
            compression_thread_threshold=thread_threshold,
            compression_event_stream=event_stream,
            compression_exclude_content_types=exclude_content_types,
            compression_include_content_types=include_content_types,
            compression_exclude_paths=exclude_paths,
        )
        self.app = app
        self.codecs: dict[str, Codec] = s.codecs()
        self.count_bytes = CompressionBytes((instrumentation or own_instrumentation()).metrics, self.codecs)
        self.negotiate = EncodingNegotiator(s.compression_encodings)
        self.minimum_size = s.compression_minimum_size
        self.thread_threshold = s.compression_thread_threshold
        self.compressible = CompressiblePolicy(
            s.compression_exclude_content_types, s.compression_include_content_types, s.compression_event_stream
        )
        self.excluded_path = path_matcher(s.compression_exclude_paths)
        self.not_acceptable = not_acceptable(s.compression_encodings)

    @classmethod
    def from_settings(cls, app: ASGIApp, settings: Settings, instrumentation: Instrumentation) -> CompressionMiddleware:
        """The middleware ``install()`` adds: every option from the ``compression_*`` settings."""
        s = settings
        return cls(
            app,
            encodings=s.compression_encodings,
            minimum_size=s.compression_minimum_size,
            brotli_quality=s.compression_brotli_quality,
            gzip_level=s.compression_gzip_level,
            zstd_level=s.compression_zstd_level,
            thread_threshold=s.compression_thread_threshold,
            event_stream=s.compression_event_stream,
            exclude_content_types=s.compression_exclude_content_types,
            include_content_types=s.compression_include_content_types,
            exclude_paths=s.compression_exclude_paths,
            instrumentation=instrumentation,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.excluded_path is not None and self.excluded_path(scope["path"])):
            await self.app(scope, receive, send)
            return
        choice = self.negotiate(request_header(scope["headers"], b"accept-encoding"))
        responder = _CompressionResponder(self, send, choice, scope["method"] == "HEAD", scope.get(CAPTURE_SCOPE_KEY))
        await self.app(scope, receive, responder.send)

    async def run_compression(self, work: Callable[[bytes], bytes], data: bytes) -> bytes:
        """Compress on the event loop when cheap, in a worker thread when the input is large."""
        if len(data) >= self.thread_threshold:
            return await anyio.to_thread.run_sync(work, data)
        return work(data)


class _CompressionResponder:
    """Per-request state: wraps ``send`` for one response."""

    __slots__ = (
        "capture",
        "choice",
        "codec",
        "downstream",
        "forced",
        "identity",
        "identity_size",
        "is_head",
        "middleware",
        "start",
        "state",
        "stream",
    )

    def __init__(
        self,
        middleware: CompressionMiddleware,
        downstream: Send,
        choice: EncodingChoice | None,
        is_head: bool,
        capture: IdentityCapture | None,
    ) -> None:
        self.middleware = middleware
        self.capture = capture
        self.downstream = downstream
        self.choice = choice
        self.codec: Codec | None = None if choice is None or choice.coding is None else middleware.codecs[choice.coding]
        # The client refused identity: compress even what we would normally leave alone.
        self.forced = choice is not None and not choice.identity_acceptable
        self.is_head = is_head
        self.start: Message = {}
        self.state = _PASS
        # A streamed body's identity chunks, kept for a cache outside that stores the response (see IdentityCapture).
        self.identity: list[bytes] | None = None
        self.identity_size = 0
        self.stream: StreamCompressor | None = None

    async def send(self, message: Message) -> None:
        message_type = message["type"]
        if message_type == "http.response.start":
            forward = self._on_start(message)
            if forward is not None:
                await self.downstream(forward)
            elif self.state == _DROP:
                await self._send_not_acceptable()
        elif self.state == _PASS:
            await self.downstream(message)
        elif self.state == _DROP:
            return
        elif message_type != "http.response.body":
            # A message we cannot compress (a pathsend, say): let the held response out unchanged.
            if self.state == _HOLD:
                await self.downstream(self.start)
            self.state = _PASS
            await self.downstream(message)
        elif self.state != _HOLD:
            await self._on_stream_body(message)
        elif message.get("more_body", False):
            await self._start_stream(message)
        else:
            # The whole body in one message, as most responses come: sent from here rather than from a helper
            # awaited in turn, which cost ~0.2 µs a response.
            self.state = _PASS
            start = self.start
            body: bytes = message.get("body", b"")
            middleware = self.middleware
            if len(body) < middleware.minimum_size and not self.forced:
                await self.downstream(start)
                await self.downstream(message)
                return
            codec = self.codec
            assert codec is not None
            # run_compression's rule, inlined: a coroutine call costs ~1 µs a response.
            if len(body) < middleware.thread_threshold:
                compressed = codec.compress(body)
            else:
                compressed = await anyio.to_thread.run_sync(codec.compress, body)
            middleware.count_bytes(codec.name, len(body), len(compressed))
            if self.capture is not None:
                self.capture.start, self.capture.body = start, body
            await self.downstream(
                {**start, "headers": encoded_headers(start.get("headers", []), codec.token, len(compressed))}
            )
            await self.downstream({"type": "http.response.body", "body": compressed})

    def _on_start(self, message: Message) -> Message | None:
        """Decide from the start message alone; returns what to send now, or None when held or refused."""
        status: int = message["status"]
        headers: RawHeaders = message.get("headers", [])
        content_type = content_length = None
        encoded = no_transform = False
        for key, value in headers:
            name = key.lower()
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                content_length = value
            elif name in (b"content-encoding", b"content-range"):
                encoded = True
            elif name == b"cache-control" and b"no-transform" in value.lower():
                no_transform = True
        codec = self.codec
        if status < 200 or encoded or no_transform or status in _NO_BODY_STATUSES:
            if status == 304 and codec is not None:
                # The 200 this revalidates was encoded: its validators and Vary must match.
                headers = list(headers)
                _weaken_etags(headers)
                add_vary(headers, b"Accept-Encoding")
                return {**message, "headers": headers}
            return message
        if self.choice is None:
            if 200 <= status < 300:
                self.state = _DROP
                return None
            return message
        compressible = self.middleware.compressible(content_type)
        if self.capture is not None:
            self.capture.negotiated = True
            self.capture.compressible = compressible
        if not self.forced and not compressible:
            return message
        if codec is not None and not self.is_head:
            # Held until the first body chunk, which decides (not Content-Length): a whole body is compressed when
            # large enough, a streamed one always. Decided first: the common path needs no more of the headers.
            self.start = message
            self.state = _HOLD
            return None
        size = _parse_length(content_length)
        small = size is not None and size < self.middleware.minimum_size and not self.forced
        if codec is None:
            if small:
                return message
            # Another client would get this compressed: shared caches must key on Accept-Encoding.
            headers = list(headers)
            add_vary(headers, b"Accept-Encoding")
            return {**message, "headers": headers}
        # HEAD: the same headers as the GET would get, minus a Content-Length we cannot know without the body.
        return message if small else {**message, "headers": encoded_headers(headers, codec.token, None)}

    async def _start_stream(self, message: Message) -> None:
        """The first chunk of a streamed body: the start goes out encoded, without a Content-Length."""
        codec = self.codec
        assert codec is not None
        start = self.start
        self.stream = codec.stream()
        self.state = _STREAM
        if self.capture is not None and self.capture.limit:
            self.identity = []
        await self.downstream({**start, "headers": encoded_headers(start.get("headers", []), codec.token, None)})
        await self._on_stream_body(message)

    async def _on_stream_body(self, message: Message) -> None:
        stream = self.stream
        assert stream is not None
        body: bytes = message.get("body", b"")
        if self.identity is not None:
            self._keep_identity(body)
        if message.get("more_body", False):
            if body:
                chunk = await self.middleware.run_compression(stream.compress_chunk, body)
                self.middleware.count_bytes(stream.coding, len(body), len(chunk))
                await self.downstream({"type": "http.response.body", "body": chunk, "more_body": True})
            return
        self.state = _PASS
        tail = await self.middleware.run_compression(stream.finish, body)
        self.middleware.count_bytes(stream.coding, len(body), len(tail))
        capture, identity = self.capture, self.identity
        if capture is not None and identity is not None and capture.keep:
            whole = b"".join(identity)
            if length_matches(self.start.get("headers", ()), len(whole)):
                capture.start, capture.body = self.start, whole
            else:
                capture.keep = False  # ended short of its Content-Length: the cache outside stores nothing
        await self.downstream({"type": "http.response.body", "body": tail})

    def _keep_identity(self, body: bytes) -> None:
        """Keep a streamed identity chunk while the cache outside may store the response, within its limit."""
        capture = self.capture
        assert capture is not None and self.identity is not None
        self.identity_size += len(body)
        if capture.keep is False or self.identity_size > capture.limit:
            capture.keep = False
            self.identity = None
        else:
            self.identity.append(body)

    async def _send_not_acceptable(self) -> None:
        headers, body = self.middleware.not_acceptable
        await self.downstream({"type": "http.response.start", "status": 406, "headers": list(headers)})
        await self.downstream({"type": "http.response.body", "body": b"" if self.is_head else body})


def _parse_length(value: bytes | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


def _weaken_etags(headers: RawHeaders) -> None:
    for index, (key, value) in enumerate(headers):
        if key.lower() == b"etag":
            headers[index] = (key, weaken_etag(value))
