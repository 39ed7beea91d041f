"""The per-registry RDAP rate limit (GCRA): shared through Redis, waited for briefly,
a retry when the wait would be too long."""

from __future__ import annotations

import pytest

from pipeline.adapters.tracing.ratelimit import RateLimiter
from pipeline.core.counters import RDAP_RATE_LIMIT_WAIT_SECONDS
from pipeline.core.errors import RetryLater


def test_the_rate_limit_is_shared_by_every_worker_through_redis(redis_client, redis_namespace):
    one = RateLimiter(1, 2, max_wait_ms=0, redis=redis_client, key_prefix=redis_namespace)
    two = RateLimiter(1, 2, max_wait_ms=0, redis=redis_client, key_prefix=redis_namespace)
    one.acquire("ripencc")
    two.acquire("ripencc")
    with pytest.raises(RetryLater) as raised:
        one.acquire("ripencc")
    assert raised.value.delay_ms >= 1_000
    two.acquire("arin")  # another registry has its own budget


def test_the_rate_limit_works_in_process_without_redis():
    limiter = RateLimiter(1, 1, max_wait_ms=0)
    limiter.acquire("apnic")
    with pytest.raises(RetryLater):
        limiter.acquire("apnic")


def test_a_short_wait_is_waited_for_and_counted():
    limiter = RateLimiter(50, 1, max_wait_ms=5_000)
    before = RDAP_RATE_LIMIT_WAIT_SECONDS.labels("lacnic")._value.get()
    limiter.acquire("lacnic")
    limiter.acquire("lacnic")  # waits about 20 ms instead of raising
    assert RDAP_RATE_LIMIT_WAIT_SECONDS.labels("lacnic")._value.get() > before


def test_the_burst_allows_that_many_questions_at_once():
    limiter = RateLimiter(0.01, 3, max_wait_ms=0)
    for _ in range(3):
        limiter.acquire("afrinic")
    with pytest.raises(RetryLater) as raised:
        limiter.acquire("afrinic")
    assert raised.value.delay_ms > 90_000  # one question per 100 s: come back much later
