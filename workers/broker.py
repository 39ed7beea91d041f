"""Choosing and wiring the broker: Redis when configured, in-process otherwise."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from pipeline.app.runtime import Runtime, load_scripts
from pipeline.core.collector import settle_collector
from pipeline.core.config import Settings
from pipeline.core.errors import ConfigError
from pipeline.core.messaging import chunks
from pipeline.domain.urls import warm_up
from workers import context
from workers.actors import ACTORS
from workers.middleware import DeadLetters, StageMetrics
from workers.wakeup import WakingRedisBroker

log = logging.getLogger(__name__)

def make_broker(settings: Settings) -> dramatiq.Broker:
    middleware = [
        AgeLimit(),
        TimeLimit(time_limit=settings.worker.time_limit_ms),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(
            max_retries=settings.worker.max_retries,
            min_backoff=settings.worker.min_backoff_ms,
            max_backoff=settings.worker.max_backoff_ms,
        ),
        DeadLetters(),
        StageMetrics(),
    ]
    if settings.broker.is_redis:
        return WakingRedisBroker(
            url=settings.broker.url,
            namespace=settings.broker.namespace,
            heartbeat_timeout=settings.broker.heartbeat_timeout_ms,
            maintenance_chance=settings.broker.maintenance_per_million,
            middleware=middleware,
        )
    broker = StubBroker(middleware=middleware)
    broker.emit_after("process_boot")
    return broker


class BrokerEnqueuer:
    """Sends stage messages through the actors, `batch_size` ids per message."""

    def __init__(self, batch_size: int):
        self.batch_size = batch_size

    def send(self, stage: str, ids: Sequence[int]) -> None:
        actor = ACTORS[stage]
        for batch in chunks(list(ids), self.batch_size):
            actor.send(batch)


def connect_ahead(broker: dramatiq.Broker) -> None:
    """Open the Redis broker's connection and load dramatiq's scripts there now, as
    a web app or a worker starts (`Runtime.connect_ahead` does the same for the
    database and the project's Redis): otherwise the first enqueue opens the
    connection and meets NOSCRIPT first (measured: 8 ms of a new web app's first
    one-report import commit under cProfile, against about 1 after)."""
    if not isinstance(broker, RedisBroker):
        return
    try:
        load_scripts(broker.client, [script.script for script in broker.scripts.values()])
    except redis.RedisError as exc:
        log.info("Could not reach the broker ahead (%s); the first message will try again.",
                 exc)


def install(runtime: Runtime) -> dramatiq.Broker:
    """Make the configured broker this process's broker and bind every actor to it."""
    broker = make_broker(runtime.settings)
    for actor in ACTORS.values():
        actor.broker = broker
        broker.declare_actor(actor)
    dramatiq.set_broker(broker)
    runtime.enqueuer = BrokerEnqueuer(runtime.settings.worker.batch_size)
    context.set_runtime(runtime)
    return broker


# How long a consumer of an idle queue waits between polls, at most (ms). A queue
# with work is polled again at once; an idle one backs off up to this (dramatiq's
# default is 1,000). Each poll is a script call in Redis: 200 halves the polling of
# the ten queues of every worker against 100 (measured with MONITOR). With Redis an
# enqueue wakes the queue's consumers at once (`workers.wakeup`): the poll is what
# finds a message whose wake-up was lost.
POLL_MS = 200


def start_worker(broker: dramatiq.Broker, threads: int) -> dramatiq.Worker:

    warm_up()
    settle_collector()
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=POLL_MS)
    worker.start()
    return worker


def check_broker_safe(settings: Settings) -> None:
    """Refuse a Redis whose eviction policy could silently drop queued messages."""

    if not settings.broker.is_redis:
        return

    client = redis.Redis.from_url(settings.broker.url)
    try:
        policy = client.config_get("maxmemory-policy").get("maxmemory-policy", "noeviction")
    except redis.exceptions.ResponseError:  # CONFIG disabled (managed Redis): trust it
        log.warning("Could not read the broker's maxmemory-policy; make sure it is noeviction.")
        return
    finally:
        client.close()
    if policy != "noeviction":
        raise ConfigError([
            f"broker.url: Redis maxmemory-policy is {policy!r}; it must be 'noeviction' "
            "or queued reports could be evicted"
        ])


def drain(broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
    """Wait until every queue of an in-process broker is empty (stages send on to
    later queues, so go round until nothing is left)."""
    assert isinstance(broker, StubBroker)
    while True:
        for queue in sorted(broker.get_declared_queues()):
            broker.join(queue, fail_fast=False)
        worker.join()
        if not any(q.unfinished_tasks for q in broker.queues.values()):
            return
