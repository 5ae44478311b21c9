"""InvalidationListener against a real redis-server that is stopped and restarted."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from slipstream.cache.invalidation import InvalidationListener
from slipstream.cache.redis_store import RedisStore
from tests.cache.redis_helpers import eventually
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio


async def subscribers(raw: Redis, channel: str) -> int:
    counts: list[tuple[Any, int]] = await raw.pubsub_numsub(channel)
    return counts[0][1]


async def test_publish_reaches_listeners_on_other_clients(redis_server: RedisServer, raw: Redis) -> None:
    publisher = RedisStore.from_url(redis_server.url)
    subscriber = RedisStore.from_url(redis_server.url)
    got_async: asyncio.Queue[str] = asyncio.Queue()
    got_sync: list[str] = []

    async def on_message(message: str) -> None:
        if message == "boom":
            raise RuntimeError("a broken callback must not end the subscription")
        await got_async.put(message)

    # Both share the store's client, whose 50 ms socket timeout must not break idle subscriptions.
    listeners = [
        subscriber.listener(on_message),
        InvalidationListener(subscriber.client, got_sync.append, poll_timeout=0.05),
    ]
    for listener in listeners:
        listener.start()
    try:
        await eventually(lambda: _has_subscribers(raw, publisher, 2))
        await asyncio.sleep(0.3)  # several idle polls
        await publisher.publish("boom")
        await publisher.publish("url origin-1 http://example.test/page")
        message = await asyncio.wait_for(got_async.get(), 5.0)
        assert message == "url origin-1 http://example.test/page"
        await eventually(lambda: _true(len(got_sync) == 2))
        assert got_sync == ["boom", "url origin-1 http://example.test/page"]
        assert [listener.reconnects for listener in listeners] == [0, 0]
    finally:
        for listener in listeners:
            await listener.stop()
        await publisher.close()
        await subscriber.close()
    assert await subscribers(raw, publisher.prefix + "invalidate") == 0


async def _has_subscribers(raw: Redis, store: RedisStore, count: int) -> bool:
    return await subscribers(raw, store.prefix + "invalidate") >= count


async def _true(value: bool) -> bool:
    return value


async def test_listener_survives_a_restart(redis_server: RedisServer, raw: Redis) -> None:
    publisher = RedisStore.from_url(redis_server.url)
    subscriber = RedisStore.from_url(redis_server.url)
    got: asyncio.Queue[str] = asyncio.Queue()
    listener = subscriber.listener(got.put_nowait)
    listener.start()
    try:
        await eventually(lambda: _has_subscribers(raw, publisher, 1))
        redis_server.stop()
        await eventually(lambda: _true(not listener.subscribed))
        await asyncio.sleep(0.3)  # a few failed resubscriptions while it is down
        assert listener.reconnects == 0
        redis_server.start()
        await eventually(lambda: _has_subscribers(raw, publisher, 1))
        await eventually(lambda: publisher.ping())  # the breaker may still hold off the publisher
        await publisher.publish("all origin-2")
        assert await asyncio.wait_for(got.get(), 5.0) == "all origin-2"
        assert listener.reconnects == 1
    finally:
        await listener.stop()
        await publisher.close()
        await subscriber.close()
