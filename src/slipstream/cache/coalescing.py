"""Single flight within a process: concurrent misses for one key wait for the first instead of running the app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class SingleFlight:
    """``async with flight.lead(key) as leader``: the first caller leads; the others wait, bounded, until it is done.

    Followers learn nothing from the leader but that it finished: they look the cache up again, and when the
    leader's response was not stored (or the wait timed out) they go to the app themselves.
    """

    def __init__(self) -> None:
        self._flights: dict[str, asyncio.Event] = {}

    def __len__(self) -> int:
        return len(self._flights)

    @contextlib.asynccontextmanager
    async def lead(self, key: str, timeout: float) -> AsyncIterator[bool]:
        """Yields True to the leader, False to a follower once the leader finished or ``timeout`` passed."""
        done = self._flights.get(key)
        if done is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(done.wait(), timeout)
            yield False
            return
        done = self._flights[key] = asyncio.Event()
        try:
            yield True
        finally:
            del self._flights[key]
            done.set()
