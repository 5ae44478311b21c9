"""ResponseCache: the L1 memory tier in front of an optional Redis L2, with purges that reach every instance."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterable
from typing import TYPE_CHECKING, Any

from slipstream.cache.coalescing import Flight, RecentlyUncacheable, SingleFlight
from slipstream.cache.entry import CacheEntry, deserialise, serialise
from slipstream.cache.keys import QueryNormaliser, request_fields, secondary_key, url_key
from slipstream.cache.memory import MemoryStore
from slipstream.cache.negotiated_fields import variant_language
from slipstream.config import Settings
from slipstream.extras import needs_extra

if TYPE_CHECKING:
    from slipstream.cache.redis_store import InvalidationListener, RedisStore

logger = logging.getLogger("slipstream.cache")
Headers = Iterable[tuple[bytes, bytes]]


class Fill:
    """What `ResponseCache.fill` yields: ``found``, an entry stored meanwhile, or None when the caller calls the app.

    As soon as that call's response shows it will not be stored, ``not_stored()`` lets the requests waiting for
    it go to the app themselves (in this process and, through the Redis lock, in others) and keeps later ones
    for the URL from waiting at all for a while.
    """

    def __init__(
        self,
        cache: ResponseCache,
        primary: str,
        found: tuple[CacheEntry, str] | None,
        flight: Flight | None = None,
        token: str | None = None,
    ) -> None:
        self.found = found
        self._cache = cache
        self._primary = primary
        self._flight = flight
        self._token = token
        # When the Redis lock, just taken, expires by itself: retries of a failed release stop then.
        self._lock_expires = 0.0 if token is None else asyncio.get_running_loop().time() + cache.coalesce_timeout

    def not_stored(self) -> None:
        self._cache.uncacheable.add(self._primary)
        if self._flight is not None:
            self._flight.step_aside()
        if self._token is not None:
            self._cache.spawn(self.release_lock())  # off the response's path: its next message goes out now

    async def release_lock(self) -> None:
        token, self._token = self._token, None
        redis = self._cache.redis
        if token is not None and redis is not None and not await redis.release_lock(self._primary, token):
            # Redis did not answer (down, slow, paused): keep trying in the background while the lock would live.
            self._cache.spawn(redis.release_lock_later(self._primary, token, self._lock_expires))


class ResponseCache:
    """Shared by the cache middleware and ``@cached``; purge methods act on every process sharing the Redis."""

    def __init__(
        self,
        memory: MemoryStore,
        redis: RedisStore | None = None,
        *,
        revalidation_grace: float = Settings.cache_revalidation_grace,
        coalesce_timeout: float = Settings.cache_coalesce_timeout,
        ignore_query_params: Iterable[str] = Settings.cache_ignore_query_params,
        hit_for_miss: float = Settings.cache_hit_for_miss,
    ) -> None:
        """``ignore_query_params``: what the cache middleware leaves out of its keys, for ``purge_url``."""
        self.memory = memory
        self.redis = redis
        self.revalidation_grace = revalidation_grace
        self.coalesce_timeout = coalesce_timeout
        self.normalise_query = QueryNormaliser(ignore_query_params)
        self.origin = uuid.uuid4().hex  # lets this process ignore its own invalidation broadcasts
        self.flights = SingleFlight()
        self.uncacheable = RecentlyUncacheable(hit_for_miss)
        self._listener: InvalidationListener | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.refreshing: set[str] = set()  # keys with a stale-while-revalidate refresh under way
        self.streaming: set[str] = set()  # keys whose streamed response is being kept to be stored

    @classmethod
    def from_settings(cls, settings: Settings) -> ResponseCache:
        redis = None
        if settings.cache_redis_url:
            with needs_extra("cache_redis_url", "redis"):
                from slipstream.cache.redis_store import RedisStore

            redis = RedisStore.from_url(
                settings.cache_redis_url,
                prefix=settings.cache_redis_prefix,
                timeout=settings.cache_redis_timeout,
                secret=settings.cache_redis_secret,
            )
        return cls(
            MemoryStore(settings.cache_memory_bytes),
            redis,
            revalidation_grace=settings.cache_revalidation_grace,
            coalesce_timeout=settings.cache_coalesce_timeout,
            ignore_query_params=settings.cache_ignore_query_params,
            hit_for_miss=settings.cache_hit_for_miss,
        )

    def lookup_memory(self, primary: str, headers: Headers) -> tuple[CacheEntry, str] | None:
        vary = self.memory.vary_of(primary)
        if vary is None:
            return None
        entry = self.memory.get(primary, request_fields(headers, vary))
        return None if entry is None else (entry, "l1")

    async def lookup(self, primary: str, headers: Headers) -> tuple[CacheEntry, str] | None:
        """The stored entry for this request and the tier that had it ("l1" or "l2"), or None."""
        return self.lookup_memory(primary, headers) or await self._lookup_redis(primary, headers)

    async def _lookup_redis(self, primary: str, headers: Headers) -> tuple[CacheEntry, str] | None:
        self._ensure_listener()
        if self.redis is None:
            return None
        fields = request_fields(headers)
        found = await self.redis.lookup(primary, fields, self.memory.vary_of(primary) or ())
        if found is None:
            return None
        data, language = found
        try:
            entry = deserialise(data)
        except ValueError:
            logger.warning("ignoring an unreadable cache entry for %s", primary)
            return None
        if language is not None and variant_language(entry.vary, entry.headers) != language:
            return None  # found by a language it no longer has (a later variant took over its key)
        self.memory.put(primary, entry, secondary_key(entry.vary, fields), entry.storage_ttl(self.revalidation_grace))
        return entry, "l2"

    async def store(self, primary: str, entry: CacheEntry, headers: Headers) -> None:
        fields = request_fields(headers, entry.vary)
        ttl = entry.storage_ttl(self.revalidation_grace)
        self.memory.put(primary, entry, secondary_key(entry.vary, fields), ttl)
        self.uncacheable.discard(primary)  # it is cacheable after all: the next cold miss is coalesced again
        if self.redis is not None:
            secondary = self.redis.secondary(entry.vary, fields)
            language = variant_language(entry.vary, entry.headers)
            await self.redis.put(primary, entry.vary, secondary, serialise(entry), ttl, entry.tags, language)

    def add_variant(self, primary: str, entry: CacheEntry, coding: str, data: bytes, headers: Headers) -> None:
        """Keep an encoding filled on demand, here and (in the background) in Redis."""
        self.memory.add_variant(primary, entry, coding, data)
        if self.redis is not None:
            secondary = self.redis.secondary(entry.vary, request_fields(headers, entry.vary))
            ttl = entry.storage_ttl(self.revalidation_grace)
            language = variant_language(entry.vary, entry.headers)
            self.spawn(self.redis.put(primary, entry.vary, secondary, serialise(entry), ttl, entry.tags, language))

    def passes(self, primary: str) -> bool:
        """Whether a miss for the key goes to the app with nothing kept: its last response was refused for its own
        fields whatever the request (see `RecentlyUncacheable`), and there is no Redis another process may have
        filled."""
        return self.redis is None and self.uncacheable.passes(primary)

    def hit_for_miss(self, primary: str) -> Fill | None:
        """`fill`'s answer for a key lately answered uncacheably when there is no Redis to ask, without its
        context manager: nothing to wait for, nothing to look up. None otherwise (then use `fill`)."""
        if self.redis is None and primary in self.uncacheable:
            return Fill(self, primary, None)
        return None

    @contextlib.asynccontextmanager
    async def fill(self, primary: str, headers: Headers) -> AsyncIterator[Fill]:
        """After a memory miss: a Fill with the entry found meanwhile, or with None when the caller calls the app.

        Concurrent misses in this process wait (bounded) for the first, until its response is stored or shows it
        will not be; only that one asks Redis and, on a miss there too, takes the cross-process lock, so a cold
        key costs one app call per cluster. A key lately answered uncacheably is not waited for at all.
        """
        headers = list(headers)
        if primary in self.uncacheable:
            yield Fill(self, primary, await self._lookup_redis(primary, headers))
            return
        async with self.flights.lead(primary, self.coalesce_timeout) as flight:
            if not flight.leading:
                yield Fill(self, primary, self.lookup_memory(primary, headers))
                return
            found = await self._lookup_redis(primary, headers)
            if found is not None or self.redis is None:
                yield Fill(self, primary, found, flight)
                return
            token = await self.redis.acquire_lock(primary, self.coalesce_timeout)
            if token is None:  # another process fills it, or Redis is down and wait_for returns at once
                if await self.redis.wait_for(primary, request_fields(headers), self.coalesce_timeout) is not None:
                    found = await self._lookup_redis(primary, headers)
                yield Fill(self, primary, found, flight)
                return
            fill = Fill(self, primary, None, flight, token)
            try:
                yield fill
            finally:
                await fill.release_lock()

    async def purge_url(self, url: str) -> int:
        """Drop the entries of an absolute URL, written as a client requests it: it is normalised as the cache's
        keys are (escapes, parameter order, ignored parameters), so ``https://example.com/a?b=1&a=2`` will do."""
        return await self.purge_primary(url_key(url, self.normalise_query))

    async def purge_primary(self, primary: str) -> int:
        """Drop the entries of one primary key, exactly as the cache computed it."""
        return await self._purge("url", primary, self.memory.delete(primary), lambda r: r.delete(primary))

    async def purge_prefix(self, prefix: str) -> int:
        """Drop the entries whose URL starts with ``prefix`` (scheme, host and path escapes normalised)."""
        prefix = url_key(prefix, None)
        local = self.memory.delete_prefix(prefix)
        return await self._purge("prefix", prefix, local, lambda r: r.delete_prefix(prefix))

    async def purge_tags(self, *tags: str) -> int:
        local = self.memory.purge_tags(tags)
        return await self._purge("tag", ",".join(tags), local, lambda r: r.purge_tags(tags))

    async def purge_all(self) -> int:
        return await self._purge("all", "", self.memory.clear(), lambda r: r.clear())

    async def _purge(self, kind: str, argument: str, local: int, remote: Any) -> int:
        if self.redis is None:
            return int(local)
        removed = await remote(self.redis)
        await self.redis.publish(f"{kind} {self.origin} {argument}")
        return max(int(local), int(removed or 0))

    def on_invalidation(self, message: str) -> None:
        """Apply a purge broadcast by another process to this process's memory tier."""
        kind, _, rest = message.partition(" ")
        origin, _, argument = rest.partition(" ")
        if origin == self.origin:
            return
        if kind == "url":
            self.memory.delete(argument)
        elif kind == "prefix":
            self.memory.delete_prefix(argument)
        elif kind == "tag":
            self.memory.purge_tags(argument.split(","))
        elif kind == "all":
            self.memory.clear()

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` in the background, keeping a reference so it is not collected mid-flight."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _ensure_listener(self) -> None:
        if self.redis is not None and self._listener is None:
            self._listener = self.redis.listener(self.on_invalidation)
            self._listener.start()

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None
        for task in list(self._tasks):
            task.cancel()
        if self.redis is not None:
            await self.redis.close()
