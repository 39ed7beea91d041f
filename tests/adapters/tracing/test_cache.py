"""The in-process cache layer in front of Redis forgets what expired, so a worker's
memory follows the hosts of the last seconds, not every host it ever traced; in front
of Redis it also keeps only the entries used most recently."""

from __future__ import annotations

from pipeline.adapters.tracing import cache as cache_module
from pipeline.adapters.tracing.cache import Cache, MemoryCache


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


def test_a_full_cache_drops_the_entry_used_least_recently():
    cache = MemoryCache(max_items=3)
    cache.set_many({"a": (1, 60.0), "b": (2, 60.0), "c": (3, 60.0)})
    assert cache.get_many(["a"]) == [1]  # read: now the most recently used
    cache.set_many({"d": (4, 60.0)})
    assert len(cache) == 3
    assert cache.get_many(["a", "b", "c", "d"]) == [1, None, 3, 4]


def test_in_front_of_redis_the_local_layer_is_bounded_and_redis_answers_the_rest(
        monkeypatch, redis_client, redis_namespace):
    monkeypatch.setattr(cache_module, "LOCAL_ITEMS_IN_FRONT_OF_REDIS", 10)
    cache = Cache(redis_client, namespace=redis_namespace)
    cache.set_many({f"host-{i}": ({"i": i}, 300.0) for i in range(50)})
    assert len(cache.local) == 10
    assert cache.get_many([f"host-{i}" for i in range(50)]) == [{"i": i} for i in range(50)]
    assert len(cache.local) == 10


def test_without_redis_the_local_layer_is_the_whole_cache():
    cache = Cache(None)
    cache.set_many({f"host-{i}": ({"i": i}, 300.0) for i in range(
        cache_module.LOCAL_ITEMS_IN_FRONT_OF_REDIS + 10)})
    assert cache.get_many(["host-0"]) == [{"i": 0}]


def test_redis_holds_any_json_value_orjson_refuses_included(redis_client, redis_namespace):
    cache = Cache(redis_client, namespace=redis_namespace)
    values = {"plain": {"a": [1, 2.5, None, True, "é"]},
              "wide": {"serial": 2**70},  # wider than orjson's 64 bits
              "int_keys": {1: "one"}}  # orjson wants string keys; JSON makes them so
    cache.set_many({k: (v, 300.0) for k, v in values.items()})
    other = Cache(redis_client, namespace=redis_namespace)  # nothing in its local layer
    assert other.get_many(list(values)) == [
        {"a": [1, 2.5, None, True, "é"]}, {"serial": 2**70}, {"1": "one"}]
