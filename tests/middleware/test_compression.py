from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from slipstream import CompressionMiddleware, Settings
from tests.middleware.apps import TEXT, StreamDecoder, body_messages, decode, respond
from tests.support import asgi_client, call_asgi, instrumented

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("accept_encoding", "expected"),
    [
        ("br", "br"),
        ("gzip", "gzip"),
        ("zstd", "zstd"),
        ("x-gzip", "gzip"),
        ("GZIP", "gzip"),
        ("gzip, deflate, br, zstd", "br"),  # equal q: server order decides
        ("gzip;q=1.0, br;q=0.5", "gzip"),  # client q-values rank first
        ("br;q=0, gzip", "gzip"),
        ("*", "br"),
        ("br;q=0, *", "zstd"),
        ("gzip;q=0", None),
        ("deflate", None),
        ("", None),
        ("identity", None),
        ("identity;q=1, gzip;q=0.5", None),
        ("gzip;q=abc", None),  # a malformed member is ignored, not guessed at
        ("gzip;level=9", None),
        (",,, ;;;", None),
        ("identity;q=0, gzip", "gzip"),
    ],
)
async def test_negotiated_coding_decodes_to_the_original(accept_encoding: str, expected: str | None) -> None:
    app = CompressionMiddleware(respond(), encodings=("br", "zstd", "gzip"))
    result = await call_asgi(app, headers=[("accept-encoding", accept_encoding)])
    assert result.status == 200
    assert result.headers.get("content-encoding") == expected
    assert decode(expected, result.body) == TEXT
    assert int(result.headers["content-length"]) == len(result.body)
    assert "accept-encoding" in result.headers["vary"].lower()


@pytest.mark.parametrize("accept_encoding", ["identity;q=0", "*;q=0", "gzip;q=0, identity;q=0", "deflate, *;q=0"])
async def test_nothing_acceptable_is_406(accept_encoding: str) -> None:
    app = CompressionMiddleware(respond(), encodings=("br", "gzip"))
    result = await call_asgi(app, headers=[("accept-encoding", accept_encoding)])
    assert result.status == 406
    assert b"br, gzip" in result.body
    head = await call_asgi(app, method="HEAD", headers=[("accept-encoding", accept_encoding)])
    assert head.status == 406
    assert head.body == b""


async def test_error_statuses_are_not_turned_into_406() -> None:
    app = CompressionMiddleware(respond(status=404))
    result = await call_asgi(app, headers=[("accept-encoding", "identity;q=0")])
    assert result.status == 404


async def test_refused_identity_forces_compression_of_small_and_excluded_bodies() -> None:
    small = CompressionMiddleware(respond(b"tiny"), encodings=("gzip",))
    result = await call_asgi(small, headers=[("accept-encoding", "identity;q=0, gzip")])
    assert result.headers["content-encoding"] == "gzip"
    assert decode("gzip", result.body) == b"tiny"
    image = CompressionMiddleware(respond(TEXT, headers=[("content-type", "image/png")]), encodings=("gzip",))
    result = await call_asgi(image, headers=[("accept-encoding", "identity;q=0, gzip")])
    assert result.headers["content-encoding"] == "gzip"


async def test_repeated_accept_encoding_fields_are_combined() -> None:
    app = CompressionMiddleware(respond(), encodings=("gzip", "br"))
    result = await call_asgi(app, headers=[("accept-encoding", "gzip;q=0.1"), ("accept-encoding", "br")])
    assert result.headers["content-encoding"] == "br"


@pytest.mark.parametrize(
    ("vary", "expected"),
    [
        (None, "Accept-Encoding"),
        ("Cookie", "Cookie, Accept-Encoding"),
        ("accept-encoding", "accept-encoding"),
        ("Origin, Accept-Encoding", "Origin, Accept-Encoding"),
        ("*", "*"),
    ],
)
async def test_vary_is_merged(vary: str | None, expected: str) -> None:
    headers = [("content-type", "text/html")] + ([("vary", vary)] if vary else [])
    app = CompressionMiddleware(respond(headers=headers))
    result = await call_asgi(app, headers=[("accept-encoding", "gzip")])
    assert result.header_list("vary") == [expected]


@pytest.mark.parametrize(("etag", "expected"), [('"abc"', 'W/"abc"'), ('W/"abc"', 'W/"abc"')])
async def test_compression_weakens_a_strong_etag(etag: str, expected: str) -> None:
    app = CompressionMiddleware(respond(headers=[("content-type", "text/html"), ("etag", etag)]))
    result = await call_asgi(app, headers=[("accept-encoding", "gzip")])
    assert result.headers["etag"] == expected
    uncompressed = await call_asgi(app, headers=[("accept-encoding", "identity")])
    assert uncompressed.headers["etag"] == etag


