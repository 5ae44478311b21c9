"""The hit-for-miss memory: remembered for a window after the last answer, bounded in count."""

from __future__ import annotations

import tracemalloc

import pytest

from slipstream import ResponseCache, Settings
from slipstream.cache.coalescing import RecentlyUncacheable


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_key_is_remembered_for_the_window_after_it_was_last_added() -> None:
    clock = Clock()
    keys = RecentlyUncacheable(5.0, clock=clock)
    keys.add("a")
    clock.now += 4
    keys.add("a")  # answered uncacheably again: the window starts over
    clock.now += 4
    assert "a" in keys and "b" not in keys
    clock.now += 1
    assert "a" not in keys
    assert len(keys) == 0


def test_it_holds_at_most_limit_keys_and_drops_expired_ones_on_the_way() -> None:
    clock = Clock()
    keys = RecentlyUncacheable(5.0, limit=3, clock=clock)
    for name in "abcd":
        keys.add(name)
    assert [name in keys for name in "abcd"] == [False, True, True, True]
    clock.now += 10
    keys.add("e")
    assert len(keys) == 1
    keys.discard("e")
    keys.discard("never added")
    assert "e" not in keys


def test_long_urls_cost_a_few_dozen_bytes_each() -> None:
    keys = RecentlyUncacheable(60.0)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for index in range(1000):
            keys.add(f"http://example.test/{index}?q=" + "x" * 10_000)
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(keys) == 1000
    assert kept < 200_000, f"{kept} bytes kept for 1000 keys of 10 kB"


def test_a_zero_window_turns_it_off_and_bad_arguments_are_refused() -> None:
    keys = RecentlyUncacheable(0.0)
    keys.add("a")
    assert "a" not in keys and len(keys) == 0
    with pytest.raises(ValueError, match="window must be at least 0"):
        RecentlyUncacheable(-1.0)
    with pytest.raises(ValueError, match="limit at least 1"):
        RecentlyUncacheable(1.0, limit=0)


def test_the_window_comes_from_the_settings() -> None:
    assert ResponseCache.from_settings(Settings(cache_hit_for_miss=2.5)).uncacheable.window == 2.5


def test_hit_for_miss_answers_remembered_keys_at_once_and_keeps_them_remembered() -> None:
    clock = Clock()
    cache = ResponseCache.from_settings(Settings())
    cache.uncacheable = RecentlyUncacheable(5.0, clock=clock)
    assert cache.hit_for_miss("http://a.test/x") is None  # not remembered: the caller joins or leads a flight
    cache.uncacheable.add("http://a.test/x")
    clock.now += 4
    fill = cache.hit_for_miss("http://a.test/x")
    assert fill is not None and fill.found is None
    fill.not_stored()  # answered uncacheably again: the window starts over
    clock.now += 4
    assert cache.hit_for_miss("http://a.test/x") is not None


def test_hit_for_miss_leaves_keys_to_fill_when_redis_may_have_them() -> None:
    cache = ResponseCache.from_settings(Settings(cache_redis_url="redis://127.0.0.1:1/0"))
    cache.uncacheable.add("http://a.test/x")
    assert "http://a.test/x" in cache.uncacheable
    assert cache.hit_for_miss("http://a.test/x") is None


def test_a_key_added_passing_passes_until_it_is_added_otherwise_expires_or_is_evicted() -> None:
    clock = Clock()
    keys = RecentlyUncacheable(5.0, limit=2, clock=clock)
    keys.add("a", passing=True)
    assert keys.passes("a") and "a" in keys
    keys.add("a")  # refused for one request's sake this time
    assert not keys.passes("a") and "a" in keys
    keys.add("a", passing=True)
    clock.now += 6
    assert not keys.passes("a") and "a" not in keys
    keys.add("b", passing=True)
    keys.add("c", passing=True)
    keys.add("d", passing=True)  # over the limit: the oldest goes, and its passing with it
    assert not keys.passes("b") and keys.passes("c") and keys.passes("d")
    keys.discard("c")
    assert not keys.passes("c") and len(keys._passing) == 1


def test_renewing_a_passing_key_restarts_its_window_once_half_of_it_is_gone() -> None:
    clock = Clock()
    keys = RecentlyUncacheable(10.0, clock=clock)
    keys.add("a")
    keys.renew("a")  # not passing yet: added passing now
    assert keys.passes("a")
    clock.now += 4
    keys.renew("a")  # more than half the window left: unchanged, it ends at 10
    clock.now += 5
    keys.renew("a")  # 1 s left: renewed until 19
    clock.now += 9
    assert keys.passes("a")
    clock.now += 1.5
    assert not keys.passes("a")
