"""The cross-process fill lock on a real Redis: released whatever the breaker says, and early for unstorable answers."""

from __future__ import annotations

import asyncio
import time

import anyio
import pytest
from redis.asyncio import Redis
from starlette.types import Receive, Scope, Send

from slipstream import ResponseCache
from slipstream.cache.redis_store import RedisStore
from tests.middleware.test_cache import Origin, stack
from tests.redis_server import RedisServer
from tests.support import call_asgi

pytestmark = pytest.mark.anyio
PAGE = "http://testserver/"


async def timed_miss(cache: ResponseCache) -> float:
    """Seconds one request for PAGE takes through `cache` (another process's), which must call its app."""
    origin = Origin()
    began = time.monotonic()
    with anyio.fail_after(10):
        result = await call_asgi(stack(origin, cache=cache))
    assert (result.status, result.headers["x-cache"], origin.calls) == (200, "MISS", 1)
    return time.monotonic() - began


async def test_the_lock_is_released_though_the_breaker_opened_meanwhile(
    two_caches: tuple[ResponseCache, ResponseCache], raw: Redis
) -> None:
    cache_a, cache_b = two_caches
    assert cache_a.redis is not None
    breaker = cache_a.redis.breaker

    async def trips_the_breaker(scope: Scope, receive: Receive, send: Send) -> None:
        for _ in range(3):  # as three failed Redis calls while the app runs would
            breaker.record_failure()
        await Origin()(scope, receive, send)

    await call_asgi(stack(trips_the_breaker, cache=cache_a))
    assert breaker.state == "open"
    assert not await raw.exists(cache_a.redis.lock_key(PAGE))
    waited = await timed_miss(cache_b)
    assert waited < 0.5, f"the next request for the URL waited {waited:.2f} s on a lock nobody holds"


async def test_a_lock_released_while_redis_is_paused_is_gone_once_it_resumes(
    redis_server: RedisServer, two_caches: tuple[ResponseCache, ResponseCache]
) -> None:
    cache_a, cache_b = two_caches
    store = cache_a.redis
    assert store is not None

    async def pauses_redis(scope: Scope, receive: Receive, send: Send) -> None:
        redis_server.pause()
        for _ in range(3):  # each times out: the breaker opens
            await store.ping()
        await Origin()(scope, receive, send)

    try:
        result = await call_asgi(stack(pauses_redis, cache=cache_a))
        assert result.status == 200 and store.breaker.state == "open"
    finally:
        redis_server.resume()
    waited = await timed_miss(cache_b)
    assert waited < 0.5, f"the next request for the URL waited {waited:.2f} s on a lock nobody holds"


async def test_a_stream_in_one_process_does_not_hold_up_its_url_in_another(
    two_caches: tuple[ResponseCache, ResponseCache],
) -> None:
    cache_a, cache_b = two_caches
    streaming, finish = anyio.Event(), anyio.Event()

    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/plain"), (b"cache-control", b"max-age=60")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"first ", "more_body": True})
        streaming.set()
        await finish.wait()
        await send({"type": "http.response.body", "body": b"last"})

    async with anyio.create_task_group() as tg:
        tg.start_soon(call_asgi, stack(stream, cache=cache_a))
        await streaming.wait()
        waited = await timed_miss(cache_b)
        finish.set()
    assert waited < 0.5, f"another process waited {waited:.2f} s for a stream to end"


async def test_a_failed_release_is_retried_until_redis_answers_or_the_lock_would_have_expired(
    redis_server: RedisServer, raw: Redis
) -> None:
    loop = asyncio.get_running_loop()
    # The production timeout: a call to the paused Redis gives up after 50 ms.
    store = RedisStore.from_url(redis_server.url, timeout=0.05)
    token = await store.acquire_lock(PAGE, 5)
    assert token is not None
    redis_server.pause()
    try:
        assert await store.release_lock(PAGE, token) is False
        began = loop.time()
        await store.release_lock_later(PAGE, token, loop.time() + 0.4)  # Redis stays paused: it gives up in time
        assert loop.time() - began < 0.6
        assert store.breaker.failures_total >= 3  # the first try and at least two retries
        retrying = asyncio.create_task(store.release_lock_later(PAGE, token, loop.time() + 5))
        await asyncio.sleep(0.2)
    finally:
        redis_server.resume()
    with anyio.fail_after(3):
        await retrying
    assert not await raw.exists(store.lock_key(PAGE))
    await store.close()
