"""`workers.wakeup`: an enqueue wakes the consumer of an idle queue at once, against a
real Redis; a lost wake-up leaves the message to the consumer's poll; a delayed
message publishes nothing.

The consumers here are given polls of 60 seconds: a `next()` that comes back within a
few seconds was woken, not polled (no timing is measured). Fetches are counted, never
timed."""

from __future__ import annotations

import threading

import dramatiq
import pytest
import redis

from workers import wakeup
from workers.wakeup import WakingRedisBroker, wait_for_subscriber


@pytest.fixture
def brokers(redis_url, redis_namespace):
    made: list[WakingRedisBroker] = []

    def make() -> WakingRedisBroker:
        broker = WakingRedisBroker(url=redis_url, namespace=redis_namespace, middleware=[])
        broker.declare_queue("normalise")
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.close()


def _message(ids):
    return dramatiq.Message(queue_name="normalise", actor_name="normalise", args=(ids,),
                            kwargs={}, options={})


def _idle_consumer(broker):
    return broker.consume("normalise", prefetch=2, timeout=60_000)


def _polled(consumer):
    """The next message, polled for as a worker's consumer thread does."""
    for _ in range(200):
        message = next(consumer)
        if message is not None:
            return message
    raise AssertionError("no message came")


def _next_in_thread(consumer):
    got: list = []
    thread = threading.Thread(target=lambda: got.append(next(consumer)), daemon=True)
    thread.start()
    return thread, got


def test_an_enqueue_in_another_process_wakes_the_idle_consumer(brokers):
    worker_side, intake_side = brokers(), brokers()
    consumer = _idle_consumer(worker_side)
    assert wait_for_subscriber(worker_side)
    thread, got = _next_in_thread(consumer)
    sent = intake_side.enqueue(_message([1, 2]))
    thread.join(timeout=10)
    assert not thread.is_alive(), "the consumer slept out its backoff"
    # Woken during its wait (or it fetched the message before waiting at all).
    message = got[0] or next(consumer)
    assert message is not None and message.message_id == sent.message_id
    assert message.args == ([1, 2],)
    consumer.ack(message)


def test_a_lost_wake_up_leaves_the_message_to_the_poll(brokers, monkeypatch):
    worker_side, intake_side = brokers(), brokers()

    def down(*_args, **_kwargs):
        raise redis.ConnectionError("publish lost")

    monkeypatch.setattr(intake_side.client, "publish", down)
    consumer = worker_side.consume("normalise", prefetch=2, timeout=50)
    assert next(consumer) is None  # fetched from the empty queue
    sent = intake_side.enqueue(_message([7]))  # stored and queued all the same
    message = _polled(consumer)  # the fetch due FETCH_IDLE_MS after the first
    assert message.message_id == sent.message_id
    consumer.ack(message)


def test_a_delayed_message_publishes_nothing(brokers, redis_client):
    broker = brokers()
    listener = redis_client.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(broker.wakeup_channel)
    try:
        broker.enqueue(_message([3]), delay=60_000)
        broker.enqueue(_message([4]))
        published = []
        for _ in range(50):
            found = listener.get_message(timeout=0.1)
            if found is not None:
                published.append(found["data"])
            if published:
                break
        assert published == [b"normalise"]  # the undelayed one only
    finally:
        listener.close()


def test_the_subscriber_stops_with_the_broker(brokers):
    broker = brokers()
    broker.consume("normalise", prefetch=1, timeout=1_000)
    assert wait_for_subscriber(broker)
    broker.close()
    assert broker.wakeups._thread is not None and not broker.wakeups._thread.is_alive()


def test_a_busy_consumer_does_not_spin_on_a_wake_up_it_has_seen(brokers):
    """With its prefetched messages still being worked on a consumer fetches nothing;
    a wake-up it was given before must not make each of its waits return at once
    (a busy loop: measured in the benchmark as a worker's CPU per report up by half)."""
    broker = brokers()
    broker.enqueue(_message([5]))
    consumer = broker.consume("normalise", prefetch=1, timeout=1_000)
    held = _polled(consumer)
    assert consumer.outstanding_message_count == 1
    consumer.wakeup.set()  # a wake-up that came while the message was worked on
    assert next(consumer) is None
    assert not consumer.wakeup.is_set()  # it waited; it did not return at once
    consumer.ack(held)


def _count_fetches(broker, monkeypatch):
    fetches: list[str] = []
    real = broker.do_fetch

    def counted(queue_name, prefetch):
        fetches.append(queue_name)
        return real(queue_name, prefetch)

    monkeypatch.setattr(broker, "do_fetch", counted)
    return fetches


def test_an_idle_consumer_polls_without_fetching_until_one_is_due(brokers, monkeypatch):
    """Each poll returns to the consumer thread (delayed messages, shutdown), but a
    fetch (a script call in Redis) is made only when woken or every FETCH_IDLE_MS."""
    broker = brokers()
    fetches = _count_fetches(broker, monkeypatch)
    consumer = broker.consume("normalise", prefetch=2, timeout=1)
    assert next(consumer) is None
    assert fetches == ["normalise"]
    monkeypatch.setattr(wakeup, "FETCH_IDLE_MS", 60_000)
    for _ in range(20):
        assert next(consumer) is None
    assert fetches == ["normalise"]  # dramatiq's consumer would have fetched 21 times
    consumer.wakeup.set()
    assert next(consumer) is None
    assert fetches == ["normalise"] * 2  # woken: fetched at once
    monkeypatch.setattr(wakeup, "FETCH_IDLE_MS", 0)
    assert next(consumer) is None
    assert fetches == ["normalise"] * 3  # due: fetched without a wake-up


def test_an_ack_makes_room_and_the_next_message_is_fetched_at_once(brokers, monkeypatch):
    """A consumer whose prefetch is full fetches nothing; the ack of a message wakes it,
    so the queue's next message is not left waiting for a poll (60 s here)."""
    broker = brokers()
    monkeypatch.setattr(wakeup, "FETCH_IDLE_MS", 60_000)
    broker.enqueue(_message([8]))
    broker.enqueue(_message([9]))
    consumer = broker.consume("normalise", prefetch=1, timeout=60_000)
    first = next(consumer)
    assert first is not None and first.args == ([8],)
    consumer.ack(first)
    thread, got = _next_in_thread(consumer)
    thread.join(timeout=10)
    assert not thread.is_alive(), "the ack did not wake the consumer"
    assert got[0] is not None and got[0].args == ([9],)
    consumer.ack(got[0])