async def test_accept_ranges_is_dropped_from_encoded_responses() -> None:
    app = CompressionMiddleware(respond(headers=[("content-type", "text/plain"), ("accept-ranges", "bytes")]))
    result = await call_asgi(app, headers=[("accept-encoding", "gzip")])
    assert "accept-ranges" not in result.headers


@pytest.mark.parametrize(
    ("status", "headers", "body"),
    [
        (200, [("content-type", "text/html")], b"short body"),  # under the minimum size
        (200, [("content-type", "text/html"), ("content-encoding", "gzip")], TEXT),
        (200, [("content-type", "text/html"), ("content-encoding", "identity")], TEXT),
        (206, [("content-type", "text/html"), ("content-range", "bytes 0-9/100")], TEXT),
        (200, [("content-type", "text/html"), ("content-range", "bytes 0-9/100")], TEXT),
        (204, [], b""),
        (200, [("content-type", "image/png")], TEXT),
        (200, [("content-type", "video/mp4")], TEXT),
        (200, [("content-type", "audio/ogg")], TEXT),
        (200, [("content-type", "font/woff2")], TEXT),
        (200, [("content-type", "application/zip")], TEXT),
        (200, [("content-type", "text/html"), ("cache-control", "public, no-transform")], TEXT),
        (101, [], b""),
    ],
)
async def test_skipped_responses_pass_through_untouched(
    status: int, headers: list[tuple[str, str]], body: bytes
) -> None:
    app = CompressionMiddleware(respond(body, status=status, headers=headers))
    result = await call_asgi(app, headers=[("accept-encoding", "gzip")])
    assert result.status == status
    assert result.body == body
    assert result.header_list("content-encoding") == [v for k, v in headers if k == "content-encoding"]


async def test_not_modified_carries_the_weak_etag_and_vary_of_the_encoded_200() -> None:
    app = CompressionMiddleware(respond(b"", status=304, headers=[("etag", '"v1"')]))
    result = await call_asgi(app, headers=[("accept-encoding", "br")])
    assert result.status == 304
    assert result.headers["etag"] == 'W/"v1"'
    assert result.headers["vary"] == "Accept-Encoding"
    identity = await call_asgi(app, headers=[("accept-encoding", "identity")])
    assert identity.headers["etag"] == '"v1"'


@pytest.mark.parametrize(
    ("content_type", "compressed"),
    [("image/svg+xml", True), ("application/json", True), ("text/css", True), ("application/octet-stream", True)],
)
async def test_compressible_types(content_type: str, compressed: bool) -> None:
    app = CompressionMiddleware(respond(headers=[("content-type", content_type)]))
    result = await call_asgi(app, headers=[("accept-encoding", "gzip")])
    assert ("content-encoding" in result.headers) is compressed


async def test_allow_list_mode() -> None:
    def build(content_type: str) -> CompressionMiddleware:
        return CompressionMiddleware(
            respond(headers=[("content-type", content_type)]),
            exclude_content_types=("*",),
            include_content_types=("application/json", "text/*"),
        )

    for content_type, expected in [("application/json", "gzip"), ("text/plain", "gzip"), ("application/xml", None)]:
        result = await call_asgi(build(content_type), headers=[("accept-encoding", "gzip")])
        assert result.headers.get("content-encoding") == expected, content_type


async def test_excluded_paths_are_never_compressed() -> None:
    app = CompressionMiddleware(respond(), exclude_paths=(r"/account(/|$)",))
    secret = await call_asgi(app, path="/account/settings", headers=[("accept-encoding", "gzip")])
    assert "content-encoding" not in secret.headers
    public = await call_asgi(app, path="/public", headers=[("accept-encoding", "gzip")])
    assert public.headers["content-encoding"] == "gzip"


async def test_identity_client_still_gets_vary_when_others_would_get_it_compressed() -> None:
    app = CompressionMiddleware(respond())
    result = await call_asgi(app)
    assert result.headers["vary"] == "Accept-Encoding"
    assert result.body == TEXT
    small = await call_asgi(CompressionMiddleware(respond(b"tiny")))
    assert "vary" not in small.headers


