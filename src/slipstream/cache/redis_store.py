"""The shared L2 tier in Redis: bytes in and out, every call guarded by a circuit breaker, never raising.

Layout under `prefix`: one hash per primary key, ``e:{<xxh3-128 of the primary>}``, with fields ``@vary``
(comma-joined Vary names), ``@url`` (the primary key), ``@<secondary key>`` per variant and, when the Vary is
Accept-Language alone, ``@lang:<tag>`` naming the field of the latest variant in that Content-Language; the
sorted sets ``index`` (every entry) and ``tag:<tag>`` hold entry key names scored by their expiry on the server's
clock; ``l:{<hash>}`` is the fill lock; pub/sub channel ``invalidate``. Nothing outgrows the live entries: every
key has a TTL (a sorted set's is its longest-lived member's), and each write to a sorted set first drops its
expired members. Each call touches one entry key or one set key per command, with the primary's hash in a ``{...}``
hash tag, so it also runs on a Redis Cluster (``redis+cluster://`` URLs, or a `redis.asyncio.cluster.RedisCluster`
client), where the scripts of a write go out concurrently rather than pipelined (a cluster pipeline refuses
EVALSHA). The client must use ``decode_responses=False``.

Request fields never reach Redis in clear when they are credentials: a lookup sends only the fields the stored Vary
names, and the values of Authorization, Proxy-Authorization and Cookie, there and in secondary keys, are keyed
BLAKE2b digests. The key comes from ``secret`` (the same on every instance that should share such variants) or is
random per process.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import math
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import xxhash
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError

from slipstream.cache.breaker import CircuitBreaker
from slipstream.cache.invalidation import ERRORS as _ERRORS
from slipstream.cache.invalidation import InvalidationListener, aclose
from slipstream.cache.keys import secondary_key
from slipstream.cache.negotiated_fields import LANGUAGE_VARY, preferred_language

__all__ = ["CREDENTIAL_FIELDS", "InvalidationListener", "RedisStore"]

logger = logging.getLogger(__name__)
T = TypeVar("T")
_BATCH = 500
_MAX_BATCHES = 10_000  # 5 million keys per purge call: a bound, not an expected size
# Request fields whose values Redis only ever sees as keyed digests.
CREDENTIAL_FIELDS = frozenset({"authorization", "proxy-authorization", "cookie"})

# ARGV: the Vary the caller expects (comma-joined names), the language the request prefers to all others (or ""),
# then name, value pairs of the fields the Vary names, and no others. Right, one round trip picks the variant, or,
# when none matches exactly, the one the language points to, as {vary, data}; a different stored Vary comes back as
# {vary} to ask again with.
_GET = """
local vary = redis.call('HGET', KEYS[1], '@vary')
if not vary then return false end
if vary ~= ARGV[1] then return {vary} end
local headers = {}
for i = 3, #ARGV, 2 do headers[ARGV[i]] = ARGV[i + 1] end
local parts = {'@'}
for name in string.gmatch(vary, '[^,]+') do
  local value = headers[name]
  parts[#parts + 1] = value and ('\\n' .. name .. ':' .. value) or ('\\n' .. name)
end
local found = redis.call('HGET', KEYS[1], table.concat(parts))
if found or ARGV[2] == '' then return found end
local field = redis.call('HGET', KEYS[1], '@lang:' .. ARGV[2])
if field then found = redis.call('HGET', KEYS[1], field) end
if found then return {vary, found} end
return false
"""
# ARGV: vary, url, field, data, ttl, language (or ""). A changed Vary makes every stored variant unreachable, so
# drop them.
_PUT = """
local old = redis.call('HGET', KEYS[1], '@vary')
if old and old ~= ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('HSET', KEYS[1], '@vary', ARGV[1], '@url', ARGV[2], ARGV[3], ARGV[4])
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], '@lang:' .. ARGV[6], ARGV[3]) end
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[5]) then redis.call('EXPIRE', KEYS[1], ARGV[5]) end
return 1
"""
# ARGV: member, ttl. A member's score is when its entry expires (the latest of its writes, as for the entry);
# expired members go on every write, and the set outlives its longest-lived member. One key: cluster-safe.
_ADD = """
local now = redis.call('TIME')
local at = tonumber(now[1]) + tonumber(now[2]) / 1000000
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', at)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) < at + ttl then redis.call('ZADD', KEYS[1], at + ttl, ARGV[1]) end
if redis.call('TTL', KEYS[1]) < ttl then redis.call('EXPIRE', KEYS[1], ttl) end
return 1
"""
_TRIM = """
local now = redis.call('TIME')
return redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(now[1]) + tonumber(now[2]) / 1000000)
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


