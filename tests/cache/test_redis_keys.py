"""Every key the Redis tier writes is bounded by the live entries and expires: no index outgrows them."""

from __future__ import annotations

import asyncio

import anyio
import pytest
from redis.asyncio import Redis

from slipstream.cache.redis_store import RedisStore

pytestmark = pytest.mark.anyio


async def command_calls(raw: Redis) -> dict[str, int]:
    stats = await raw.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(stat["calls"]) for name, stat in stats.items()}


async def members(raw: Redis, key: bytes | str) -> int:
    """Members of a set or sorted set, fields of a hash."""
    kind = await raw.type(key)
    counts = {"zset": raw.zcard, "set": raw.scard, "hash": raw.hlen}
    return int(await counts[kind.decode() if isinstance(kind, bytes) else kind](key))


async def test_thousands_of_expired_entries_leave_nothing_behind(store: RedisStore, raw: Redis) -> None:
    for index in range(3000):
        await store.put(f"http://a.test/{index}", (), "", b"x", 1, ("all", f"item-{index}"))
    await store.put("http://a.test/long", (), "", b"x", 60, ("all",))  # keeps the shared sets alive
    assert store.breaker.failures_total == 0
    with anyio.fail_after(10):
        while await raw.exists(store.entry_key("http://a.test/2999")):
            await asyncio.sleep(0.05)
    await store.put("http://a.test/last", (), "", b"x", 60, ("all",))

    keys = await raw.keys(store.prefix + "*")
    assert len(keys) == 4  # the two live entries, the URL index and the "all" tag set
    for key in keys:
        assert 0 < await raw.ttl(key) <= 60, key
        assert await members(raw, key) <= 3, key  # an entry hash has three fields; each set two members
        # Redis may keep a shrunk set's hash table at its peak size (8 bytes a slot, 32 KiB here): bounded by the
        # most entries ever live at once, where an index of every URL ever written took 300 KiB here and grew on.
        usage = await raw.memory_usage(key)
        assert usage is not None and usage < 48 * 1024, (key, usage)


async def test_purges_read_only_the_members_whose_entries_live(store: RedisStore, raw: Redis) -> None:
    await store.put("http://a.test/tagged", (), "", b"x", 60, ("t",))
    await store.put("http://a.test/plain", (), "", b"x", 60, ())
    for index in range(50):
        await store.put(f"http://a.test/short/{index}", (), "", b"x", 1, ("t",))
    with anyio.fail_after(10):  # the short ones expire; nothing is written after, so nothing trims the sets
        while await raw.exists(store.entry_key("http://a.test/short/49")):
            await asyncio.sleep(0.05)
    await raw.config_resetstat()
    assert await store.purge_tags(["t"]) == 1
    assert await store.delete_prefix("http://a.test/") == 1
    calls = await command_calls(raw)
    assert calls.get("hget", 0) == 1  # the one live index member's URL
    assert calls.get("del", 0) == 3  # the two live entries and the tag set
    assert await raw.keys(store.prefix + "*") == []  # purges drop the expired members too
