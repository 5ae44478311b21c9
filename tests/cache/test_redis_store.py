"""RedisStore against a real redis-server, including one that goes away."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from redis.asyncio import Redis

from slipstream.cache.breaker import CircuitBreaker
from slipstream.cache.keys import secondary_key
from slipstream.cache.redis_store import RedisStore
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio

LANG = ("accept-language",)
PAGE = "http://example.test/page"


async def put(store: RedisStore, primary: str, data: bytes, *, vary: tuple[str, ...] = (), **fields: str) -> None:
    await store.put(primary, vary, secondary_key(vary, fields), data, 60, ())


async def test_vary_is_resolved_on_the_server(store: RedisStore) -> None:
    await put(store, PAGE, b"en", vary=LANG, **{"accept-language": "en"})
    await put(store, PAGE, b"fr", vary=LANG, **{"accept-language": "fr"})
    assert await store.get(PAGE, {"accept-language": "en", "user-agent": "x"}) == b"en"
    assert await store.get(PAGE, {"accept-language": "fr"}) == b"fr"
    assert await store.get(PAGE, {"accept-language": "de"}) is None
    assert await store.get(PAGE, {}) is None
    assert await store.get(PAGE + "/other", {"accept-language": "en"}) is None


async def test_no_vary_matches_any_request(store: RedisStore) -> None:
    await put(store, PAGE, b"one")
    assert await store.get(PAGE, {}) == b"one"
    assert await store.get(PAGE, {"accept-language": "en", "cookie": "a=b"}) == b"one"


@pytest.mark.parametrize("value", ["", "en,fr;q=0.5", "a:b", "é ü", "x" * 300])
async def test_lua_secondary_key_matches_secondary_key(store: RedisStore, value: str) -> None:
    vary = ("accept-language", "x-tenant")
    fields = {"accept-language": value, "x-tenant": "t1", "host": "example.test"}
    await store.put(PAGE, vary, secondary_key(vary, fields), b"hit", 60, ())
    assert await store.get(PAGE, fields) == b"hit"
    assert await store.get(PAGE, {**fields, "x-tenant": "t2"}) is None
    assert await store.get(PAGE, {"accept-language": value}) is None


async def test_a_language_names_its_latest_variant(store: RedisStore, raw: Redis) -> None:
    await store.put(PAGE, LANG, "\naccept-language:de,en", b"de", 60, (), "de")
    await store.put(PAGE, LANG, "\naccept-language:en", b"en", 60, (), "en")
    fields = await raw.hgetall(store.entry_key(PAGE))
    assert fields[b"@lang:de"] == b"@\naccept-language:de,en" and fields[b"@lang:en"] == b"@\naccept-language:en"
    assert await store.lookup(PAGE, {"accept-language": "de,en"}, LANG) == (b"de", None)
    assert await store.lookup(PAGE, {"accept-language": "de,fr;q=0.5"}, LANG) == (b"de", "de")
    assert await store.lookup(PAGE, {"accept-language": "de,fr;q=0.5"}) == (b"de", "de")  # after a wrong guess
    assert await store.lookup(PAGE, {"accept-language": "de,fr"}, LANG) is None  # no one language on top
    assert await store.get(PAGE, {"accept-language": "fr,en;q=0.5"}, LANG) is None
    await put(store, PAGE, b"t1", vary=("x-tenant",), **{"x-tenant": "t1"})  # a new Vary: the languages go too
    assert b"@lang:de" not in await raw.hgetall(store.entry_key(PAGE))


async def test_changed_vary_drops_old_variants(store: RedisStore, raw: Redis) -> None:
    await put(store, PAGE, b"en", vary=LANG, **{"accept-language": "en"})
    await put(store, PAGE, b"fr", vary=LANG, **{"accept-language": "fr"})
    await put(store, PAGE, b"t1", vary=("x-tenant",), **{"x-tenant": "t1"})
    assert await store.get(PAGE, {"accept-language": "en", "x-tenant": "t1"}) == b"t1"
    fields = await raw.hgetall(store.entry_key(PAGE))
    assert fields == {b"@vary": b"x-tenant", b"@url": PAGE.encode(), b"@\nx-tenant:t1": b"t1"}
    await put(store, PAGE, b"en", vary=LANG, **{"accept-language": "en"})
    assert await store.get(PAGE, {"accept-language": "en", "x-tenant": "t1"}) == b"en"
    assert await store.get(PAGE, {"accept-language": "fr"}) is None


async def test_ttl_is_the_longest_of_the_variants(store: RedisStore, raw: Redis) -> None:
    key = store.entry_key(PAGE)
    await store.put(PAGE, LANG, "\naccept-language:en", b"en", 10.2, ("a",))
    assert await raw.ttl(key) == 11
    await store.put(PAGE, LANG, "\naccept-language:fr", b"fr", 5, ("a",))
    assert await raw.ttl(key) == 11
    await store.put(PAGE, LANG, "\naccept-language:de", b"de", 100, ("b",))
    assert 99 <= await raw.ttl(key) <= 100
    assert 99 <= await raw.ttl(store.tag_key("b")) <= 100
    assert await raw.ttl(store.tag_key("a")) == 11
    assert 99 <= await raw.ttl(store.index_key) <= 100
    await store.put(PAGE + "/gone", (), "", b"x", 0, ())
    assert not await raw.exists(store.entry_key(PAGE + "/gone"))


async def test_one_round_trip_of_evalsha_per_get_and_put(store: RedisStore, raw: Redis) -> None:
    await put(store, PAGE, b"warm")  # loads the scripts
    assert await store.get(PAGE, {}) == b"warm"
    await raw.config_resetstat()
    await store.put(PAGE, (), "", b"x", 60, ("a", "b"))
    assert await store.get(PAGE, {}) == b"x"
    stats = await raw.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): stat["calls"] for name, stat in stats.items()}
    assert calls.pop("evalsha") == 5
    # What remains ran inside the scripts: no SCRIPT EXISTS, SCRIPT LOAD or separate reads.
    assert set(calls) <= {
        "hget",
        "hset",
        "ttl",
        "expire",
        "time",
        "zremrangebyscore",
        "zscore",
        "zadd",
        "config|resetstat",
    }


async def test_scripts_reload_after_script_flush(store: RedisStore, raw: Redis) -> None:
    await put(store, PAGE, b"before")
    await raw.script_flush()
    await put(store, PAGE, b"after")
    await raw.script_flush()
    assert await store.get(PAGE, {}) == b"after"
    assert store.breaker.failures_total == 0


async def test_purge_tags_across_primaries(store: RedisStore, raw: Redis) -> None:
    for name, tags in [("p1", ("a", "b")), ("p2", ("b",)), ("p3", ("c",))]:
        await store.put(f"{PAGE}/{name}", (), "", name.encode(), 60, tags)
    assert await store.purge_tags(["b"]) == 2
    assert await store.get(f"{PAGE}/p1", {}) is None
    assert await store.get(f"{PAGE}/p2", {}) is None
    assert await store.get(f"{PAGE}/p3", {}) == b"p3"
    assert not await raw.exists(store.tag_key("b"))
    assert await store.purge_tags(["a"]) == 0
    assert await store.purge_tags(iter(["c", "never-used"])) == 1
    assert await store.get(f"{PAGE}/p3", {}) is None


async def test_delete_and_delete_prefix(store: RedisStore, raw: Redis) -> None:
    urls = ["http://a.test/x/1", "http://a.test/x/2", "http://a.test/y", "http://b.test/x/1"]
    for url in urls:
        await put(store, url, url.encode())
    await store.delete("http://a.test/y")
    assert await store.get("http://a.test/y", {}) is None
    assert await store.delete_prefix("http://a.test/x/") == 2
    assert [await store.get(url, {}) for url in urls] == [None, None, None, b"http://b.test/x/1"]
    # An entry gone before its time (evicted, say) leaves its name in the index until a purge prunes it.
    await raw.delete(store.entry_key("http://b.test/x/1"))
    assert await raw.zcard(store.index_key) == 1
    assert await store.delete_prefix("http://nothing/") == 0
    assert await raw.zcard(store.index_key) == 0


async def test_purges_work_in_batches(store: RedisStore) -> None:
    for i in range(1200):
        await store.put(f"http://a.test/{i}", (), "", b"x", 60, ("many",) if i % 2 else ())
    assert await store.purge_tags(["many"]) == 600
    evens_starting_with_1 = sum(1 for i in range(0, 1200, 2) if str(i).startswith("1"))
    assert evens_starting_with_1 > 100
    assert await store.delete_prefix("http://a.test/1") == evens_starting_with_1
    assert await store.clear() == 600 - evens_starting_with_1


async def test_clear_only_touches_its_prefix(redis_server: RedisServer, raw: Redis) -> None:
    mine = RedisStore.from_url(redis_server.url, prefix="we[ird]*:")
    other = RedisStore.from_url(redis_server.url, prefix="wei:")  # an unescaped "we[ird]*:*" would match it
    try:
        await mine.put(PAGE, (), "", b"x", 60, ("t",))
        await mine.put(PAGE + "/2", (), "", b"x", 60, ())
        assert await mine.acquire_lock(PAGE, 5) is not None
        await other.put(PAGE, (), "", b"y", 60, ("t",))
        mine_pattern = "we[[]ird]\\*:*"
        assert len(await raw.keys(mine_pattern)) == 5  # two entries, the tag set, the index, the lock
        assert await mine.clear() == 2
        assert await raw.keys(mine_pattern) == []
        assert await other.get(PAGE, {}) == b"y"
        assert await raw.exists(other.tag_key("t"), other.index_key) == 2
    finally:
        await mine.close()
        await other.close()


async def test_lock_is_exclusive_across_clients(redis_server: RedisServer, raw: Redis) -> None:
    first = RedisStore.from_url(redis_server.url)
    second = RedisStore.from_url(redis_server.url)
    try:
        results = await asyncio.gather(*(store.acquire_lock(PAGE, 5) for store in [first, second] * 5))
        assert sum(token is not None for token in results) == 1
        token = next(t for t in results if t is not None)
        assert 4000 < await raw.pttl(first.lock_key(PAGE)) <= 5000
        await second.release_lock(PAGE, "not-the-token")
        assert await second.acquire_lock(PAGE, 5) is None

        async def fill() -> None:
            await asyncio.sleep(0.1)
            await put(first, PAGE, b"filled", vary=LANG, **{"accept-language": "en"})
            await first.release_lock(PAGE, token)

        filler = asyncio.create_task(fill())
        assert await second.wait_for(PAGE, {"accept-language": "en"}, timeout=5.0) == b"filled"
        await filler
        assert await second.acquire_lock(PAGE, 5) is not None
    finally:
        await first.close()
        await second.close()


async def test_wait_for_ends_on_timeout_or_when_the_lock_goes(store: RedisStore) -> None:
    assert await store.acquire_lock(PAGE, 5) is not None
    started = time.perf_counter()
    assert await store.wait_for(PAGE, {}, timeout=0.2) is None
    assert 0.2 <= time.perf_counter() - started < 1.0
    started = time.perf_counter()
    assert await store.wait_for(PAGE + "/unlocked", {}, timeout=5.0) is None
    assert time.perf_counter() - started < 0.5
    assert await store.acquire_lock(PAGE + "/short", 0.05) is not None
    assert await store.wait_for(PAGE + "/short", {}, timeout=5.0) is None  # the lock expires, the wait ends


async def test_redis_down_is_a_fast_miss_and_the_breaker_recovers(redis_server: RedisServer) -> None:
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=0.2)
    store = RedisStore.from_url(redis_server.url, breaker=breaker)
    calls: list[tuple[str, Callable[[], Awaitable[object]], object]] = [
        ("get", lambda: store.get(PAGE, {}), None),
        ("put", lambda: store.put(PAGE, (), "", b"x", 60, ("t",)), None),
        ("delete", lambda: store.delete(PAGE), None),
        ("purge_tags", lambda: store.purge_tags(["t"]), 0),
        ("delete_prefix", lambda: store.delete_prefix("http://"), 0),
        ("clear", lambda: store.clear(), 0),
        ("acquire_lock", lambda: store.acquire_lock(PAGE, 5), None),
        ("wait_for", lambda: store.wait_for(PAGE, {}, timeout=5.0), None),
        ("publish", lambda: store.publish("all origin-3"), None),
        ("ping", lambda: store.ping(), False),
    ]
    try:
        await put(store, PAGE, b"up")
        assert await store.get(PAGE, {}) == b"up"
        redis_server.stop()
        for _ in range(2):  # first with the breaker closed, then with it open
            for name, call, expected in calls:
                started = time.perf_counter()
                assert await call() == expected, name
                assert time.perf_counter() - started < 0.5, name
        assert breaker.state == "open"
        assert breaker.failures_total == 3, "an open breaker must keep calls off the network"
        # Releasing a fill lock is the exception: it is tried anyway, fails fast, and is counted.
        started = time.perf_counter()
        assert await store.release_lock(PAGE, "token") is False
        assert time.perf_counter() - started < 0.5
        assert (breaker.state, breaker.failures_total) == ("open", 4)

        redis_server.start()
        await asyncio.sleep(breaker.reset_timeout)
        assert await store.get(PAGE, {}) is None  # the trial: the restarted server is empty but answers
        assert breaker.state == "closed"
        await put(store, PAGE, b"back")
        assert await store.get(PAGE, {}) == b"back"
    finally:
        await store.close()


async def test_failed_trial_reopens_with_a_longer_timeout(redis_server: RedisServer) -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=0.05)
    store = RedisStore.from_url(redis_server.url, breaker=breaker)
    try:
        redis_server.stop()
        assert await store.ping() is False
        assert breaker.state == "open"
        await asyncio.sleep(0.05)
        assert await store.get(PAGE, {}) is None
        assert (breaker.state, breaker.reset_timeout, breaker.failures_total) == ("open", 0.1, 2)
    finally:
        await store.close()


class FaultyClient(Redis):
    """A client library failing in its own way mid-reconnect, as redis-py's cluster client does while a node
    restarts (AttributeError: a connection without a writer), rather than with a RedisError."""

    async def execute_command(self, *args: object, **options: object) -> object:
        raise AttributeError("'NoneType' object has no attribute 'writelines'")


async def test_a_client_library_failure_is_a_failed_call_not_a_failed_request(redis_server: RedisServer) -> None:
    store = RedisStore(FaultyClient.from_url(redis_server.url), breaker=CircuitBreaker(failure_threshold=2))
    try:
        assert await store.get(PAGE, {}) is None
        assert await store.acquire_lock(PAGE, 5) is None
        await store.put(PAGE, (), "", b"x", 60, ())
        assert (store.breaker.state, store.breaker.failures_total) == ("open", 2)
    finally:
        await store.close()
