"""The Redis tier on a real three-node Redis Cluster: every key of a URL in one slot, scripts and purges across nodes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio.cluster import RedisCluster

from slipstream.cache.redis_store import RedisStore
from tests.cache.redis_helpers import eventually
from tests.redis_cluster import RedisClusterNodes

pytestmark = pytest.mark.anyio
URLS = [f"http://example.com/page/{n}" for n in range(40)]


@pytest.fixture
async def store(redis_cluster: RedisClusterNodes) -> AsyncIterator[RedisStore]:
    client = RedisCluster.from_url(redis_cluster.url)
    await client.initialize()  # learns the slot map from the node it was given
    store = RedisStore(client, prefix="test:")
    yield store
    await store.close()


async def test_the_urls_spread_over_every_node(redis_cluster: RedisClusterNodes, store: RedisStore) -> None:
    client = store.client
    assert isinstance(client, RedisCluster)
    nodes = {client.get_node_from_key(store.entry_key(url)).port for url in URLS}  # type: ignore[union-attr]
    assert nodes == {node.port for node in redis_cluster.nodes}


async def test_entries_locks_and_purges_work_across_nodes(store: RedisStore) -> None:
    for index, url in enumerate(URLS):
        await store.put(url, ("accept-language",), "en", b"body %d" % index, 60, ("tag-%d" % (index % 2),))
    assert await store.get(URLS[3], {"accept-language": "en"}) == b"body 3"
    assert await store.get(URLS[3], {"accept-language": "de"}) is None
    token = await store.acquire_lock(URLS[0], 5)
    assert token is not None and await store.acquire_lock(URLS[0], 5) is None
    await store.release_lock(URLS[0], token)
    assert await store.acquire_lock(URLS[0], 5) is not None
    assert await store.purge_tags(["tag-1"]) == len(URLS) // 2
    assert await store.get(URLS[3], {"accept-language": "en"}) is None
    assert await store.get(URLS[2], {"accept-language": "en"}) == b"body 2"
    assert await store.delete_prefix("http://example.com/page/1") == 6  # 10, 12, 14, 16, 18 and 1's even siblings
    assert await store.clear() > 0
    assert await store.get(URLS[2], {"accept-language": "en"}) is None


async def test_purge_broadcasts_reach_other_clients(redis_cluster: RedisClusterNodes, store: RedisStore) -> None:
    heard: list[str] = []
    listener = store.listener(heard.append)
    listener.start()
    try:
        await asyncio.sleep(0.2)

        async def delivered() -> bool:
            await store.publish("url other http://example.com/x")
            return bool(heard)

        await eventually(delivered)
    finally:
        await listener.stop()
    assert heard[0] == "url other http://example.com/x"
