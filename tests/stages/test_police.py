"""The police hold (pipeline/stages/police.py): the police's replies and the hold that
runs out, on SQLite and PostgreSQL. The reply through the API is in
tests/stages/test_routing.py, the use case the API and the CLI share in
tests/app/test_casework.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from pipeline.core.errors import BadInput
from pipeline.core.messaging import DISPATCH
from pipeline.stages.police import NotHeld, PoliceDecision, release_expired_holds, reply
from pipeline.store.audit import verify
from pipeline.store.models import Event
from tests.routing_support import assessed, case_of, notices_of, route


def test_the_police_can_proceed_and_the_held_notices_are_released(runtime):
    case_id = assessed(runtime)
    route(runtime, case_id)
    ref = case_of(runtime, case_id).ref
    later = runtime.clock.advance(hours=2)
    with runtime.session_factory.begin() as session:
        released = reply(session, ref, PoliceDecision.PROCEED, clock=runtime.clock,
                         settings=runtime.settings, actor="police:vtk")
    provider = notices_of(runtime, case_id)[1]
    assert released == [provider.id]
    assert (provider.state, provider.due_at) == ("planned", later)
    assert case_of(runtime, case_id).state == "notified"


def test_the_police_can_keep_holding_with_a_reason_and_take_a_case_over(runtime):
    case_id = assessed(runtime)
    route(runtime, case_id)
    ref = case_of(runtime, case_id).ref
    until = runtime.clock.now() + timedelta(days=10)
    with runtime.session_factory.begin() as session:
        assert reply(session, ref, PoliceDecision.KEEP_HOLDING, clock=runtime.clock,
                     settings=runtime.settings, actor="police:vtk",
                     reason="undercover operation", hold_until=until) == []
    case = case_of(runtime, case_id)
    assert (case.state, case.police_hold_until, case.police_hold_reason) == (
        "police_hold", until, "undercover operation")
    assert notices_of(runtime, case_id)[1].due_at == until
    with runtime.session_factory.begin() as session:
        reply(session, ref, PoliceDecision.TAKE_OVER, clock=runtime.clock,
              settings=runtime.settings, actor="police:vtk", reason="we handle it")
    assert case_of(runtime, case_id).state == "closed"
    assert notices_of(runtime, case_id)[1].state == "cancelled"


def test_a_police_hold_ends_by_itself_at_the_deadline_only_when_configured(
    runtime, settings_factory
):
    case_id = assessed(runtime)
    route(runtime, case_id)
    manual = settings_factory(routing={"police_hold_auto_release": False})
    runtime.clock.advance(hours=71)
    with runtime.session_factory.begin() as session:
        assert release_expired_holds(session, clock=runtime.clock,
                                     settings=runtime.settings) == []
    runtime.clock.advance(hours=2)
    with runtime.session_factory.begin() as session:
        assert release_expired_holds(session, clock=runtime.clock, settings=manual) == []
    assert case_of(runtime, case_id).state == "police_hold"
    with runtime.session_factory.begin() as session:
        released = release_expired_holds(session, clock=runtime.clock,
                                         settings=runtime.settings)
    assert released == [notices_of(runtime, case_id)[1].id]
    case = case_of(runtime, case_id)
    assert case.state == "notified" and case.police_hold_reason == "the police hold ran out"


def test_the_scheduled_job_releases_expired_holds_and_sends_them_to_dispatch(runtime):
    from pipeline.app.scheduler import JOBS

    case_id = assessed(runtime)
    route(runtime, case_id)
    runtime.clock.advance(hours=73)
    job = next(j for j in JOBS if j.name == "police-holds")
    job.run(runtime)
    assert runtime.enqueuer.ids(DISPATCH) == [notices_of(runtime, case_id)[1].id]


def test_the_police_must_give_a_reason_to_keep_holding_or_take_over(runtime):
    case_id = assessed(runtime)
    route(runtime, case_id)
    ref = case_of(runtime, case_id).ref
    for decision in (PoliceDecision.KEEP_HOLDING, PoliceDecision.TAKE_OVER):
        with runtime.session_factory.begin() as session, pytest.raises(BadInput,
                                                                       match="reason"):
            reply(session, ref, decision, clock=runtime.clock, settings=runtime.settings,
                  actor="police:vtk", reason="  ")
    with runtime.session_factory.begin() as session, pytest.raises(BadInput,
                                                                   match="future"):
        reply(session, ref, PoliceDecision.KEEP_HOLDING, clock=runtime.clock,
              settings=runtime.settings, actor="police:vtk", reason="r",
              hold_until=runtime.clock.now() - timedelta(hours=1))
    assert [n.state for n in notices_of(runtime, case_id)] == ["planned", "held"]


def test_a_case_no_longer_held_refuses_a_reply_and_changes_nothing(runtime):
    case_id = assessed(runtime, hosting_country="DE")  # abroad: never held
    route(runtime, case_id)
    ref = case_of(runtime, case_id).ref
    with runtime.session_factory.begin() as session, pytest.raises(NotHeld):
        reply(session, ref, PoliceDecision.PROCEED, clock=runtime.clock,
              settings=runtime.settings, actor="police:vtk")
    assert case_of(runtime, case_id).state == "notified"


def test_each_reply_is_in_the_case_audit_trail_with_who_gave_it(runtime):
    case_id = assessed(runtime)
    route(runtime, case_id)
    ref = case_of(runtime, case_id).ref
    with runtime.session_factory.begin() as session:
        reply(session, ref, PoliceDecision.KEEP_HOLDING, clock=runtime.clock,
              settings=runtime.settings, actor="police:vtk", reason="surveillance")
        reply(session, ref, PoliceDecision.PROCEED, clock=runtime.clock,
              settings=runtime.settings, actor="user:sue")
    with runtime.session_factory() as session:
        events = session.execute(select(Event.action, Event.actor, Event.to_state)
                                 .where(Event.case_id == case_id).order_by(Event.id)).all()
        assert [tuple(e) for e in events][-2:] == [
            ("police_hold_extended", "police:vtk", None),
            ("case_police_cleared", "user:sue", "notified")]
        assert verify(session) == []
    assert runtime.enqueuer.ids(DISPATCH) == []  # the stage sends nothing by itself
