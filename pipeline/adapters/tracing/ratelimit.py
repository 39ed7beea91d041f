"""A per-registry rate limit shared by every worker (Redis), or per process without it.

GCRA (a token bucket kept as one timestamp): a registry may get `burst` questions at
once and `rate` per second after that. A worker waits at most `max_wait_ms`; past that
it raises `RetryLater`, so the message comes back later and the thread moves on.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from pipeline.core.counters import RDAP_RATE_LIMIT_WAIT_SECONDS, RDAP_RATE_LIMIT_WAITS
from pipeline.core.errors import RetryLater

# KEYS[1]: the bucket; ARGV: interval (microseconds per question), burst.
# Returns 0 when the question may go now, else the microseconds to wait.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local wait = new_tat - now - interval * burst
if wait > 0 then return wait end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((interval * burst + interval) / 1000))
return 0
"""


class RateLimiter:
    SCRIPTS = (_GCRA,)  # loaded ahead by processes (`Runtime.connect_ahead`)

    def __init__(
        self,
        rate_per_second: float,
        burst: int,
        *,
        max_wait_ms: int = 250,
        redis: Any | None = None,
        key_prefix: str = "hotline:trace:rate",
    ):
        self.interval_us = int(1_000_000 / rate_per_second)
        self.burst = burst
        self.max_wait_ms = max_wait_ms
        self.redis = redis
        self.key_prefix = key_prefix
        self._script = redis.register_script(_GCRA) if redis is not None else None
        self._lock = threading.Lock()
        self._tat: dict[str, int] = {}

    def _try(self, registry: str) -> int:
        """Microseconds to wait before a question to `registry` may go (0: go now)."""
        if self._script is not None:
            return int(self._script(keys=[f"{self.key_prefix}:{registry}"],
                                    args=[self.interval_us, self.burst]))
        now = int(time.monotonic() * 1_000_000)
        with self._lock:
            tat = max(self._tat.get(registry, now), now)
            new_tat = tat + self.interval_us
            wait = new_tat - now - self.interval_us * self.burst
            if wait > 0:
                return wait
            self._tat[registry] = new_tat
            return 0

    def acquire(self, registry: str) -> None:
        waited_ms = 0.0
        while True:
            wait_us = self._try(registry)
            if wait_us <= 0:
                return
            wait_ms = wait_us / 1000

            RDAP_RATE_LIMIT_WAITS.labels(registry).inc()
            if waited_ms + wait_ms > self.max_wait_ms:
                raise RetryLater(f"RDAP rate limit for {registry} reached",
                                 delay_ms=max(1_000, int(wait_ms) + 100))
            time.sleep(wait_ms / 1000)
            RDAP_RATE_LIMIT_WAIT_SECONDS.labels(registry).inc(wait_ms / 1000)
            waited_ms += wait_ms
