"""The signature guard's key cache: bounded in time and size, so revocation has a window."""

from __future__ import annotations

from gateway.partner_state import KEY_CACHE_TTL_S, KeyCache
from gateway.rate_limit import LocalCounts


class Clock:
    def __init__(self) -> None:
        self.now_s = 1_000.0

    def __call__(self) -> float:
        return self.now_s


def test_an_entry_is_served_until_its_ttl_then_read_again() -> None:
    clock = Clock()
    cache: KeyCache[str] = KeyCache(ttl_s=2.0, clock=clock)
    cache.put("pk_a", "opened", read_at_s=clock())
    clock.now_s += 1.9
    assert cache.get("pk_a") == "opened"
    clock.now_s += 0.1
    assert cache.get("pk_a") is None  # a revocation is seen by the next read
    assert len(cache) == 0


def test_the_ttl_counts_from_before_the_row_was_read() -> None:
    clock = Clock()
    cache: KeyCache[str] = KeyCache(ttl_s=2.0, clock=clock)
    read_at_s = clock()
    clock.now_s += 1.5  # a slow lookup: the row may already be 1.5 s old
    cache.put("pk_a", "opened", read_at_s=read_at_s)
    clock.now_s += 0.5
    assert cache.get("pk_a") is None


def test_the_cache_never_holds_more_than_its_bound_and_drops_the_oldest() -> None:
    clock = Clock()
    cache: KeyCache[int] = KeyCache(entries_max=3, clock=clock)
    for i in range(10):
        cache.put(f"pk_{i}", i, read_at_s=clock())
        assert len(cache) <= 3
    assert [cache.get(f"pk_{i}") for i in range(10)] == [None] * 7 + [7, 8, 9]


def test_forget_drops_a_key_at_once() -> None:
    cache: KeyCache[str] = KeyCache()
    cache.put("pk_a", "opened", read_at_s=cache.clock())
    cache.forget("pk_a")
    assert cache.get("pk_a") is None


def test_the_default_window_refuses_a_revoked_key_within_five_seconds() -> None:
    assert 0 < KEY_CACHE_TTL_S <= 5.0


def test_local_counts_are_per_key_and_per_window() -> None:
    counts = LocalCounts()
    assert [counts.count("pk_a", 100.2) for _ in range(3)] == [1, 2, 3]
    assert counts.count("pk_b", 100.5) == 1
    counts.uncount("pk_a", 100)
    assert counts.count("pk_a", 100.9) == 3
    assert counts.count("pk_a", 101.0) == 1  # a new window starts from zero
    assert counts.count("pk_a", 100.99) == 1  # a late call of the old window counts alone
