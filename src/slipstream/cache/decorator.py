"""``@cached``: the response cache's stores and coalescing, for values an app computes."""

from __future__ import annotations

import functools
import inspect
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, ParamSpec, TypeVar, cast

import xxhash

from slipstream.cache.entry import CacheEntry
from slipstream.cache.response_cache import ResponseCache
from slipstream.config import Settings
from slipstream.instrumentation import current_instrumentation

P = ParamSpec("P")
R = TypeVar("R")
_JSON = (b"content-type", b"application/json")


class _CacheChoice:
    """Which cache one decorated function uses: the one given, else the app's it runs for (the current request's,
    or the one whose lifespan started the code), else a memory cache of its own, made on first use."""

    def __init__(self, given: ResponseCache | None) -> None:
        self.given = given
        self.own: ResponseCache | None = None
        self.lock = threading.Lock()

    def get(self) -> ResponseCache:
        if self.given is not None:
            return self.given
        instrumentation = current_instrumentation()
        if instrumentation is not None and instrumentation.cache is not None:
            return instrumentation.cache
        with self.lock:
            if self.own is None:
                self.own = ResponseCache.from_settings(Settings())
            return self.own


def function_key(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """A key from the function's name and its arguments (JSON, with ``str`` for what JSON cannot hold)."""
    arguments = json.dumps([args, kwargs], sort_keys=True, default=str, separators=(",", ":"))
    return f"fn:{name}:{xxhash.xxh3_128_hexdigest(arguments.encode())}"


def _entry(value: Any, ttl: float, tags: tuple[str, ...]) -> CacheEntry:
    body = json.dumps(value, separators=(",", ":")).encode()
    return CacheEntry(200, [_JSON], body, None, None, time.time(), 0.0, float(ttl), tags=tags)


def _fresh_value(found: tuple[CacheEntry, str] | None) -> tuple[bool, Any]:
    if found is None or found[0].age(time.time()) >= found[0].lifetime:
        return False, None
    return True, json.loads(found[0].body)


def cached(
    ttl: float, *, tags: Iterable[str] = (), cache: ResponseCache | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Cache a function's result for ``ttl`` seconds, keyed by its arguments; purge with ``cache.purge_tags``.

    Results go through JSON (never pickle: a value read from Redis cannot run code), so they must be
    JSON-serialisable, and a hit returns what JSON gives back (lists for tuples, for instance).
    Coroutine functions use both tiers and coalesce concurrent calls across processes; plain functions
    use the in-process tier, with concurrent calls in threads coalesced by a per-key lock. Without ``cache`` the
    app's cache is used (see ``install()``); outside any app, a memory cache of the function's own.
    """
    tag_tuple = tuple(tags)

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        name = f"{function.__module__}.{function.__qualname__}"
        choice = _CacheChoice(cache)
        if inspect.iscoroutinefunction(function):
            return cast(Callable[P, R], _wrap_async(function, name, ttl, tag_tuple, choice))
        return _wrap_sync(function, name, ttl, tag_tuple, choice)

    return decorate


def _wrap_async(
    function: Callable[P, Awaitable[Any]], name: str, ttl: float, tags: tuple[str, ...], cache: _CacheChoice
) -> Callable[P, Awaitable[Any]]:
    @functools.wraps(function)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        store = cache.get()
        key = function_key(name, args, kwargs)
        hit, value = _fresh_value(store.lookup_memory(key, ()))
        if hit:
            return value
        async with store.fill(key, ()) as fill:
            hit, value = _fresh_value(fill.found)
            if hit:
                return value
            value = await function(*args, **kwargs)
            await store.store(key, _entry(value, ttl, tags), ())
            return value

    return wrapper


def _wrap_sync(
    function: Callable[P, R], name: str, ttl: float, tags: tuple[str, ...], cache: _CacheChoice
) -> Callable[P, R]:
    locks: dict[str, threading.Lock] = {}
    guard = threading.Lock()

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        store = cache.get()
        key = function_key(name, args, kwargs)
        with guard:
            lock = locks.setdefault(key, threading.Lock())
        try:
            with lock:
                hit, value = _fresh_value(store.lookup_memory(key, ()))
                if hit:
                    return cast(R, value)
                result = function(*args, **kwargs)
                entry = _entry(result, ttl, tags)
                store.memory.put(key, entry, "", entry.storage_ttl(0.0))
                return result
        finally:
            with guard:
                if not lock.locked():
                    locks.pop(key, None)

    return wrapper
