from __future__ import annotations

import threading
import time

import anyio
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import slipstream
from slipstream import ResponseCache, cached
from slipstream.cache.decorator import function_key
from slipstream.cache.memory import MemoryStore
from tests.support import asgi_client, running

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


async def test_without_a_cache_each_app_uses_its_own_and_code_outside_apps_a_private_one() -> None:
    calls: list[str] = []

    @cached(ttl=60)
    async def lookup(key: str) -> str:
        calls.append(key)
        return f"{key}-{len(calls)}"

    async def page(request: Request) -> Response:
        return PlainTextResponse(await lookup("k"))

    apps = []
    for _ in range(2):
        app = Starlette(routes=[Route("/", page)])
        instrumentation = slipstream.install(app, slipstream.Settings(metrics_port=None), registry=CollectorRegistry())
        apps.append((app, instrumentation))
    (first, first_instrumentation), (second, second_instrumentation) = apps
    async with asgi_client(first) as client:
        assert [(await client.get("/")).text for _ in range(2)] == ["k-1", "k-1"]
    async with asgi_client(second) as client:
        assert (await client.get("/")).text == "k-2"
    assert [await lookup("k"), await lookup("k")] == ["k-3", "k-3"]
    key = function_key(f"{lookup.__module__}.{lookup.__qualname__}", ("k",), {})
    for instrumentation in (first_instrumentation, second_instrumentation):
        assert instrumentation.cache is not None and instrumentation.cache.lookup_memory(key, ()) is not None
    with running(first_instrumentation):
        # Code started by the first app's lifespan (a background job, say) uses that app's cache.
        assert await lookup("k") == "k-1"
