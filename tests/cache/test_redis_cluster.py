"""The Redis tier on a real three-node Redis Cluster: the store alone, then two app processes sharing the cluster."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest
import redis
from redis.asyncio.cluster import RedisCluster

from slipstream.cache.redis_store import RedisStore
from tests.cache.redis_helpers import eventually, shared_app_processes, simultaneous_reports
from tests.redis_cluster import RedisClusterNodes

pytestmark = pytest.mark.anyio
URLS = [f"http://example.com/page/{n}" for n in range(40)]
LANGUAGE = ("accept-language",)


@pytest.fixture
async def store(redis_cluster: RedisClusterNodes) -> AsyncIterator[RedisStore]:
    store = RedisStore.from_url(redis_cluster.url.replace("redis://", "redis+cluster://"), prefix="test:", timeout=1)
    assert store.cluster
    yield store
    await store.close()


async def test_the_urls_spread_over_every_node(redis_cluster: RedisClusterNodes) -> None:
    client = RedisCluster.from_url(redis_cluster.url)
    await client.initialize()  # learns the slot map from the node it was given
    store = RedisStore(client, prefix="test:")
    try:
        ports = set()
        for url in URLS:
            node = client.get_node_from_key(store.entry_key(url))
            assert node is not None
            # The lock of a URL sits in its entry's slot: every key of one URL is on one node.
            assert client.keyslot(store.lock_key(url)) == client.keyslot(store.entry_key(url))
            ports.add(node.port)
        assert ports == {node.port for node in redis_cluster.nodes}
    finally:
        await store.close()


async def test_entries_locks_and_purges_work_across_nodes(store: RedisStore) -> None:
    for index, url in enumerate(URLS):
        fields = {"accept-language": "en"}
        await store.put(
            url, LANGUAGE, store.secondary(LANGUAGE, fields), f"body {index}".encode(), 60, (f"t{index % 2}",)
        )
    assert await store.get(URLS[3], {"accept-language": "en"}, LANGUAGE) == b"body 3"
    assert await store.get(URLS[3], {"accept-language": "de"}, LANGUAGE) is None
    token = await store.acquire_lock(URLS[0], 5)
    assert token is not None and await store.acquire_lock(URLS[0], 5) is None
    await store.release_lock(URLS[0], token)
    assert await store.acquire_lock(URLS[0], 5) is not None
    assert await store.purge_tags(["t1"]) == len(URLS) // 2
    assert await store.get(URLS[3], {"accept-language": "en"}, LANGUAGE) is None
    assert await store.get(URLS[2], {"accept-language": "en"}, LANGUAGE) == b"body 2"
    # /page/1 and /page/11 ... /page/19 were odd or purged: 10, 12, 14, 16 and 18 are left to go.
    assert await store.delete_prefix("http://example.com/page/1") == 5
    assert await store.clear() == len(URLS) // 2 - 5
    assert await store.get(URLS[2], {"accept-language": "en"}, LANGUAGE) is None
    assert store.breaker.allow() and (store.error_counter is None)


async def test_purge_broadcasts_reach_other_clients(store: RedisStore) -> None:
    heard: list[str] = []
    listener = store.listener(heard.append)
    listener.start()
    try:

        async def delivered() -> bool:
            await store.publish("url other http://example.com/x")
            return bool(heard)

        await eventually(delivered)
    finally:
        await listener.stop()
    assert heard[0] == "url other http://example.com/x"


async def test_two_processes_share_the_cluster_and_a_node_restart_fails_no_request(
    redis_cluster: RedisClusterNodes,
) -> None:
    counter = redis.RedisCluster.from_url(redis_cluster.url)
    with shared_app_processes(redis_cluster.url.replace("redis://", "redis+cluster://")) as instances:
        async with httpx.AsyncClient(timeout=10, headers={"host": "app.example"}) as client:
            # Coalesced across the processes: one app call for 40 concurrent requests, the rest L2 or L1 hits.
            statuses = await simultaneous_reports(client, instances)
            assert int(counter.get("test:app-calls") or 0) == 1
            assert statuses.count("MISS") == 1
            # A tag purge in one process reaches the other's memory tier through the cluster's pub/sub.
            assert (await client.post(instances[0] + "/purge/report")).status_code == 200

            async def purged_everywhere() -> bool:
                return (await client.get(instances[1] + "/report")).headers["x-cache"] == "MISS"

            await eventually(purged_everywhere)
            # A node goes down and comes back while requests for new URLs (L2 lookups, fills, locks on every node)
            # keep coming: none fails.
            failures: list[int] = []
            asked = 0
            stop = time.monotonic() + 5

            async def keep_asking(url: str) -> None:
                nonlocal asked
                while time.monotonic() < stop:
                    asked += 1
                    response = await client.get(f"{url}/report?n={asked}")
                    if response.status_code != 200:
                        failures.append(response.status_code)

            async with anyio.create_task_group() as tg:
                for url in instances * 4:
                    tg.start_soon(keep_asking, url)
                await anyio.sleep(1.0)
                node = redis_cluster.nodes[1]
                await anyio.to_thread.run_sync(node.stop)
                await anyio.sleep(1.5)
                await anyio.to_thread.run_sync(node.start)
            assert failures == [] and asked > 20
            await anyio.to_thread.run_sync(redis_cluster.wait_until_ok)

            # The cluster serves again: what one process stores, the other finds in Redis.
            async def shared_again() -> bool:
                path = f"/report?after={time.monotonic()}"
                first = await client.get(instances[0] + path)
                second = await client.get(instances[1] + path)
                return (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")

            await eventually(shared_again, timeout=20)
    counter.close()
