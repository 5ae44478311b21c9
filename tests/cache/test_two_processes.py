"""Two app processes (real uvicorn) sharing one real Redis: one app call per cluster, purges reach both."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import httpx
import pytest
import redis

from tests.cache.redis_helpers import shared_app_processes, simultaneous_reports
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio


@pytest.fixture
def two_instances(redis_server: RedisServer) -> Iterator[list[str]]:
    with shared_app_processes(redis_server.url) as urls:
        yield urls


async def test_one_app_call_per_cluster_and_purges_reach_every_process(
    redis_server: RedisServer, two_instances: list[str]
) -> None:
    # Behind a load balancer every instance sees the same Host: the cache key is the public URL.
    async with httpx.AsyncClient(timeout=10, headers={"host": "app.example"}) as client:
        statuses = await simultaneous_reports(client, two_instances)
        counter = redis.Redis.from_url(redis_server.url)
        assert int(counter.get("test:app-calls") or 0) == 1
        assert statuses.count("MISS") == 1
        for url in two_instances:
            assert (await client.get(url + "/report")).headers["x-cache"] == "HIT"

        purged = await client.post(two_instances[0] + "/purge/report")
        assert purged.status_code == 200
        await anyio.sleep(0.3)  # the broadcast reaches the other process's memory tier
        after = await client.get(two_instances[1] + "/report")
        assert after.headers["x-cache"] == "MISS"
        assert int(counter.get("test:app-calls") or 0) == 2
        counter.close()
