"""Invalidation broadcasts: a background subscriber that survives Redis going away and coming back."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

logger = logging.getLogger("slipstream.cache.redis_store")
# RedisClusterException (a cluster that lost a slot, say) is not a RedisError.
ERRORS = (RedisError, RedisClusterException, OSError, asyncio.TimeoutError)


async def aclose(resource: Any) -> None:
    # aclose() arrived in redis 5.0.1; close() is its deprecated alias there and the only name in 5.0.0.
    with suppress(*ERRORS):
        await (getattr(resource, "aclose", None) or resource.close)()


class InvalidationListener:
    """Background subscriber to the invalidation channel that resubscribes with capped backoff."""

    def __init__(
        self,
        client: Redis | RedisCluster,
        on_message: Callable[[str], Awaitable[None] | None],
        *,
        prefix: str = "slipstream:",
        initial_backoff: float = 0.1,
        max_backoff: float = 5.0,
        poll_timeout: float = 0.25,
    ) -> None:
        self.client = client
        self.channel = prefix + "invalidate"
        self.reconnects = 0
        self.subscribed = False
        self._on_message = on_message
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._poll_timeout = poll_timeout
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name="slipstream-invalidation")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        task.cancel()
        # redis-py's get_message can swallow a cancellation; the stop flag then ends the loop at the next poll.
        await asyncio.wait({task}, timeout=self._poll_timeout + 1.0)

    async def _run(self) -> None:
        # Runs until stop() cancels it; each failure costs one bounded sleep before resubscribing.
        backoff = self._initial_backoff
        failed = False
        while not self._stopping:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.subscribed = True
                if failed:
                    self.reconnects += 1
                    failed = False
                backoff = self._initial_backoff
                while not self._stopping:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=self._poll_timeout)
                    if message is not None and message["type"] == "message":
                        await self._deliver(message["data"])
            except Exception as exc:
                logger.warning("invalidation listener lost its subscription: %r", exc)
                failed = True
            finally:
                self.subscribed = False
                await aclose(pubsub)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)

    async def _deliver(self, data: bytes | str) -> None:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        try:
            result = self._on_message(text)
            if inspect.isawaitable(result):
                await result
        except Exception:
            # A broken callback must not cost the subscription: log it and keep listening.
            logger.exception("invalidation callback failed for %r", text)
