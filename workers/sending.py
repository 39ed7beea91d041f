"""Sending stage messages to a Redis broker without loading the stages.

A process that only takes reports in (`hotline import`, `hotline submit`) needs to
put messages on the stage queues, not to run them: `workers.broker.install` imports
every actor and with them every stage (about a sixth of `hotline import`'s start-up,
python -X importtime). `MessageSender` builds the same message `Actor.send` builds
(each actor's name and queue are its stage's name, held by a test) and enqueues it
through a `WakingRedisBroker` of its own (the enqueue wakes the queue's consumers) with
no middleware: none of the configured middleware acts when a message is enqueued.
"""

from __future__ import annotations

from collections.abc import Sequence

import dramatiq

from pipeline.core.config import Settings
from pipeline.core.messaging import chunks
from workers.wakeup import WakingRedisBroker


class MessageSender:
    """An `Enqueuer` for processes that send and never consume."""

    def __init__(self, settings: Settings):
        self.batch_size = settings.worker.batch_size
        self.broker = WakingRedisBroker(url=settings.broker.url,
                                        namespace=settings.broker.namespace, middleware=[])

    def send(self, stage: str, ids: Sequence[int]) -> None:
        for batch in chunks(list(ids), self.batch_size):
            self.broker.enqueue(dramatiq.Message(queue_name=stage, actor_name=stage,
                                                 args=(batch,), kwargs={}, options={}))

    def close(self) -> None:
        self.broker.close()
