"""A circuit breaker so a slow or absent Redis costs one fast failure, not one timeout per request."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

__all__ = ["CircuitBreaker"]

_State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Closed / open / half-open breaker with a doubling reset timeout; synchronous and loop-agnostic.

    State changes happen only inside `allow()` and `record_*()`, so `state` reads "open" until the next
    `allow()` after the reset timeout turns it into "half_open".
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        reset_timeout: float = 1.0,
        max_reset_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if reset_timeout <= 0:
            raise ValueError("reset_timeout must be positive")
        if max_reset_timeout < reset_timeout:
            raise ValueError("max_reset_timeout must be at least reset_timeout")
        self._threshold = failure_threshold
        self._base_timeout = reset_timeout
        self._max_timeout = max_reset_timeout
        self._clock = clock
        self._state: _State = "closed"
        self._consecutive = 0
        self._timeout = reset_timeout
        self._opened_at = 0.0
        self._trial_started_at = 0.0
        self._failures_total = 0
        # Told the new state ("closed", "open", "half_open") on every change: a gauge, a log.
        self.on_change: Callable[[str], None] | None = None

    @property
    def state(self) -> str:
        """ "closed", "open" or "half_open"; typed as str so callers' comparisons are not narrowed away."""
        return self._state

    @property
    def failures_total(self) -> int:
        return self._failures_total

    @property
    def reset_timeout(self) -> float:
        """The current open period; doubles after each failed half-open trial."""
        return self._timeout

    def allow(self) -> bool:
        if self._state == "closed":
            return True
        now = self._clock()
        if self._state == "open":
            if now - self._opened_at < self._timeout:
                return False
            self._set("half_open")
            self._trial_started_at = now
            return True
        # A trial whose outcome never arrives (its task was cancelled) must not wedge the breaker
        # half-open forever: after another timeout a fresh trial is allowed.
        if now - self._trial_started_at < self._timeout:
            return False
        self._trial_started_at = now
        return True

    def record_success(self) -> None:
        if self._state == "half_open":
            self._set("closed")
            self._timeout = self._base_timeout
        # A late success from a call started before the breaker opened says nothing about now.
        if self._state == "closed":
            self._consecutive = 0

    def record_failure(self) -> None:
        self._failures_total += 1
        if self._state == "half_open":
            self._timeout = min(self._timeout * 2, self._max_timeout)
            self._open()
        elif self._state == "closed":
            self._consecutive += 1
            if self._consecutive >= self._threshold:
                self._open()

    def _open(self) -> None:
        self._set("open")
        self._opened_at = self._clock()
        self._consecutive = 0

    def _set(self, state: _State) -> None:
        self._state = state
        if self.on_change is not None:
            self.on_change(state)
