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
subscriber reconnecting) costs at most `FETCH_IDLE_MS`: the consumers go on
fetching that often, so no message waits on a wake-up. Messages enqueued with a
delay publish nothing: their delay queue is fetched from that often.

Since every enqueue wakes, a consumer need not fetch at each of its polls as
dramatiq's does (whose polls ramp up from a few milliseconds after each message): it
fetches when woken, when an ack or a nack of its own has made room in its prefetch,
and otherwise once every `FETCH_IDLE_MS`. Between fetches it still returns to its
consumer thread every poll (`broker.POLL_MS`), so delayed messages come due and a
shutdown is seen as before. With the ramp, the ten consumers of each of two workers
made about 5,400 fetches (script calls of about 85 microseconds in Redis, several
times that in the worker) while an import of 20,000 reports sent 31 messages.

`WakingRedisBroker` is `RedisBroker` with that enqueue and that consumer; the
consumer's `__next__` is dramatiq's (2.2) with its idle sleep made an event's wait
and its fetch made conditional as above.
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
from dramatiq.errors import ConnectionClosed
from dramatiq.message import Message

log = logging.getLogger(__name__)

# How often a consumer fetches from its queue without a wake-up (ms): what finds a
# message whose wake-up was lost, a dead worker's message put back by the broker's
# maintenance, and a delayed message (a retry, at least worker.min_backoff_ms ahead)
# on a delay queue. Each fetch is a script call in Redis, and keeps the worker's
# heartbeat (broker.heartbeat_timeout_ms, 10 s) fresh: each of a worker's ten
# consumers makes one at least this often.
FETCH_IDLE_MS = 1_000


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
        self._fetched_at = -float("inf")  # monotonic time of the last fetch

    def __next__(self) -> MessageProxy | None:
        try:
            while True:
                try:
                    data = self.message_cache.pop(0)
                    if data is None:
                        continue
                    message = Message.decode(data)
                    self.queued_message_ids.add(message.message_id)
                    return MessageProxy(message)
                except IndexError:
                    # Cleared before the fetch: a message enqueued from now on, fetched
                    # or not, sets the event again for the next call. Cleared only when
                    # set: one set after an unset event was read is kept, not lost.
                    woken = self.wakeup.is_set()
                    if woken:
                        self.wakeup.clear()
                    now = time.monotonic()
                    messages = []
                    due = now - self._fetched_at >= FETCH_IDLE_MS / 1000
                    if (woken or due) and self.outstanding_message_count < self.prefetch:
                        self._fetched_at = now
                        self.message_cache = messages = self.broker.do_fetch(
                            self.queue_name, self.prefetch - self.outstanding_message_count)
                    if not messages:
                        # One poll, then back to the consumer thread (delayed messages,
                        # shutdown); a wake-up ends it at once. A busy consumer (its
                        # prefetch full) cleared the wake-up above: it waits too.
                        self.wakeup.wait(self.timeout / 1000)
                        return None
        except redis.ConnectionError as exc:
            raise ConnectionClosed(exc) from None

    def ack(self, message: MessageProxy) -> None:
        super().ack(message)
        self.wakeup.set()  # room in the prefetch: fetch again at the next call

    def nack(self, message: MessageProxy) -> None:
        super().nack(message)
        self.wakeup.set()


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
