from __future__ import annotations

import pytest

from slipstream.cache.breaker import CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def open_breaker(clock: FakeClock, max_reset_timeout: float = 30.0) -> CircuitBreaker:
    breaker = CircuitBreaker(reset_timeout=1.0, max_reset_timeout=max_reset_timeout, clock=clock)
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == "open"
    return breaker


def test_defaults() -> None:
    breaker = CircuitBreaker()
    assert (breaker.state, breaker.reset_timeout, breaker.failures_total) == ("closed", 1.0, 0)
    assert breaker.allow()


def test_opens_after_threshold_consecutive_failures() -> None:
    breaker = CircuitBreaker(clock=FakeClock())
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # breaks the run
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed"
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    assert not breaker.allow()
    assert breaker.failures_total == 5


def test_open_then_one_half_open_trial_then_closed() -> None:
    clock = FakeClock()
    breaker = open_breaker(clock)
    clock.now += 0.99
    assert not breaker.allow()
    assert breaker.state == "open"
    clock.now += 0.01
    assert breaker.allow()
    assert breaker.state == "half_open"
    assert not breaker.allow(), "only one trial at a time"
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.reset_timeout == 1.0
    assert all(breaker.allow() for _ in range(10))


def test_failed_trials_double_the_timeout_up_to_the_cap() -> None:
    clock = FakeClock()
    breaker = open_breaker(clock, max_reset_timeout=5.0)
    seen = []
    for _ in range(5):
        clock.now += breaker.reset_timeout
        assert breaker.allow()
        breaker.record_failure()
        assert breaker.state == "open"
        seen.append(breaker.reset_timeout)
    assert seen == [2.0, 4.0, 5.0, 5.0, 5.0]
    clock.now += 4.99
    assert not breaker.allow()
    clock.now += 0.01
    assert breaker.allow()
    breaker.record_success()
    assert (breaker.state, breaker.reset_timeout) == ("closed", 1.0)
    assert breaker.failures_total == 3 + 5
    # Closed again with the base timeout: the next outage opens for 1 s, not 5 s.
    for _ in range(3):
        breaker.record_failure()
    clock.now += 1.0
    assert breaker.allow()


def test_lost_trial_does_not_wedge_half_open() -> None:
    clock = FakeClock()
    breaker = open_breaker(clock)
    clock.now += 1.0
    assert breaker.allow()  # this trial's caller was cancelled and never reports back
    clock.now += 0.5
    assert not breaker.allow()
    clock.now += 0.5
    assert breaker.allow()
    assert breaker.state == "half_open"


def test_late_results_while_open_do_not_change_the_open_period() -> None:
    clock = FakeClock()
    breaker = open_breaker(clock)
    clock.now += 0.5
    breaker.record_success()
    assert breaker.state == "open"
    breaker.record_failure()
    assert breaker.failures_total == 4
    assert breaker.state == "open"
    clock.now += 0.5
    assert breaker.allow()


def test_threshold_of_one() -> None:
    breaker = CircuitBreaker(failure_threshold=1, clock=FakeClock())
    breaker.record_failure()
    assert breaker.state == "open"


@pytest.mark.parametrize(
    ("threshold", "reset", "cap", "message"),
    [(0, 1.0, 30.0, "failure_threshold"), (3, 0.0, 30.0, "reset_timeout"), (3, 2.0, 1.0, "max_reset_timeout")],
)
def test_rejects_bad_settings(threshold: int, reset: float, cap: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CircuitBreaker(failure_threshold=threshold, reset_timeout=reset, max_reset_timeout=cap)


def test_every_state_change_is_told() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(reset_timeout=1.0, clock=clock)
    seen: list[str] = []
    breaker.on_change = seen.append
    for _ in range(3):
        breaker.allow()
        breaker.record_failure()
    clock.now += 1.0
    breaker.allow()  # the trial
    breaker.record_failure()  # fails: open again, for longer
    clock.now += 2.0
    breaker.allow()
    breaker.record_success()
    breaker.record_success()  # no change, nothing told
    assert seen == ["open", "half_open", "open", "half_open", "closed"]
