"""The stage actors: one transaction per message, the next stage sent after commit,
passing failures turned into dramatiq retries."""

from __future__ import annotations

import dramatiq
import pytest
from sqlalchemy import select

from pipeline.app.tracers import forget_tracer
from pipeline.core.errors import RetryLater
from pipeline.core.messaging import ROUTE, TRACE
from pipeline.store.models import DeadLetter
from workers import actors, context


@pytest.fixture
def rt(sqlite_runtime):
    context.set_runtime(sqlite_runtime)
    yield sqlite_runtime
    context.set_runtime(None)
    forget_tracer(sqlite_runtime)


def test_a_stage_runs_in_one_transaction_and_its_result_is_sent_on(rt):
    seen = {}

    def stage(session, ids, *, clock):
        seen.update(ids=list(ids), clock=clock, in_transaction=session.in_transaction())
        session.add(DeadLetter(message_id="m1", actor="x", queue="x", args=[], kwargs={},
                               error="e", retries=0, failed_at=clock.now()))
        return [10, 11]

    actors.run_stage(stage, [1, 2], TRACE)
    assert seen == {"ids": [1, 2], "clock": rt.clock, "in_transaction": True}
    assert rt.enqueuer.sent == [(TRACE, [10, 11])]
    with rt.session_factory() as session:  # committed
        assert session.scalars(select(DeadLetter.message_id)).all() == ["m1"]


def test_nothing_is_sent_when_the_stage_hands_nothing_on(rt):
    actors.run_stage(lambda session, ids, *, clock: [], [1], TRACE)
    actors.run_stage(lambda session, ids, *, clock: [5], [1], None)
    assert rt.enqueuer.sent == []


def test_a_passing_failure_rolls_back_and_becomes_a_dramatiq_retry(rt):
    def stage(session, ids, *, clock):
        session.add(DeadLetter(message_id="m2", actor="x", queue="x", args=[], kwargs={},
                               error="e", retries=0, failed_at=clock.now()))
        raise RetryLater("registry answered 429", delay_ms=7_000)

    with pytest.raises(dramatiq.Retry) as caught:
        actors.run_stage(stage, [1], TRACE)
    assert caught.value.delay == 7_000 and "429" in str(caught.value)
    assert rt.enqueuer.sent == []
    with rt.session_factory() as session:
        assert session.scalars(select(DeadLetter)).all() == []


def test_a_trace_retry_is_noted_so_the_reconciler_waits_for_it(rt, monkeypatch):
    noted = []

    def busy(session, ids, *, clock, tracer, rerouted):
        raise RetryLater("RDAP rate limit", delay_ms=30_000)

    monkeypatch.setattr(actors, "trace_cases", busy)
    monkeypatch.setattr(actors, "note_retry", lambda factory, ids, **kw: noted.append(
        (list(ids), kw)))
    with pytest.raises(dramatiq.Retry):
        actors.trace([3, 4])
    assert len(noted) == 1
    ids, kw = noted[0]
    assert ids == [3, 4] and kw["reason"] == "RDAP rate limit"
    assert (kw["retry_at"] - rt.clock.now()).total_seconds() == 30


def test_cases_whose_content_moved_go_straight_to_routing(rt, monkeypatch):
    def moved(session, ids, *, clock, tracer, rerouted):
        rerouted.extend([8])
        return [9]

    monkeypatch.setattr(actors, "trace_cases", moved)
    actors.trace([8, 9])
    assert rt.enqueuer.sent == [(TRACE, [9]), (ROUTE, [8])]
