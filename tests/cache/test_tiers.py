"""The memory tier in front of a real Redis: promotion, one round trip per L2 hit, purges across instances, faults."""

from __future__ import annotations

import time

import anyio
import pytest
import redis.asyncio
from prometheus_client import CollectorRegistry

from slipstream import ResponseCache, Settings
from slipstream.cache.entry import CacheEntry
from tests.cache.conftest import make_cache
from tests.middleware.apps import TEXT, decode
from tests.middleware.test_cache import Origin, stack
from tests.middleware.test_cache_vary import VARY_CASES, VaryCase
from tests.redis_server import RedisServer
from tests.support import call_asgi

pytestmark = pytest.mark.anyio


async def command_calls(url: str) -> dict[str, int]:
    client = redis.asyncio.Redis.from_url(url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return {k: int(v["calls"]) for k, v in stats.items()}


async def test_l2_hit_is_promoted_to_l1(two_caches: tuple[ResponseCache, ResponseCache]) -> None:
    cache_a, cache_b = two_caches
    origin_a, origin_b = Origin(), Origin()
    app_a, app_b = stack(origin_a, cache=cache_a), stack(origin_b, cache=cache_b)
    await call_asgi(app_a, headers=[("accept-encoding", "br")])
    from_redis = await call_asgi(app_b, headers=[("accept-encoding", "br")])
    again = await call_asgi(app_b, headers=[("accept-encoding", "gzip")])
    assert (from_redis.headers["x-cache"], again.headers["x-cache"]) == ("HIT", "HIT")
    assert decode("br", from_redis.body) == decode("gzip", again.body) == TEXT
    assert (origin_a.calls, origin_b.calls) == (1, 0)
    assert cache_b.memory.vary_of("http://testserver/") == ()


async def test_an_l2_hit_costs_one_round_trip(
    redis_server: RedisServer, two_caches: tuple[ResponseCache, ResponseCache]
) -> None:
    cache_a, cache_b = two_caches
    app_a, app_b = stack(Origin(), cache=cache_a), stack(Origin(), cache=cache_b)
    await call_asgi(app_a, path="/warm", headers=[("accept-encoding", "br")])
    await call_asgi(app_b, path="/warm", headers=[("accept-encoding", "br")])  # B subscribes and warms up
    await call_asgi(app_a, path="/page", headers=[("accept-encoding", "br")])
    await anyio.sleep(0.1)
    before = await command_calls(redis_server.url)
    result = await call_asgi(app_b, path="/page", headers=[("accept-encoding", "br")])
    after = await command_calls(redis_server.url)
    assert result.headers["x-cache"] == "HIT"
    issued = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    # One EVALSHA from the cache (its script reads "@vary", then the variant: the two HGETs inside it);
    # HELLO and INFO are the statistics client's own.
    assert issued == {"cmdstat_evalsha": 1, "cmdstat_hget": 2, "cmdstat_hello": 1, "cmdstat_info": 1}


@pytest.mark.parametrize("row", VARY_CASES)
async def test_vary_selects_by_meaning_in_redis(two_caches: tuple[ResponseCache, ResponseCache], row: VaryCase) -> None:
    # B's memory tier is empty: what it reuses, Redis picked (the key computed in Python, the variant by Lua).
    cache_a, cache_b = two_caches
    origin_a, origin_b = Origin(row.response_headers()), Origin(row.response_headers())
    await call_asgi(stack(origin_a, cache=cache_a), headers=row.first)
    result = await call_asgi(stack(origin_b, cache=cache_b), headers=row.second)
    assert result.headers["x-cache"] == row.outcome
    assert origin_b.calls == (0 if row.outcome == "HIT" else 1)


async def test_a_variant_found_by_language_costs_one_round_trip(
    redis_server: RedisServer, two_caches: tuple[ResponseCache, ResponseCache]
) -> None:
    cache_a, cache_b = two_caches
    german, english = (
        [("cache-control", "max-age=60"), ("vary", "Accept-Language"), ("content-language", c)] for c in ("de", "en")
    )
    app_a, app_b = stack(Origin(german), cache=cache_a), stack(Origin(english), cache=cache_b)
    await call_asgi(app_a, headers=[("accept-language", "en, de")])
    await call_asgi(app_b, headers=[("accept-language", "en")])  # B learns the Vary, holds English only
    await anyio.sleep(0.1)
    before = await command_calls(redis_server.url)
    result = await call_asgi(app_b, headers=[("accept-language", "de, fr;q=0.5")])
    after = await command_calls(redis_server.url)
    assert result.headers["x-cache"] == "HIT" and result.headers["content-language"] == "de"
    issued = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    # "@vary", the exact variant (absent), "@lang:de", the variant it names: one EVALSHA.
    assert issued == {"cmdstat_evalsha": 1, "cmdstat_hget": 4, "cmdstat_hello": 1, "cmdstat_info": 1}


async def test_a_variant_no_longer_in_the_language_is_not_reused(
    two_caches: tuple[ResponseCache, ResponseCache],
) -> None:
    cache_a, cache_b = two_caches
    page, vary, asked = "http://testserver/", ("accept-language",), [(b"accept-language", b"en, de")]

    def in_language(language: bytes) -> CacheEntry:
        headers = [(b"content-language", language), (b"cache-control", b"max-age=60")]
        return CacheEntry(200, headers, language, None, None, time.time(), 0.0, 60.0, vary=vary)

    await cache_a.store(page, in_language(b"de"), asked)
    found = await cache_b.lookup(page, [(b"accept-language", b"de")])
    assert found is not None and found[0].body == b"de" and found[1] == "l2"
    cache_b.memory.clear()
    await cache_a.store(page, in_language(b"fr"), asked)  # the same key, now French
    assert cache_a.redis is not None
    assert await cache_a.redis.client.hget(cache_a.redis.entry_key(page), "@lang:de") is not None  # names it still
    assert await cache_b.lookup(page, [(b"accept-language", b"de")]) is None
    found = await cache_b.lookup(page, [(b"accept-language", b"fr")])
    assert found is not None and found[0].body == b"fr"


async def test_purges_reach_other_instances(two_caches: tuple[ResponseCache, ResponseCache]) -> None:
    cache_a, cache_b = two_caches
    origin = Origin([("cache-control", "max-age=60"), ("surrogate-key", "catalogue")])
    app_a, app_b = stack(origin, cache=cache_a), stack(origin, cache=cache_b)
    for path in ("/x", "/y"):
        await call_asgi(app_a, path=path)
        assert (await call_asgi(app_b, path=path)).headers["x-cache"] == "HIT"
    await cache_a.purge_tags("catalogue")
    with anyio.fail_after(5):
        while cache_b.memory.vary_of("http://testserver/x") is not None:
            await anyio.sleep(0.01)
    assert (await call_asgi(app_b, path="/y")).headers["x-cache"] == "MISS"
    await cache_b.purge_all()
    with anyio.fail_after(5):
        while len(cache_a.memory):
            await anyio.sleep(0.01)


async def test_a_stampede_across_instances_calls_the_app_once(
    two_caches: tuple[ResponseCache, ResponseCache],
) -> None:
    origin = Origin()
    origin.gate = anyio.Event()
    apps = [stack(origin, cache=cache) for cache in two_caches]
    statuses: list[str] = []

    async def fetch(index: int) -> None:
        result = await call_asgi(apps[index % 2], headers=[("accept-encoding", "gzip")])
        assert decode("gzip", result.body) == TEXT
        statuses.append(result.headers["x-cache"])

    async with anyio.create_task_group() as tg:
        for index in range(100):
            tg.start_soon(fetch, index)
        await anyio.sleep(0.2)
        origin.gate.set()
    assert origin.calls == 1
    assert statuses.count("MISS") == 1


async def test_an_unreadable_redis_value_is_a_miss(
    redis_server: RedisServer, two_caches: tuple[ResponseCache, ResponseCache]
) -> None:
    cache_a, cache_b = two_caches
    await call_asgi(stack(Origin(), cache=cache_a))
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        for key in await client.keys("test:e:*"):
            await client.hset(key, "@", b"\x80\x04pickle-would-run-code-here")
    finally:
        await client.aclose()
    origin_b = Origin()
    assert (await call_asgi(stack(origin_b, cache=cache_b))).headers["x-cache"] == "MISS"
    assert origin_b.calls == 1


async def test_redis_dying_mid_burst_fails_no_request_and_comes_back(redis_server: RedisServer) -> None:
    cache = make_cache(redis_server.url)
    origin = Origin()
    registry = CollectorRegistry()
    app = stack(origin, cache=cache, registry=registry)
    slowest = 0.0
    statuses: set[int] = set()

    async def burst(phase: str, requests: int) -> None:
        nonlocal slowest
        for index in range(requests):
            started = time.monotonic()
            path = f"/burst/{phase}/{index % 7}"
            result = await call_asgi(app, path=path, headers=[("accept-encoding", "gzip")])
            slowest = max(slowest, time.monotonic() - started)
            statuses.add(result.status)

    try:
        await burst("before", 30)
        redis_server.stop()
        await burst("down", 60)
        assert cache.redis is not None and cache.redis.breaker.state == "open"
        assert registry.get_sample_value("slipstream_cache_redis_breaker_open") == 1
        redis_server.restart()
        await anyio.sleep(0.5)  # past the breaker's reset timeout
        other = make_cache(redis_server.url)
        try:
            await call_asgi(app, path="/after", headers=[("accept-encoding", "gzip")])
            with anyio.fail_after(5):
                while (await other.lookup("http://testserver/after", [])) is None:
                    await call_asgi(app, path="/after", headers=[("cache-control", "no-cache")])
                    await anyio.sleep(0.05)
        finally:
            await other.close()
    finally:
        await cache.close()
    assert statuses == {200}
    assert (registry.get_sample_value("slipstream_cache_redis_errors_total") or 0) >= 3
    assert slowest < 1.0, f"a request took {slowest:.3f} s while Redis was down"
    assert cache.redis.breaker.state == "closed"
    assert registry.get_sample_value("slipstream_cache_redis_breaker_open") == 0


def test_settings_build_a_redis_tier(redis_server: RedisServer) -> None:
    cache = ResponseCache.from_settings(Settings(cache_redis_url=redis_server.url, cache_redis_prefix="p:"))
    assert cache.redis is not None and cache.redis.prefix == "p:"
    assert ResponseCache.from_settings(Settings()).redis is None
