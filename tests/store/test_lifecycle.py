"""Every allowed transition works, stamps its time and is audited; every other one is
refused with a named error. Reports, cases and notices."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import select

from pipeline.core.errors import IllegalTransition
from pipeline.store.audit import verify
from pipeline.store.lifecycle import check_notice_moves, notice_transition, transition
from pipeline.store.models import Event, Notice
from pipeline.store.states import (
    CASE_TRANSITIONS,
    LEASED_NOTICE_STATES,
    NOTICE_TRANSITIONS,
    OPEN_CASE_STATES,
    REPORT_TRANSITIONS,
    CaseState,
    NoticeState,
    ReportState,
)
from tests.factories import make_case, make_notice, make_report

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


# --------------------------------------------------------------------------- notices

NOTICE_MOVES = [pair for pair in NOTICE_TRANSITIONS if pair[0] is not None]
NOTICE_CREATIONS = [pair for pair in NOTICE_TRANSITIONS if pair[0] is None]
NOTICE_LEASED_MOVES = [pair for pair in NOTICE_MOVES if pair[0] in LEASED_NOTICE_STATES]
NOTICE_FORBIDDEN = [pair for pair in itertools.product([None, *NoticeState], NoticeState)
                    if pair not in NOTICE_TRANSITIONS]


def _ids(pairs):
    return [f"{a or 'new'}->{b}" for a, b in pairs]


def _case_events(session, case):
    return list(session.execute(select(Event).where(Event.case_id == case.id)
                                .order_by(Event.id)).scalars())


@pytest.mark.parametrize(("from_state", "to_state"), NOTICE_MOVES, ids=_ids(NOTICE_MOVES))
def test_each_allowed_notice_transition_moves_it_and_writes_the_event_the_table_names(
    sqlite_runtime, from_state, to_state
):
    clock = sqlite_runtime.clock
    with sqlite_runtime.session_factory.begin() as session:
        case = make_case(session, at=clock.now(), state=CaseState.NOTIFIED)
        notice = make_notice(session, case, at=clock.now(), state=from_state)
        later = clock.advance(minutes=1)
        assert notice_transition(session, notice, to_state, at=later, actor="operator:ana",
                                 data={"reason": "test"}, values={"last_error": "x"})
        assert (notice.state, notice.last_error) == (to_state.value, "x")
    with sqlite_runtime.session_factory() as session:
        events = _case_events(session, case)
        action = NOTICE_TRANSITIONS[(from_state, to_state)]
        assert [e.action for e in events] == ([action] if action else [])
        for event in events:
            assert event.actor == "operator:ana" and event.at == later
            assert event.data == {"notice": notice.id, "destination": notice.destination,
                                  "reason": "test"}
        assert verify(session) == []


@pytest.mark.parametrize(("from_state", "to_state"), NOTICE_CREATIONS,
                         ids=_ids(NOTICE_CREATIONS))
def test_a_notice_is_written_in_the_states_the_table_allows_without_an_event(
    sqlite_runtime, from_state, to_state
):
    """The stage writing a notice records it on the case itself (routing, escalation)."""
    clock = sqlite_runtime.clock
    with sqlite_runtime.session_factory.begin() as session:
        case = make_case(session, at=clock.now(), state=CaseState.ROUTED)
        notice = make_notice(session, case, at=clock.now(), state=from_state)
        assert notice_transition(session, notice, to_state, at=clock.now())
        session.add(notice)
        assert check_notice_moves([from_state], to_state) == to_state
    with sqlite_runtime.session_factory() as session:
        assert session.get(Notice, notice.id).state == to_state
        assert _case_events(session, case) == []


@pytest.mark.parametrize(("from_state", "to_state"), NOTICE_LEASED_MOVES,
                         ids=_ids(NOTICE_LEASED_MOVES))
def test_a_dispatcher_moves_a_leased_notice_only_while_it_owns_the_lease(
    sqlite_runtime, from_state, to_state
):
    """The compare-and-set of a dispatcher on its detached copy: another owner's claim
    is left alone and nothing is audited; its own moves once, with the event."""
    clock = sqlite_runtime.clock
    until = clock.now() + timedelta(minutes=5)
    with sqlite_runtime.session_factory.begin() as session:
        case = make_case(session, at=clock.now(), state=CaseState.NOTIFIED)
        notice = make_notice(session, case, at=clock.now(), state=from_state,
                             lease_owner="mine", lease_until=until)
        session.expunge(notice)
    with sqlite_runtime.session_factory.begin() as session:
        assert not notice_transition(session, notice, to_state, at=clock.now(),
                                     owner="someone else")
    with sqlite_runtime.session_factory.begin() as session:
        keep = until if to_state == NoticeState.HANDING_OVER else None
        assert notice_transition(session, notice, to_state, at=clock.now(), owner="mine",
                                 values={"attempts": 3}, lease_until=keep)
    with sqlite_runtime.session_factory() as session:
        stored = session.get(Notice, notice.id)
        assert (stored.state, stored.attempts) == (to_state.value, 3)
        assert stored.lease_owner == ("mine" if keep else None)
        action = NOTICE_TRANSITIONS[(from_state, to_state)]
        assert [e.action for e in _case_events(session, case)] == ([action] if action else [])


@pytest.mark.parametrize(("from_state", "to_state"), NOTICE_FORBIDDEN,
                         ids=_ids(NOTICE_FORBIDDEN))
def test_a_notice_transition_missing_from_the_table_raises_and_changes_nothing(
    sqlite_runtime, from_state, to_state
):
    clock = sqlite_runtime.clock
    with sqlite_runtime.session_factory.begin() as session:
        case = make_case(session, at=clock.now(), state=CaseState.NOTIFIED)
        notice = make_notice(session, case, at=clock.now(), state=from_state)
        with pytest.raises(IllegalTransition) as info:
            notice_transition(session, notice, to_state, at=clock.now())
        assert (info.value.kind, info.value.from_state, info.value.to_state) == (
            "notice", from_state, to_state)
        assert notice.state == from_state
        with pytest.raises(IllegalTransition):
            check_notice_moves([from_state], to_state)
        assert case.audit_seq == 0


def test_a_dispatcher_cannot_move_a_leased_notice_where_no_leased_state_may_go(sqlite_runtime):
    clock = sqlite_runtime.clock
    with sqlite_runtime.session_factory.begin() as session:
        case = make_case(session, at=clock.now(), state=CaseState.NOTIFIED)
        notice = make_notice(session, case, at=clock.now(), state=NoticeState.SENDING,
                             lease_owner="mine")
        with pytest.raises(IllegalTransition):
            notice_transition(session, notice, NoticeState.CANCELLED, at=clock.now(),
                              owner="mine")
        assert session.get(Notice, notice.id).state == NoticeState.SENDING


def test_every_leased_state_goes_to_a_target_with_the_same_audit_action():
    """The compare-and-set cannot know which leased state the row was in: the table
    must not make that matter."""
    for target in NoticeState:
        actions = {NOTICE_TRANSITIONS[(s, target)] for s in LEASED_NOTICE_STATES
                   if (s, target) in NOTICE_TRANSITIONS}
        assert len(actions) <= 1, target