async def _batches(items: AsyncIterator[Any], size: int = _BATCH) -> AsyncIterator[list[Any]]:
    batch: list[Any] = []
    count = 0
    async for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
            count += 1
            if count >= _MAX_BATCHES:
                return
    if batch:
        yield batch


# URL schemes naming a Redis Cluster (the `rediss` form over TLS).
CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")


class RedisStore:
    """Redis L2 cache tier: bytes in and out; errors open the breaker and read as a cache miss."""

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        prefix: str = "slipstream:",
        breaker: CircuitBreaker | None = None,
        secret: str | None = None,
    ) -> None:
        """``secret``: the key of the digests that stand in for credentials (random per process when None)."""
        self.client = client
        self.cluster = isinstance(client, RedisCluster)
        self.prefix = prefix
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self.index_key = prefix + "index"
        self._channel = prefix + "invalidate"
        self._get = client.register_script(_GET)
        self._put = client.register_script(_PUT)
        self._add = client.register_script(_ADD)
        self._trim = client.register_script(_TRIM)
        self._release = client.register_script(_RELEASE)
        # Set by CacheMiddleware to its registry's slipstream_cache_redis_errors_total.
        self.error_counter: Counter | None = None
        key = secret.encode() if secret else secrets.token_bytes(32)
        self._digest_key = hashlib.blake2b(key, digest_size=32).digest()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "slipstream:",
        timeout: float = 0.05,
        breaker: CircuitBreaker | None = None,
        secret: str | None = None,
    ) -> RedisStore:
        # No retries and short socket timeouts: the breaker, not the client, decides when to try again.
        options: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "retry": Retry(NoBackoff(), 0),
            "health_check_interval": 0,
        }
        client: Redis | RedisCluster
        if url.startswith(CLUSTER_SCHEMES):
            # Any node of the cluster: the client learns the others and the slot map from it.
            scheme, _, rest = url.partition("://")
            plain = ("rediss" if scheme.endswith("s") else "redis") + "://" + rest
            client = RedisCluster.from_url(plain, **options)
        else:
            client = Redis.from_url(url, retry_on_timeout=False, **options)
        return cls(client, prefix=prefix, breaker=breaker, secret=secret)

    def entry_key(self, primary: str) -> str:
        return f"{self.prefix}e:{{{xxhash.xxh3_128_hexdigest(primary.encode())}}}"

    def wire_value(self, name: str, value: str) -> str:
        """What Redis is told of a request field's (normalised) value: a credential's is a keyed digest."""
        if value and name in CREDENTIAL_FIELDS:
            return "#" + hashlib.blake2b(value.encode(), key=self._digest_key, digest_size=16).hexdigest()
        return value

    def secondary(self, vary: tuple[str, ...], fields: Mapping[str, str]) -> str:
        """The secondary key of a variant as stored here: ``secondary_key`` with credentials digested."""
        return secondary_key(vary, {name: self.wire_value(name, fields[name]) for name in vary if name in fields})

    def lock_key(self, primary: str) -> str:
        return f"{self.prefix}l:{{{xxhash.xxh3_128_hexdigest(primary.encode())}}}"

    def tag_key(self, tag: str) -> str:
        return f"{self.prefix}tag:{tag}"

    async def _guard(self, operation: Callable[[], Awaitable[T]], default: T) -> T:
        if not self.breaker.allow():
            return default
        return await self._attempt(operation, default)

    async def _attempt(self, operation: Callable[[], Awaitable[T]], default: T) -> T:
        """Run ``operation`` whatever the breaker says; a failure is counted (and told to the breaker), not raised."""
        try:
            result = await operation()
        except Exception as exc:
            # Not only Redis's own errors: a client library caught mid-reconnect fails in its own ways (redis-py's
            # cluster client, a node restarting: AttributeError on a connection without a writer). Redis must
            # never fail a request, so any failure of a call is a failed call.
            self.breaker.record_failure()
            if self.error_counter is not None:
                self.error_counter.inc()
            if isinstance(exc, _ERRORS):
                logger.debug("redis call failed: %r", exc)
            else:
                logger.warning("redis call failed unexpectedly (counted as a Redis failure): %r", exc)
            return default
        self.breaker.record_success()
        return result

    async def get(self, primary: str, fields: Mapping[str, str], vary: tuple[str, ...] = ()) -> bytes | None:
        """The variant stored for a request with ``fields`` (normalised request fields, in clear: only those the
        stored Vary names are sent, credentials digested). ``vary``: the Vary expected, e.g. the one the memory tier
        knows; a wrong guess costs a second round trip."""
        found = await self.lookup(primary, fields, vary)
        return None if found is None else found[0]

    async def lookup(
        self, primary: str, fields: Mapping[str, str], vary: tuple[str, ...] = ()
    ) -> tuple[bytes, str | None] | None:
        """`get`, telling how the variant was found: None for the request's own, or the language the request prefers
        to all others, when the entry varies on Accept-Language alone and no variant matches exactly (the caller
        checks the variant is still in that language)."""
        keys = [self.entry_key(primary)]
        for _ in range(2):
            language = preferred_language(fields.get("accept-language", "")) if vary == LANGUAGE_VARY else None
            args = [",".join(vary), language or ""]
            for name in vary:
                args += (name, self.wire_value(name, fields.get(name, "")))
            found = await self._guard(functools.partial(self._get, keys=keys, args=args), None)
            if isinstance(found, bytes):
                return found, None
            if not isinstance(found, list) or not found:
                return None
            if len(found) == 2:
                return found[1], language
            stored: bytes = found[0]
            vary = tuple(stored.decode("latin-1").split(",")) if stored else ()
        return None  # the Vary changed between the two calls

    async def put(
        self,
        primary: str,
        vary: tuple[str, ...],
        secondary: str,
        data: bytes,
        ttl: float,
        tags: tuple[str, ...],
        language: str | None = None,
    ) -> None:
        """Store one variant for `ttl` seconds (rounded up; nothing is stored when `ttl` <= 0). `secondary` is the
        variant's key as ``self.secondary(vary, fields)`` makes it, credentials digested. ``language``: the
        variant's `variant_language`, which then points to it."""
        if ttl <= 0:
            return
        seconds = math.ceil(ttl)
        language = language or ""
        key = self.entry_key(primary)
        sets = [self.index_key, *(self.tag_key(tag) for tag in tags)]

        async def write() -> None:
            if self.cluster:
                # The keys live on different nodes, and a cluster pipeline refuses scripts: one concurrent call each.
                await asyncio.gather(
                    self._put(keys=[key], args=[",".join(vary), primary, "@" + secondary, data, seconds, language]),
                    *(self._add(keys=[set_key], args=[key, seconds]) for set_key in sets),
                )
                return
            # One pipelined round trip of single-key scripts; EVALSHA directly, because a pipeline running
            # Script objects first asks SCRIPT EXISTS, a second round trip on every put.
            for attempt in range(2):
                pipe = self.client.pipeline(transaction=False)
                pipe.evalsha(self._put.sha, 1, key, ",".join(vary), primary, "@" + secondary, data, seconds, language)
                for set_key in sets:
                    pipe.evalsha(self._add.sha, 1, set_key, key, seconds)
                try:
                    await pipe.execute()
                    return
                except NoScriptError:
                    if attempt:
                        raise
                    self._put.sha = await self.client.script_load(_PUT)
                    self._add.sha = await self.client.script_load(_ADD)

        await self._guard(write, None)

    async def delete(self, primary: str) -> None:
        key = self.entry_key(primary).encode()
        await self._guard(lambda: self._delete_keys([key]), 0)

    async def delete_prefix(self, url_prefix: str) -> int:
        """Delete every entry whose primary key starts with `url_prefix`, ZSCANning the live part of the index.

        Members whose entry went early (deleted, evicted, or dropped by a change of Vary) are pruned on the way.
        """

        wanted = url_prefix.encode()

        async def purge() -> int:
            removed = 0
            await self._trim(keys=[self.index_key])
            async for scored in _batches(self.client.zscan_iter(self.index_key, count=_BATCH)):
                batch = [key for key, _ in scored]
                pipe = self.client.pipeline(transaction=False)
                for key in batch:
                    pipe.hget(key, "@url")
                urls = await pipe.execute()
                # Deleting an expired entry's name is a no-op DEL plus the SREM that prunes it from the index.
                doomed = [key for key, url in zip(batch, urls, strict=True) if url is None or url.startswith(wanted)]
                removed += await self._delete_keys(doomed)
            return removed

        return await self._guard(purge, 0)

    async def purge_tags(self, tags: Iterable[str]) -> int:
        async def purge() -> int:
            removed = 0
            for tag in set(tags):
                tag_key = self.tag_key(tag)
                await self._trim(keys=[tag_key])  # only live members are read
                async for scored in _batches(self.client.zscan_iter(tag_key, count=_BATCH)):
                    removed += await self._delete_keys([key for key, _ in scored])
                await self.client.delete(tag_key)
            return removed

        return await self._guard(purge, 0)

    async def clear(self) -> int:
        """Delete every key under the prefix (SCAN MATCH, in batches); returns the number of entries removed."""
        pattern = "".join("\\" + ch if ch in "*?[]\\" else ch for ch in self.prefix) + "*"
        entry_prefix = (self.prefix + "e:").encode()

        async def purge() -> int:
            removed = 0
            async for batch in _batches(self.client.scan_iter(match=pattern, count=_BATCH)):
                removed += await self._delete_keys(batch, counted=entry_prefix)
            return removed

        return await self._guard(purge, 0)

    async def _delete_keys(self, keys: list[bytes], counted: bytes = b"") -> int:
        """DEL each key and drop it from the index; returns how many keys starting with `counted` existed."""
        if not keys:
            return 0
        # One DEL per key rather than one multi-key DEL: entries live in different cluster slots.
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.delete(key)
        pipe.zrem(self.index_key, *keys)
        deleted = (await pipe.execute())[:-1]
        return sum(n for key, n in zip(keys, deleted, strict=True) if key.startswith(counted))

    async def acquire_lock(self, primary: str, ttl: float) -> str | None:
        """Take the cross-process fill lock for `ttl` seconds; None means not acquired, Redis down included."""
        token = secrets.token_hex(16)
        millis = max(1, math.ceil(ttl * 1000))
        acquired = await self._guard(lambda: self.client.set(self.lock_key(primary), token, nx=True, px=millis), None)
        return token if acquired else None

    async def release_lock(self, primary: str, token: str) -> bool:
        """Drop the fill lock if it is still ours; False when Redis did not answer. Tried even with the breaker open
        (one call, the usual timeout): a lock left behind keeps every process's next miss for the URL waiting."""
        released = await self._attempt(lambda: self._release(keys=[self.lock_key(primary)], args=[token]), None)
        return released is not None

    async def release_lock_later(self, primary: str, token: str, expires: float) -> None:
        """Retry a release that failed, backing off, until Redis answers or the lock expires by itself at
        ``expires`` (event loop time)."""
        loop = asyncio.get_running_loop()
        delay = 0.05
        while loop.time() + delay < expires:  # bounded: the delay doubles, the lock's TTL is short
            await asyncio.sleep(delay)
            if await self.release_lock(primary, token):
                return
            delay = min(delay * 2, 1.0)

    async def wait_for(
        self,
        primary: str,
        fields: Mapping[str, str],
        timeout: float,
        interval: float = 0.005,
        max_interval: float = 0.05,
    ) -> bytes | None:
        """Poll for the entry another process is filling, backing off from ``interval`` to ``max_interval``; None on
        timeout, or as soon as the lock is gone (its holder is done, or its response will not be stored), or when
        Redis fails."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        interval = max(interval, 0.001)
        for _ in range(max(1, math.ceil(timeout / interval)) + 1):
            data = await self.get(primary, fields)
            if data is not None:
                return data
            # A failed EXISTS reads as "lock gone", so an unreachable Redis ends the wait at once.
            if not await self._guard(lambda: self.client.exists(self.lock_key(primary)), 0):
                return await self.get(primary, fields)
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await asyncio.sleep(min(interval, remaining))
            interval = min(interval * 2, max(max_interval, interval))
        return None

    async def publish(self, message: str) -> None:
        await self._guard(lambda: self.client.publish(self._channel, message), 0)

    def listener(self, on_message: Callable[[str], Awaitable[None] | None]) -> InvalidationListener:
        return InvalidationListener(self.client, on_message, prefix=self.prefix)

    async def ping(self) -> bool:
        return bool(await self._guard(lambda: self.client.ping(), False))

    async def close(self) -> None:
        await aclose(self.client)
