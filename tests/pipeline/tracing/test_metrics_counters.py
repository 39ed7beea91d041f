"""The tracer counts RDAP cache hits and misses and rate-limit waits for /metrics."""

from __future__ import annotations

import pytest

from pipeline.errors import RetryLater
from pipeline.metrics import RDAP_CACHE, RDAP_RATE_LIMIT_WAITS
from pipeline.tracing.cache import Cache, PrefixCache
from pipeline.tracing.ratelimit import RateLimiter


def _value(counter, *labels):
    return counter.labels(*labels)._value.get()


def test_network_cache_look_ups_count_hits_and_misses():
    cache = PrefixCache(Cache(), "net")
    cache.store(["192.0.2.0/24"], {"asn": 64500}, ttl=60)
    hits, misses = _value(RDAP_CACHE, "hit"), _value(RDAP_CACHE, "miss")
    found = cache.lookup_many(["192.0.2.10", "192.0.2.11", "198.51.100.1"])
    assert found["192.0.2.10"] == {"asn": 64500} and found["198.51.100.1"] is None
    assert _value(RDAP_CACHE, "hit") - hits == 2
    assert _value(RDAP_CACHE, "miss") - misses == 1


def test_a_rate_limit_wait_is_counted_even_when_it_becomes_a_retry():
    limiter = RateLimiter(rate_per_second=0.01, burst=1, max_wait_ms=10)
    before = _value(RDAP_RATE_LIMIT_WAITS, "test-rir")
    limiter.acquire("test-rir")  # the burst allows one at once
    with pytest.raises(RetryLater):
        limiter.acquire("test-rir")
    assert _value(RDAP_RATE_LIMIT_WAITS, "test-rir") - before == 1
