"""Coalescing holds waiters only for responses that will be stored: streams, SSE and uncacheable URLs never queue."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from slipstream import CacheMiddleware
from tests.middleware.apps import TEXT
from tests.middleware.test_cache import Origin, stack
from tests.support import call_asgi, instrumented, run_uvicorn

pytestmark = pytest.mark.anyio

CHUNK = os.urandom(64 * 1024)  # incompressible, so nothing shrinks it on the way to a client that does not read


def streaming_app(started: threading.Event) -> Starlette:
    """/big: a long cacheable-looking stream; /events: an SSE stream of 0.1 s ticks. Both bounded."""

    async def big(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            started.set()
            for _ in range(2000):  # 128 MiB at most: the client stops reading long before
                yield CHUNK

        headers = {"cache-control": "max-age=60"}
        return StreamingResponse(chunks(), media_type="application/octet-stream", headers=headers)

    async def events(request: Request) -> Response:
        async def ticks() -> AsyncIterator[str]:
            started.set()
            for index in range(100):
                yield f"data: {index}\n\n"
                await anyio.sleep(0.1)

        return StreamingResponse(ticks(), media_type="text/event-stream")

    return Starlette(routes=[Route("/big", big), Route("/events", events)])


async def wait_for(event: threading.Event) -> None:
    with anyio.fail_after(5):
        while not event.is_set():
            await anyio.sleep(0.01)


async def test_a_stream_nobody_reads_does_not_hold_up_the_next_request_for_its_url() -> None:
    started = threading.Event()
    with run_uvicorn(stack(streaming_app(started))) as url:
        host, port = url.removeprefix("http://").split(":")
        reader = socket.create_connection((host, int(port)))  # asks for /big, then never reads
        try:
            reader.sendall(b"GET /big HTTP/1.1\r\nHost: testserver\r\n\r\n")
            await wait_for(started)
            await anyio.sleep(0.2)  # the server's and the kernel's buffers fill; the app blocks in send
            async with httpx.AsyncClient(timeout=10) as client:
                began = time.monotonic()
                async with client.stream("GET", url + "/big", headers={"host": "testserver"}) as response:
                    first = await anext(response.aiter_raw())
                    waited = time.monotonic() - began
            assert response.status_code == 200 and first
            assert response.headers["x-cache"] == "MISS"
            assert waited < 0.5, f"the second request waited {waited:.2f} s behind a stream nobody reads"
        finally:
            reader.close()


async def test_a_second_sse_client_gets_its_first_event_at_once() -> None:
    started = threading.Event()
    with run_uvicorn(stack(streaming_app(started))) as url:
        async with httpx.AsyncClient(timeout=10) as client:
            async with client.stream("GET", url + "/events") as first:
                first_events = first.aiter_text()  # kept: dropping the iterator would close the stream
                assert (await anext(first_events)).startswith("data: 0")
                began = time.monotonic()
                async with client.stream("GET", url + "/events") as second:
                    event = await anext(second.aiter_text())
                    waited = time.monotonic() - began
                assert (await anext(first_events)).startswith("data: 1")  # the first stream is still going
    assert event.startswith("data: 0")
    assert waited < 0.5, f"the second SSE client waited {waited:.2f} s for its first event"


async def test_once_a_url_answers_uncacheably_concurrent_requests_go_to_the_app_together() -> None:
    clients = 20
    inside = most = calls = 0
    everyone_in = anyio.Event()
    cacheable = False

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal inside, most, calls
        calls += 1
        inside += 1
        most = max(most, inside)
        if inside == clients:
            everyone_in.set()
        if calls > 1 and not cacheable:  # the burst: done when all of it is in the app at once (or after 1 s)
            with anyio.move_on_after(1):
                await everyone_in.wait()
        await anyio.sleep(0.05)  # the app's own work
        inside -= 1
        headers = [(b"cache-control", b"max-age=60")] if cacheable else []
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": TEXT})

    app = stack(slow)
    assert (await call_asgi(app)).headers["x-cache"] == "MISS"  # no freshness: the URL answers uncacheably

    began = time.monotonic()
    async with anyio.create_task_group() as tg:
        for _ in range(clients):
            tg.start_soon(call_asgi, app)
    elapsed = time.monotonic() - began
    assert most == clients, f"only {most} of {clients} requests were in the app at once: they queued"
    assert elapsed < 0.5, f"{clients} concurrent 50 ms requests took {elapsed:.2f} s"

    # A storable answer ends the hit-for-miss at once: the next cold miss is coalesced again.
    cacheable = True
    assert (await call_asgi(app)).headers["x-cache"] == "MISS"
    await app.cache.purge_url("http://testserver/")
    calls = 0
    async with anyio.create_task_group() as tg:
        for _ in range(clients):
            tg.start_soon(call_asgi, app)
    assert calls == 1


@pytest.mark.parametrize(
    "headers",
    [
        [("cache-control", "no-store")],
        [("cache-control", "max-age=60"), ("content-length", str(len(TEXT)))],  # over max_entry_bytes below
        [],  # no freshness: the common dynamic response
    ],
)
async def test_waiters_are_released_as_soon_as_the_headers_say_it_will_not_be_stored(
    headers: list[tuple[str, str]],
) -> None:
    origin = Origin(headers)
    release = anyio.Event()
    started = anyio.Event()

    async def held(scope: Scope, receive: Receive, send: Send) -> None:
        async def slow_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                started.set()
                await release.wait()  # the first response's body is slow to come
            await send(message)

        await origin(scope, receive, slow_body if origin.calls == 0 else send)

    # The cache alone: compression and ETags hold the start message back until the body comes.
    app = CacheMiddleware(held, max_entry_bytes=len(TEXT) - 1, instrumentation=instrumented())
    async with anyio.create_task_group() as tg:
        tg.start_soon(call_asgi, app)
        await started.wait()
        with anyio.fail_after(1):
            second = await call_asgi(app)
        release.set()
    assert second.body == TEXT
    assert origin.calls == 2
