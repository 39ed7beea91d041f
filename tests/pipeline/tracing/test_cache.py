"""The in-process cache layer in front of Redis forgets what expired, so a worker's
memory follows the hosts of the last seconds, not every host it ever traced."""

from __future__ import annotations

from pipeline.tracing import cache as cache_module
from pipeline.tracing.cache import MemoryCache


def test_expired_entries_are_swept_out_not_kept_until_the_cache_is_full(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(cache_module.time, "monotonic", lambda: now[0])
    cache = MemoryCache(max_items=1_000_000)
    cache.set_many({f"host-{i}": ({"i": i}, 30.0) for i in range(5_000)})
    cache.add_to_set("lengths", ["24"])  # sets never expire
    assert len(cache) == 5_001
    now[0] += 31  # the first batch expired; a new one arrives after the sweep interval
    cache.set_many({f"other-{i}": ({"i": i}, 30.0) for i in range(10)})
    assert len(cache) == 11
    assert cache.get_many(["host-1", "other-1"]) == [None, {"i": 1}]
    assert cache.members("lengths") == {"24"}


def test_entries_that_have_not_expired_stay():
    cache = MemoryCache()
    cache.set_many({"a": (1, 60.0)})
    cache._swept -= MemoryCache.SWEEP_SECONDS + 1
    cache.set_many({"b": (2, 60.0)})
    assert cache.get_many(["a", "b"]) == [1, 2]