async def test_streamed_body_is_flushed_chunk_by_chunk_without_buffering() -> None:
    """The app only produces chunk N+1 after the client has decoded chunk N: buffering would deadlock."""
    chunks = [b"first chunk of the stream\n", b"second chunk\n", b"third and last\n"]
    decoded_so_far = [anyio.Event() for _ in chunks]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for index, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            with anyio.fail_after(5):
                await decoded_so_far[index].wait()
        await send({"type": "http.response.body", "body": b""})

    for coding in ("br", "gzip", "zstd"):
        for event_index in range(len(chunks)):
            decoded_so_far[event_index] = anyio.Event()
        decoder = StreamDecoder(coding)
        received = b""
        messages: list[Message] = []

        async def send(message: Message, decoder: StreamDecoder = decoder, messages: list[Message] = messages) -> None:
            nonlocal received
            messages.append(message)
            if message["type"] == "http.response.body":
                received += decoder.feed(message.get("body", b""))
                for index in range(len(chunks)):
                    if received.startswith(b"".join(chunks[: index + 1])):
                        decoded_so_far[index].set()

        async def receive() -> Message:
            return {"type": "http.request", "body": b""}

        from tests.support import http_scope

        middleware = CompressionMiddleware(app, encodings=(coding,))
        await middleware(http_scope(headers=[("accept-encoding", coding)]), receive, send)
        headers = dict(messages[0]["headers"])
        assert headers[b"content-encoding"] == coding.encode()
        assert b"content-length" not in headers
        assert received == b"".join(chunks)
        assert len(body_messages(messages)) == len(chunks) + 1


async def test_event_streams_pass_through_by_default_and_compress_when_asked() -> None:
    events = [b"data: one\n\n", b"data: two\n\n"]
    sse = respond(events, headers=[("content-type", "text/event-stream")])
    plain = await call_asgi(CompressionMiddleware(sse), headers=[("accept-encoding", "gzip")])
    assert "content-encoding" not in plain.headers
    assert body_messages(plain.messages) == events
    compressed = await call_asgi(CompressionMiddleware(sse, event_stream=True), headers=[("accept-encoding", "gzip")])
    assert compressed.headers["content-encoding"] == "gzip"
    decoder = StreamDecoder("gzip")
    assert [decoder.feed(chunk) for chunk in body_messages(compressed.messages)] == events


async def test_empty_stream_chunks_are_not_sent() -> None:
    app = CompressionMiddleware(respond([TEXT, b"", TEXT, b""]))
    result = await call_asgi(app, headers=[("accept-encoding", "br")])
    assert len(result.bodies) == 3
    assert decode("br", result.body) == TEXT * 2


async def test_head_gets_the_headers_get_would_get() -> None:
    async def page(request: Request) -> Response:
        return HTMLResponse(TEXT.decode(), headers={"etag": '"page-v1"'})

    app = Starlette(routes=[Route("/", page)])
    app.add_middleware(CompressionMiddleware)
    async with asgi_client(app) as client:
        get = await client.get("/", headers={"accept-encoding": "br"})
        head = await client.head("/", headers={"accept-encoding": "br"})
    assert head.content == b""
    for name in ("content-encoding", "vary", "etag", "content-type"):
        assert head.headers[name] == get.headers[name], name
    assert "content-length" not in head.headers  # unknown without compressing a body HEAD does not have


async def test_head_of_a_small_body_is_left_alone() -> None:
    app = CompressionMiddleware(
        respond(b"", headers=[("content-type", "text/html"), ("content-length", "10")], content_length=False)
    )
    result = await call_asgi(app, method="HEAD", headers=[("accept-encoding", "br")])
    assert "content-encoding" not in result.headers
    assert result.headers["content-length"] == "10"


async def test_pathsend_after_a_held_start_passes_through() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.pathsend", "path": "/etc/hostname"})

    result = await call_asgi(CompressionMiddleware(app), headers=[("accept-encoding", "gzip")])
    assert [m["type"] for m in result.messages] == ["http.response.start", "http.response.pathsend"]
    assert "content-encoding" not in result.headers


async def test_shared_response_headers_are_not_mutated() -> None:
    """Apps may send the same header list object every time; the middleware must copy before it edits."""
    shared_headers = [(b"content-type", b"text/html"), (b"etag", b'"x"')]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": shared_headers})
        await send({"type": "http.response.body", "body": TEXT})

    for _ in range(2):
        await call_asgi(CompressionMiddleware(app), headers=[("accept-encoding", "gzip")])
    assert shared_headers == [(b"content-type", b"text/html"), (b"etag", b'"x"')]


async def test_non_http_scopes_pass_straight_through() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent")

    await CompressionMiddleware(app)({"type": "lifespan"}, receive, send)
    assert seen == ["lifespan"]


