"""Helpers shared by the Redis tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from redis.exceptions import ConnectionError as RedisConnectionError

__all__ = ["eventually"]


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await check():
                return
        except RedisConnectionError:  # a test client's connection dropped by a restart: it reconnects next time
            pass
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
