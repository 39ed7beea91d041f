"""`workers.wakeup`: an enqueue wakes the consumer of an idle queue at once, against a
real Redis; a lost wake-up leaves the message to the consumer's poll; a delayed
message publishes nothing.

The consumers here are given a poll backoff of 30 to 60 seconds: a `next()` that
comes back within a few seconds was woken, not polled (no timing is measured)."""

from __future__ import annotations

import threading

import dramatiq
import pytest
import redis

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
    consumer = broker.consume("normalise", prefetch=2, timeout=60_000)
    consumer.misses = 20  # an idle queue: its next backoff is 30-60 s
    return consumer


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
    assert consumer.misses == 0  # the next empty poll starts short again
    consumer.ack(message)


def test_a_lost_wake_up_leaves_the_message_to_the_poll(brokers, monkeypatch):
    worker_side, intake_side = brokers(), brokers()

    def down(*_args, **_kwargs):
        raise redis.ConnectionError("publish lost")

    monkeypatch.setattr(intake_side.client, "publish", down)
    sent = intake_side.enqueue(_message([7]))  # stored and queued all the same
    consumer = worker_side.consume("normalise", prefetch=2, timeout=50)
    message = _polled(consumer)
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
