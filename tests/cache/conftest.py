"""Fixtures for the Redis tests: a store and a raw client on the test's redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from slipstream import ResponseCache
from slipstream.cache.breaker import CircuitBreaker
from slipstream.cache.memory import MemoryStore
from slipstream.cache.redis_store import RedisStore
from tests.redis_server import RedisServer


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    # A patient timeout: these tests are about what the store does, and a loaded CI machine can take longer than
    # the production default (50 ms) to connect; the fault tests build stores with short timeouts of their own.
    store = RedisStore.from_url(redis_server.url, timeout=1.0)
    yield store
    await store.close()


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    yield client
    await (getattr(client, "aclose", None) or client.close)()  # redis 5.0.0 has only close()


def make_cache(url: str, reset_timeout: float = 0.2) -> ResponseCache:
    store = RedisStore.from_url(url, prefix="test:", breaker=CircuitBreaker(reset_timeout=reset_timeout))
    return ResponseCache(MemoryStore(8 * 1024 * 1024), store, coalesce_timeout=5.0)


@pytest.fixture
async def two_caches(redis_server: RedisServer) -> AsyncIterator[tuple[ResponseCache, ResponseCache]]:
    first, second = make_cache(redis_server.url), make_cache(redis_server.url)
    yield first, second
    await first.close()
    await second.close()
