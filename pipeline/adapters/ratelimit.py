"""Fixed-window counters for abuse limits, shared through Redis when there is one.

`WindowLimiter.hit(key, limit, window_seconds)` counts one event under `key` and says
whether it is within `limit` for the current window. With Redis the count is shared
by every web process (INCR and EXPIRE in one round trip); without Redis, or while
Redis does not answer, each process counts for itself (a bounded dict), so a Redis
outage weakens the limit but never blocks the form.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class WindowLimiter:
    def __init__(self, redis: Any | None, namespace: str, *,
                 now: Callable[[], float] = time.time, max_local_keys: int = 100_000):
        self.redis = redis
        self.namespace = namespace
        self.now = now
        self.max_local_keys = max_local_keys
        self._local: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        self._redis_failed_at: float | None = None

    def _key(self, key: str, window_seconds: int) -> tuple[str, int]:
        window = int(self.now() // window_seconds)
        return f"{self.namespace}:{key}:{window}", window

    def count(self, key: str, window_seconds: int) -> int:
        """Count one event under `key`; the events counted in this window so far."""
        full, _ = self._key(key, window_seconds)
        if self.redis is not None and (self._redis_failed_at is None
                                       or self.now() - self._redis_failed_at > 30):
            try:
                pipe = self.redis.pipeline(transaction=False)
                pipe.incr(full)
                pipe.expire(full, window_seconds + 1)
                value, _ = pipe.execute()
                self._redis_failed_at = None
                return int(value)
            except Exception as exc:  # noqa: BLE001 - any Redis fault: count locally
                if self._redis_failed_at is None:
                    log.warning("Rate limits are counted per process: Redis did not "
                                "answer (%s).", type(exc).__name__)
                self._redis_failed_at = self.now()
        with self._lock:
            value = self._local.pop(full, 0) + 1
            self._local[full] = value
            while len(self._local) > self.max_local_keys:
                self._local.popitem(last=False)
            return value

    def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        """Count one event; True while the window's count is within `limit`."""
        return self.count(key, window_seconds) <= limit
