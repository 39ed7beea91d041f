"""Fixed-window abuse limits: shared through Redis, counted per process without it."""

from __future__ import annotations

import logging

from pipeline.adapters.ratelimit import WindowLimiter


def test_the_limits_are_shared_through_redis(redis_url, redis_namespace):
    import redis

    client = redis.Redis.from_url(redis_url)
    first = WindowLimiter(client, f"{redis_namespace}:limit", now=lambda: 1000.0)
    second = WindowLimiter(client, f"{redis_namespace}:limit", now=lambda: 1000.0)
    assert first.hit("addr:x", 2, 60) and second.hit("addr:x", 2, 60)
    assert not first.hit("addr:x", 2, 60)
    assert second.hit("addr:y", 2, 60)
    # Without Redis each process counts for itself.
    alone = WindowLimiter(None, "x", now=lambda: 1000.0)
    assert alone.hit("k", 1, 60) and not alone.hit("k", 1, 60)
    # A Redis that does not answer: counted locally, never an error.
    broken = WindowLimiter(redis.Redis(host="127.0.0.1", port=1, socket_timeout=0.2),
                           "x", now=lambda: 1000.0)
    assert broken.hit("k", 1, 60) and not broken.hit("k", 1, 60)
    client.close()



def test_a_new_window_starts_a_new_count():
    now = [1000.0]
    limiter = WindowLimiter(None, "x", now=lambda: now[0])
    assert limiter.count("k", 60) == 1 and limiter.count("k", 60) == 2
    now[0] = 1019.0  # 1019 // 60 == 1000 // 60: the same window
    assert limiter.count("k", 60) == 3
    now[0] = 1080.0  # the next window
    assert limiter.count("k", 60) == 1
    assert limiter.count("other", 60) == 1  # each key counts for itself


def test_the_local_counts_are_bounded_oldest_first():
    limiter = WindowLimiter(None, "x", now=lambda: 1000.0, max_local_keys=2)
    limiter.count("a", 60)
    limiter.count("b", 60)
    limiter.count("a", 60)  # "a" is now the most recent
    limiter.count("c", 60)  # evicts "b"
    assert limiter.count("a", 60) == 3
    assert limiter.count("b", 60) == 1


class _DeadRedis:
    def __init__(self):
        self.asked = 0

    def pipeline(self, transaction=False):
        self.asked += 1
        raise ConnectionError("down")


def test_a_redis_outage_is_warned_about_once_and_retried_after_30_seconds(caplog):
    now = [1000.0]
    dead = _DeadRedis()
    limiter = WindowLimiter(dead, "x", now=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="pipeline.adapters.ratelimit"):
        assert limiter.count("k", 3600) == 1
        assert limiter.count("k", 3600) == 2
        assert dead.asked == 1  # not asked again at once
        now[0] += 31
        assert limiter.count("k", 3600) == 3
    assert dead.asked == 2
    assert len([r for r in caplog.records if "per process" in r.getMessage()]) == 1
