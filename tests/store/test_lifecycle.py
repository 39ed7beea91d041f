"""Every allowed transition works, stamps its time and is audited; every other one is
refused with a named error."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import select

from pipeline.core.errors import IllegalTransition
from pipeline.store.audit import verify
from pipeline.store.lifecycle import transition
from pipeline.store.models import Event
from pipeline.store.states import (
    CASE_TRANSITIONS,
    OPEN_CASE_STATES,
    REPORT_TRANSITIONS,
    CaseState,
    ReportState,
)
from tests.factories import make_case, make_report

CASE_MOVES = [pair for pair in CASE_TRANSITIONS if pair[0] is not None]
REPORT_MOVES = [pair for pair in REPORT_TRANSITIONS if pair[0] is not None]
CASE_FORBIDDEN = [
    pair for pair in itertools.product(CaseState, CaseState) if pair not in CASE_TRANSITIONS
]
REPORT_FORBIDDEN = [
    pair for pair in itertools.product(ReportState, ReportState)
    if pair not in REPORT_TRANSITIONS
]


@pytest.mark.parametrize(("from_state", "to_state"), CASE_MOVES,
                         ids=[f"{a}->{b}" for a, b in CASE_MOVES])
def test_each_allowed_case_transition_stamps_its_time_and_writes_an_event(
    sqlite_runtime, from_state, to_state
):
    clock = sqlite_runtime.clock
    with sqlite_runtime.session_factory.begin() as session:
        case = make_case(session, at=clock.now(), state=from_state)
        later = clock.advance(minutes=5)
        transition(session, case, to_state, at=later, actor="analyst:ana")
        assert case.state == to_state
        assert case.state_changed_at == later
        assert getattr(case, f"{to_state.value}_at") == later
        assert (case.open_key is not None) == (to_state in OPEN_CASE_STATES)
    with sqlite_runtime.session_factory() as session:
        event = session.execute(select(Event).where(Event.case_id == case.id)).scalar_one()
        assert (event.from_state, event.to_state) == (from_state.value, to_state.value)
        assert event.actor == "analyst:ana"
        assert event.action == CASE_TRANSITIONS[(from_state, to_state)]
        assert verify(session) == []


@pytest.mark.parametrize(("from_state", "to_state"), REPORT_MOVES,
                         ids=[f"{a}->{b}" for a, b in REPORT_MOVES])
def test_each_allowed_report_transition_stamps_its_time_and_writes_an_event(
    sqlite_runtime, from_state, to_state
):
    clock = sqlite_runtime.clock
    with sqlite_runtime.session_factory.begin() as session:
        report = make_report(session, at=clock.now(), state=from_state)
        later = clock.advance(seconds=3)
        transition(session, report, to_state, at=later)
        assert report.state == to_state
        assert getattr(report, f"{to_state.value}_at") in (later, report.received_at)
    with sqlite_runtime.session_factory() as session:
        event = session.execute(select(Event).where(Event.report_id == report.id)).scalar_one()
        assert event.to_state == to_state.value
        assert event.stream == f"report:{report.ref}"


@pytest.mark.parametrize(("from_state", "to_state"), CASE_FORBIDDEN,
                         ids=[f"{a}->{b}" for a, b in CASE_FORBIDDEN])
def test_a_case_transition_missing_from_the_table_raises_a_named_error(
    sqlite_runtime, from_state, to_state
):
    with sqlite_runtime.session_factory.begin() as session:
        case = make_case(session, at=sqlite_runtime.clock.now(), state=from_state)
        with pytest.raises(IllegalTransition) as info:
            transition(session, case, to_state, at=sqlite_runtime.clock.now())
        assert info.value.from_state == from_state and info.value.to_state == to_state
        assert case.ref in str(info.value)
        assert case.state == from_state  # unchanged
        assert case.audit_seq == 0


@pytest.mark.parametrize(("from_state", "to_state"), REPORT_FORBIDDEN,
                         ids=[f"{a}->{b}" for a, b in REPORT_FORBIDDEN])
def test_a_report_transition_missing_from_the_table_raises_a_named_error(
    sqlite_runtime, from_state, to_state
):
    with sqlite_runtime.session_factory.begin() as session:
        report = make_report(session, at=sqlite_runtime.clock.now(), state=from_state)
        with pytest.raises(IllegalTransition):
            transition(session, report, to_state, at=sqlite_runtime.clock.now())


def test_a_state_entered_twice_keeps_the_time_it_was_first_entered(sqlite_runtime):
    clock = sqlite_runtime.clock
    with sqlite_runtime.session_factory.begin() as session:
        case = make_case(session, at=clock.now(), state=CaseState.AWAITING_ASSESSMENT)
        first = clock.advance(minutes=1)
        transition(session, case, CaseState.IN_ASSESSMENT, at=first)
        transition(session, case, CaseState.AWAITING_ASSESSMENT, at=clock.advance(minutes=1))
        transition(session, case, CaseState.IN_ASSESSMENT, at=clock.advance(minutes=1))
        assert case.in_assessment_at == first
        assert case.audit_seq == 3
