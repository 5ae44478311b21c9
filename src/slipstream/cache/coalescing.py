"""Single flight within a process: concurrent misses for one key wait for the first instead of running the app,
for as long as the first may still store what it gets, and keys lately answered uncacheably do not wait at all."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable


class Flight:
    """One caller's place in a flight. The leader calls `step_aside()` once its response will not be stored."""

    def __init__(self, flights: SingleFlight, key: str, done: asyncio.Event | None) -> None:
        self.leading = done is not None
        self._flights = flights
        self._key = key
        self._done = done

    def step_aside(self) -> None:
        """Let the followers go now (they look the cache up again, then call the app themselves); idempotent."""
        done, self._done = self._done, None
        if done is not None:
            self._flights.land(self._key, done)


class SingleFlight:
    """``async with flight.lead(key) as flight``: the first caller leads; the others wait, bounded, until it is done
    or steps aside.

    Followers learn nothing from the leader but that it finished: they look the cache up again, and when the
    leader's response was not stored (or the wait timed out) they go to the app themselves.
    """

    def __init__(self) -> None:
        self._flights: dict[str, asyncio.Event] = {}

    def __len__(self) -> int:
        return len(self._flights)

    def land(self, key: str, done: asyncio.Event) -> None:
        """End the flight ``done`` of ``key``: its followers go, and the next caller leads a new one."""
        if self._flights.get(key) is done:
            del self._flights[key]
        done.set()

    @contextlib.asynccontextmanager
    async def lead(self, key: str, timeout: float) -> AsyncIterator[Flight]:
        """Yields the leader's Flight at once, a follower's once the leader is done or aside, or ``timeout`` passed."""
        done = self._flights.get(key)
        if done is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(done.wait(), timeout)
            yield Flight(self, key, None)
            return
        done = self._flights[key] = asyncio.Event()
        flight = Flight(self, key, done)
        try:
            yield flight
        finally:
            flight.step_aside()


class RecentlyUncacheable:
    """Varnish's hit-for-miss: keys whose response was just not stored, so that requests for them do not wait on
    one another. Each is remembered for ``window`` seconds after it was last added, at most ``limit`` keys (the
    oldest go first), by its hash: a few dozen bytes a key, however long the URL. (Two URLs sharing a 64-bit
    hash would only mean one of them is not coalesced for a while.)

    A key added ``passing`` was refused for its response's fields alone, whatever the request (a dynamic page
    without any freshness): `passes` tells the cache it may hand such a request to the app without keeping a copy."""

    def __init__(self, window: float, limit: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        if window < 0 or limit < 1:
            raise ValueError("window must be at least 0 and limit at least 1")
        self.window = window
        self.limit = limit
        self._clock = clock
        self._until: OrderedDict[int, float] = OrderedDict()  # in order of expiry: every key gets the same window
        self._passing: set[int] = set()  # those of them added passing

    def __len__(self) -> int:
        return len(self._until)

    def __contains__(self, key: str) -> bool:
        return self._remembered(hash(key))

    def passes(self, key: str) -> bool:
        """Whether ``key`` is remembered, and was added ``passing``."""
        digest = hash(key)
        return digest in self._passing and self._remembered(digest)

    def _remembered(self, digest: int) -> bool:
        until = self._until.get(digest)
        if until is None:
            return False
        if until > self._clock():
            return True
        del self._until[digest]
        self._passing.discard(digest)
        return False

    def add(self, key: str, passing: bool = False) -> None:
        if self.window <= 0:
            return
        now = self._clock()
        digest = hash(key)
        self._until[digest] = now + self.window
        self._until.move_to_end(digest)
        if passing:
            self._passing.add(digest)
        else:
            self._passing.discard(digest)
        while self._until and (len(self._until) > self.limit or next(iter(self._until.values())) <= now):
            self._passing.discard(self._until.popitem(last=False)[0])

    def renew(self, key: str) -> None:
        """`add` ``key`` passing again, if less than half its window is left: a passing URL refused once more, at
        most one bookkeeping step every half window rather than one a request."""
        digest = hash(key)
        until = self._until.get(digest)
        if until is None or digest not in self._passing or until - self._clock() < self.window / 2:
            self.add(key, passing=True)

    def discard(self, key: str) -> None:
        digest = hash(key)
        self._until.pop(digest, None)
        self._passing.discard(digest)
