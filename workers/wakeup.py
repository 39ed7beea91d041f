"""Consumers that wake when a message is enqueued, instead of sleeping out their poll.

dramatiq's Redis broker has no blocking fetch: a consumer whose queue is empty polls
it again after a backoff that grows to the worker's timeout (`broker.POLL_MS`,
200 ms), each poll a script call in Redis. So a report taken in by a quiet system
waited up to a fifth of a second before a worker looked at its queue, and again at
each stage it went on to (the first report of an import settled about 130 ms after
it was stored, measured by `make bench`); polling more often would cost every idle
worker a script call per queue every few milliseconds.

Here every enqueue also publishes the queue's name on one Redis channel
(`<namespace>:wakeup`), and one thread per worker process, subscribed to it, wakes
that queue's consumer at once. A lost or late wake-up (Redis restarted, the
subscriber reconnecting) costs only the poll it would have saved: the consumers go
on polling as before, so no message waits on a wake-up. Messages enqueued with a
delay publish nothing: their delay queue is polled as before.

`WakingRedisBroker` is `RedisBroker` with that enqueue and that consumer; the
consumer's `__next__` is dramatiq's (2.2) with its idle sleep made an event's wait.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

import redis
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import compute_backoff
from dramatiq.errors import ConnectionClosed
from dramatiq.message import Message

log = logging.getLogger(__name__)


class _Wakeups:
    """The subscriber of one broker: an event per queue, set when the queue's name is
    published on the channel."""

    def __init__(self, client: redis.Redis, channel: str):
        self.client, self.channel = client, channel
        self.events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def event(self, queue_name: str) -> threading.Event:
        with self._lock:
            event = self.events.setdefault(queue_name, threading.Event())
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="queue-wakeups",
                                                daemon=True)
                self._thread.start()
        return event

    def _run(self) -> None:
        while not self._stopped.is_set():
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.channel)
                while not self._stopped.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    event = self.events.get(message["data"].decode(errors="replace"))
                    if event is not None:
                        event.set()
            except redis.RedisError as exc:  # the consumers poll meanwhile
                log.info("Queue wake-ups paused (%s); consumers poll meanwhile.", exc)
                self._stopped.wait(1.0)
            finally:
                with contextlib.suppress(redis.RedisError):
                    pubsub.close()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=3)


class _WakingConsumer(_RedisConsumer):  # type: ignore[misc]
    def __init__(self, broker: WakingRedisBroker, queue_name: str, prefetch: int,
                 timeout: int):
        super().__init__(broker, queue_name, prefetch, timeout)
        self.wakeup = broker.wakeups.event(queue_name)

    def __next__(self) -> MessageProxy | None:
        try:
            while True:
                try:
                    data = self.message_cache.pop(0)
                    if data is None:
                        continue
                    self.misses = 0
                    message = Message.decode(data)
                    self.queued_message_ids.add(message.message_id)
                    return MessageProxy(message)
                except IndexError:
                    # Cleared before the fetch: a message enqueued from now on, fetched
                    # or not, leaves the event set for the wait below. (Also when no
                    # fetch is due, the prefetched messages still being worked on: a
                    # wake-up seen before must not make the wait return at once, over
                    # and over: a busy consumer spun on it, measured in the benchmark.)
                    self.wakeup.clear()
                    messages = []
                    if self.outstanding_message_count < self.prefetch:
                        self.message_cache = messages = self.broker.do_fetch(
                            self.queue_name, self.prefetch - self.outstanding_message_count)
                    if not messages:
                        self.misses, backoff_ms = compute_backoff(
                            self.misses, max_backoff=self.timeout)
                        if self.wakeup.wait(backoff_ms / 1000):
                            self.misses = 0
                        return None
        except redis.ConnectionError as exc:
            raise ConnectionClosed(exc) from None


class WakingRedisBroker(RedisBroker):  # type: ignore[misc]
    """`RedisBroker` whose enqueue wakes the queue's consumers in every worker."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.wakeup_channel = f"{self.namespace}:wakeup"
        self.wakeups = _Wakeups(self.client, self.wakeup_channel)

    @property
    def consumer_class(self) -> type[_WakingConsumer]:
        return _WakingConsumer

    def enqueue(self, message: Message, *, delay: int | None = None) -> Message:
        sent = super().enqueue(message, delay=delay)
        if delay is None:
            try:
                self.client.publish(self.wakeup_channel, sent.queue_name)
            except redis.RedisError as exc:  # stored and queued: the poll finds it
                log.info("Could not wake the consumers of %s (%s).", sent.queue_name, exc)
        return sent

    def close(self) -> None:
        self.wakeups.stop()
        super().close()


def wait_for_subscriber(broker: WakingRedisBroker, timeout: float = 5.0) -> bool:
    """True once the broker's wake-up channel has a subscriber (tests, start-up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = broker.client.pubsub_numsub(broker.wakeup_channel)
        if counts and counts[0][1] > 0:
            return True
        time.sleep(0.01)
    return False
