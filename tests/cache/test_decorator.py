from __future__ import annotations

import threading
import time

import anyio
import pytest

import slipstream
from slipstream import ResponseCache, cached
from slipstream.cache.decorator import default_cache, function_key, set_default_cache
from slipstream.cache.memory import MemoryStore

pytestmark = pytest.mark.anyio


def memory_cache() -> ResponseCache:
    return ResponseCache(MemoryStore(1024 * 1024))


async def test_async_results_are_cached_per_arguments_and_expire() -> None:
    calls: list[tuple[int, str]] = []
    cache = memory_cache()

    @cached(ttl=0.2, cache=cache)
    async def price(item: int, currency: str = "EUR") -> dict[str, object]:
        calls.append((item, currency))
        return {"item": item, "price": [item * 2, currency]}

    assert await price(1) == await price(1) == {"item": 1, "price": [2, "EUR"]}
    assert await price(1, currency="USD") == {"item": 1, "price": [2, "USD"]}
    assert calls == [(1, "EUR"), (1, "USD")]
    await anyio.sleep(0.25)
    await price(1)
    assert len(calls) == 3


async def test_concurrent_async_calls_run_the_function_once() -> None:
    calls = 0
    cache = memory_cache()

    @cached(ttl=60, cache=cache)
    async def slow() -> int:
        nonlocal calls
        calls += 1
        await anyio.sleep(0.05)
        return 42

    results: list[int] = []

    async def call() -> None:
        results.append(await slow())

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(call)
    assert results == [42] * 50
    assert calls == 1


async def test_tags_purge_cached_values() -> None:
    cache = memory_cache()
    calls = 0

    @cached(ttl=60, tags=("prices",), cache=cache)
    async def total() -> int:
        nonlocal calls
        calls += 1
        return calls

    assert await total() == await total() == 1
    await cache.purge_tags("prices")
    assert await total() == 2


async def test_async_values_are_shared_through_redis(two_caches: tuple[ResponseCache, ResponseCache]) -> None:
    shared = two_caches
    calls = 0

    async def report(region: str) -> list[str]:
        nonlocal calls
        calls += 1
        await anyio.sleep(0.05)
        return [region, "computed"]

    in_a = cached(ttl=60, cache=shared[0])(report)
    in_b = cached(ttl=60, cache=shared[1])(report)
    results: list[list[str]] = []

    async def call(function: object) -> None:
        results.append(await function("eu"))  # type: ignore[operator]

    async with anyio.create_task_group() as tg:
        for index in range(20):
            tg.start_soon(call, in_a if index % 2 else in_b)
    assert results == [["eu", "computed"]] * 20
    assert calls == 1


def test_sync_functions_use_the_memory_tier_and_coalesce_threads() -> None:
    calls = 0
    cache = memory_cache()

    @cached(ttl=0.3, cache=cache)
    def expensive(n: int) -> list[int]:
        nonlocal calls
        calls += 1
        time.sleep(0.05)
        return list(range(n))

    threads = [threading.Thread(target=expensive, args=(3,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert expensive(3) == [0, 1, 2]
    assert calls == 1
    time.sleep(0.35)
    expensive(3)
    assert calls == 2


def test_keys_depend_on_name_and_arguments() -> None:
    assert function_key("f", (1,), {}) == function_key("f", (1,), {})
    assert function_key("f", (1,), {}) != function_key("g", (1,), {})
    assert function_key("f", (1,), {"a": 1}) != function_key("f", (1,), {"a": 2})
    assert function_key("f", (object,), {}).startswith("fn:f:")  # unserialisable arguments fall back to str()


def test_install_makes_the_apps_cache_the_default() -> None:
    from starlette.applications import Starlette

    try:
        installation = slipstream.install(Starlette(), slipstream.Settings())
        assert default_cache() is installation.cache
        set_default_cache(None)
        assert default_cache() is not installation.cache  # a fresh one from the environment
    finally:
        set_default_cache(None)
