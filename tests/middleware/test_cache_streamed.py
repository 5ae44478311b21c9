"""Bodies sent in several messages (StreamingResponse, FileResponse, a proxying app) are stored when complete.

Each chunk goes out at once; a copy is kept (the identity chunks too, when compression encodes the stream) up to
cache_max_entry_bytes, and the entry is stored once the last chunk has gone out. Nobody waits on a stream: the
requests waiting for the URL go to the app as soon as its body streams (tests/middleware/test_cache_coalescing.py).
"""

from __future__ import annotations

import anyio
import pytest
from starlette.types import Receive, Scope, Send

from slipstream import Settings
from tests.middleware.apps import TEXT, decode
from tests.middleware.test_cache import Origin, stack
from tests.support import call_asgi

pytestmark = pytest.mark.anyio
CHUNKS = [TEXT[:3000], TEXT[3000:6000], TEXT[6000:], b""]  # StreamingResponse ends with an empty message


@pytest.mark.parametrize("first_coding", ["identity", "gzip", "br"])
async def test_a_stream_with_freshness_is_stored_whole(first_coding: str) -> None:
    origin = Origin(body=CHUNKS)
    app = stack(origin)
    first = await call_asgi(app, headers=[("accept-encoding", first_coding)])
    assert first.headers["x-cache"] == "MISS" and len([m for m in first.bodies if m.get("body")]) >= 2
    assert decode(None if first_coding == "identity" else first_coding, first.body) == TEXT
    for coding in ("identity", "gzip", "br", "zstd"):
        hit = await call_asgi(app, headers=[("accept-encoding", coding)])
        assert hit.headers["x-cache"] == "HIT", coding
        expected = None if coding == "identity" else coding
        assert hit.headers.get("content-encoding") == expected
        assert decode(expected, hit.body) == TEXT
        assert int(hit.headers["content-length"]) == len(hit.body)
    assert origin.calls == 1


@pytest.mark.parametrize(
    ("origin", "settings", "why"),
    [
        (Origin([], body=CHUNKS), Settings(), "no freshness"),
        (Origin([("cache-control", "no-store, max-age=60")], body=CHUNKS), Settings(), "no-store"),
        (Origin(body=CHUNKS), Settings(cache_max_entry_bytes=5000), "past the size limit"),
        # Ended early: shorter than its Content-Length announced (RFC 9111 §3.3), not stored as if complete.
        (Origin([("cache-control", "max-age=60"), ("content-length", "99999")], body=CHUNKS), Settings(), "truncated"),
        # Compressed well under the limit, but the identity body the entry keeps is not.
        (Origin(body=[b"a" * 4000, b"a" * 4000, b""]), Settings(cache_max_entry_bytes=6000), "identity past the limit"),
    ],
)
async def test_a_stream_that_may_not_be_stored_is_not(origin: Origin, settings: Settings, why: str) -> None:
    app = stack(origin, settings)
    for _ in range(2):
        result = await call_asgi(app, headers=[("accept-encoding", "gzip")])
        assert result.headers["x-cache"] == "MISS", why
        assert decode("gzip", result.body) == b"".join(origin.body if isinstance(origin.body, list) else [])
    assert origin.calls == 2


async def test_a_head_miss_on_a_streamed_page_fills_the_entry() -> None:
    origin = Origin(body=CHUNKS)
    app = stack(origin)
    head = await call_asgi(app, "HEAD")
    assert head.body == b"" and head.headers["x-cache"] == "MISS"
    get = await call_asgi(app)
    assert (get.headers["x-cache"], get.body) == ("HIT", TEXT)


async def test_concurrent_streams_of_one_url_keep_one_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0

    async def slow_stream(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal calls
        calls += 1
        await send({"type": "http.response.start", "status": 200, "headers": [(b"cache-control", b"max-age=60")]})
        for chunk in CHUNKS:
            await send({"type": "http.response.body", "body": chunk, "more_body": bool(chunk)})
            await anyio.sleep(0.02)  # the two downloads overlap

    class Claims(set[str]):
        """The cache's URLs being kept from a stream, recording each claim and whether the URL was free."""

        def __init__(self) -> None:
            super().__init__()
            self.asked: list[bool] = []

        def __contains__(self, primary: object) -> bool:
            taken = super().__contains__(primary)
            self.asked.append(not taken)
            return taken

    app = stack(slow_stream)
    claims = Claims()
    monkeypatch.setattr(app.cache, "streaming", claims)
    results = []

    async def get() -> None:
        results.append(await call_asgi(app))

    async with anyio.create_task_group() as group:
        group.start_soon(get)
        group.start_soon(get)
    # The second was let go as soon as the first streamed, and overlapped it: only one kept a copy.
    assert [r.body for r in results] == [TEXT, TEXT] and calls == 2
    assert claims.asked == [True, False]
    assert not claims  # every claim released
    assert (await call_asgi(app)).headers["x-cache"] == "HIT"
    assert calls == 2


async def test_a_stream_ended_short_of_its_content_length_is_not_stored_uncompressed_either() -> None:
    origin = Origin([("cache-control", "max-age=60"), ("content-length", "99999")], body=CHUNKS)
    app = stack(origin)
    for _ in range(2):
        result = await call_asgi(app)  # identity: the response as the app sent it
        assert result.headers["x-cache"] == "MISS" and result.body == TEXT
    assert origin.calls == 2