async def test_interleaved_requests_share_no_state() -> None:
    """Two streamed responses in lock-step, each with its own coding and body, through one middleware."""
    turn = [anyio.Event() for _ in range(6)]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        first = scope["path"] == "/a"
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for step in range(3):
            await turn[step * 2 + (0 if first else 1)].wait()
            await send({"type": "http.response.body", "body": scope["path"].encode() * 300, "more_body": True})
            if step * 2 + (1 if first else 2) < len(turn):
                turn[step * 2 + (1 if first else 2)].set()
        await send({"type": "http.response.body", "body": b"end" + scope["path"].encode()})

    middleware = CompressionMiddleware(app)
    results = {}

    async def fetch(path: str, coding: str) -> None:
        results[path] = await call_asgi(middleware, path=path, headers=[("accept-encoding", coding)])

    async with anyio.create_task_group() as tg:
        tg.start_soon(fetch, "/a", "br")
        tg.start_soon(fetch, "/b", "gzip")
        await anyio.sleep(0)
        turn[0].set()
    assert results["/a"].headers["content-encoding"] == "br"
    assert results["/b"].headers["content-encoding"] == "gzip"
    assert decode("br", results["/a"].body) == b"/a" * 900 + b"end/a"
    assert decode("gzip", results["/b"].body) == b"/b" * 900 + b"end/b"


def _noise(size: int) -> bytes:
    # Text with little redundancy so high-quality brotli has real work to do.
    import random

    rng = random.Random(7)
    words = [bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(5000)]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words) + b" "
    return bytes(out[:size])


@pytest.mark.parametrize("offloaded", [True, False])
async def test_large_compression_does_not_stall_other_requests(offloaded: bool) -> None:
    """While a large body compresses, small requests keep being answered (and, as a control, not when inline)."""
    big_body = _noise(3 * 1024 * 1024)
    big_sending = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = big_body if scope["path"] == "/big" else TEXT
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        if scope["path"] == "/big":
            big_sending.set()
        await send({"type": "http.response.body", "body": body})

    middleware = CompressionMiddleware(
        app, encodings=("br",), brotli_quality=9, thread_threshold=64 * 1024 if offloaded else 1 << 40
    )
    big_done = anyio.Event()
    small_statuses: list[int] = []

    async def fetch_big() -> None:
        result = await call_asgi(middleware, path="/big", headers=[("accept-encoding", "br")])
        assert decode("br", result.body) == big_body
        big_done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(fetch_big)
        await big_sending.wait()
        for _ in range(5):
            small = await call_asgi(middleware, path="/small", headers=[("accept-encoding", "br")])
            small_statuses.append(small.status)
        smalls_finished_first = not big_done.is_set()
    assert small_statuses == [200] * 5
    assert smalls_finished_first is offloaded


def test_settings_drive_the_middleware_install_adds() -> None:
    settings = Settings(compression_encodings=("gzip",), compression_minimum_size=10)
    middleware = CompressionMiddleware.from_settings(respond(), settings, instrumented())
    assert list(middleware.codecs) == ["gzip"]
    assert middleware.minimum_size == 10


def test_the_signature_shows_the_real_defaults() -> None:
    parameters = inspect.signature(CompressionMiddleware).parameters
    assert parameters["minimum_size"].default == 500 == Settings().compression_minimum_size
    assert parameters["encodings"].default == Settings().compression_encodings


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"encodings": ("lzma",)}, "unknown encoding 'lzma'"),
        ({"encodings": ("br", "br")}, "duplicate encoding"),
        ({"brotli_quality": 12}, "between 0 and 11"),
        ({"gzip_level": -1}, "between 0 and 9"),
        ({"minimum_size": -5}, "at least 0"),
        ({"exclude_paths": ("(unclosed",)}, "bad regular expression"),
    ],
)
def test_bad_options_fail_at_construction(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CompressionMiddleware(respond(), **options)  # type: ignore[arg-type]


def test_zstd_without_zstandard_is_a_clear_error() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["zstandard"] = None  # as if the optional package were not installed
        from slipstream import CompressionMiddleware
        async def app(scope, receive, send): pass
        assert "zstd" not in CompressionMiddleware(app).codecs
        try:
            CompressionMiddleware(app, encodings=("zstd",))
        except ValueError as exc:
            print(exc)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env)
    assert (
        "zstd compression (the 'zstandard' package) needs the zstd extra: pip install 'slipstream[zstd]'" in out.stdout
    )


async def test_large_streamed_chunks_are_compressed_in_a_thread_and_still_decode() -> None:
    chunks = [TEXT * 4, TEXT * 3, TEXT]
    app = CompressionMiddleware(respond(chunks), encodings=("zstd",), thread_threshold=len(TEXT) * 2)
    result = await call_asgi(app, headers=[("accept-encoding", "zstd")])
    decoder = StreamDecoder("zstd")
    assert [decoder.feed(chunk) for chunk in body_messages(result.messages)] == chunks
