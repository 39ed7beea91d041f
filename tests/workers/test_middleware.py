"""Worker middleware: stage messages counted with their duration and failures, their
stage and ids bound to log lines, and messages out of retries kept as dead letters."""

from __future__ import annotations

import io
import json
import logging

import dramatiq
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select

from pipeline.core import counters as metrics
from pipeline.core.config import LoggingSection
from pipeline.core.logs import configure
from pipeline.store.models import DeadLetter
from workers import context
from workers.middleware import DeadLetters, StageMetrics


def test_stage_messages_are_counted_with_their_duration_and_failures():
    middleware = StageMetrics()
    broker = StubBroker()
    ok = dramatiq.Message(queue_name="trace", actor_name="trace", args=([1, 2, 3],),
                          kwargs={}, options={})
    bad = dramatiq.Message(queue_name="trace", actor_name="trace", args=([4],), kwargs={},
                           options={})
    before_ok = metrics.STAGE_MESSAGES.labels("trace", "ok")._value.get()
    before_items = metrics.STAGE_ITEMS.labels("trace")._value.get()
    before_fail = metrics.STAGE_FAILURES.labels("trace", "TimeoutError")._value.get()
    for message, exception in ((ok, None), (bad, TimeoutError("slow"))):
        middleware.before_process_message(broker, message)
        middleware.after_process_message(broker, message, exception=exception)
    assert metrics.STAGE_MESSAGES.labels("trace", "ok")._value.get() == before_ok + 1
    assert metrics.STAGE_ITEMS.labels("trace")._value.get() == before_items + 4
    assert metrics.STAGE_FAILURES.labels("trace", "TimeoutError")._value.get() == (
        before_fail + 1)


def test_a_message_being_processed_binds_its_stage_and_ids_to_log_lines():


    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:]
    middleware, broker = StageMetrics(), StubBroker()
    message = dramatiq.Message(queue_name="route", actor_name="route", args=([7, 8],),
                               kwargs={}, options={})
    try:
        configure(LoggingSection(level="INFO", format="json"), stream=stream)
        middleware.before_process_message(broker, message)
        logging.getLogger("pipeline.stages.routing").info("Case 7 routed.")
        middleware.after_process_message(broker, message)
        logging.getLogger("pipeline.stages.routing").info("Idle.")
    finally:
        root.handlers[:] = saved
    inside, after = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["stage"] == "route" and inside["ids"] == [7, 8]
    assert inside["message_id"] == message.message_id
    assert "stage" not in after


def test_a_skipped_message_is_counted_as_skipped():
    middleware = StageMetrics()
    message = dramatiq.Message(queue_name="dedupe", actor_name="dedupe", args=([5],),
                               kwargs={}, options={})
    before = metrics.STAGE_MESSAGES.labels("dedupe", "skipped")._value.get()
    middleware.before_process_message(StubBroker(), message)
    middleware.after_skip_message(StubBroker(), message)
    assert metrics.STAGE_MESSAGES.labels("dedupe", "skipped")._value.get() == before + 1


def test_a_message_out_of_retries_is_kept_as_a_dead_letter(sqlite_runtime):
    message = dramatiq.Message(
        queue_name="trace", actor_name="trace", args=([11, 12],), kwargs={"force": True},
        options={"retries": 4, "traceback": "Traceback (most recent call last):\n"
                 "  ...\nTimeoutError: RDAP server did not answer\n"})
    context.set_runtime(sqlite_runtime)
    try:
        DeadLetters().after_nack(StubBroker(), message)
    finally:
        context.set_runtime(None)
    with sqlite_runtime.session_factory() as session:
        letter = session.scalars(select(DeadLetter)).one()
    assert (letter.message_id, letter.actor, letter.queue) == (
        message.message_id, "trace", "trace")
    assert letter.args == [[11, 12]] and letter.kwargs == {"force": True}
    assert letter.error == "TimeoutError: RDAP server did not answer"
    assert letter.retries == 4 and "Traceback" in letter.traceback
    assert letter.failed_at is not None
