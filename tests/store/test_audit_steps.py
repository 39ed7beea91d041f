"""One event for the states a transaction moved a row through (`advance_step`,
`audit.extend_event`): every state and time is in it, covered by the hash, and any
change to any of them is named by `verify`, as with one event per state."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from pipeline.store.audit import STEPS, extend_event, insert_events, steps, verify
from pipeline.store.db import lock_rows
from pipeline.store.lifecycle import HEAD_COLUMNS, add_event, advance_step, write_rows
from pipeline.store.models import Case, Event
from pipeline.store.states import CaseState
from tests.factories import make_case


def _moved_twice(runtime, *, second_actor="system"):
    """A case moved normalised -> traced -> awaiting_assessment in one transaction,
    the two steps a second apart; its id and the times of the steps."""
    with runtime.session_factory.begin() as session:
        case_id = make_case(session, at=runtime.clock.now()).id
    traced_at = runtime.clock.advance(minutes=1)
    queued_at = traced_at + timedelta(seconds=1)
    with runtime.session_factory.begin() as session:
        [row] = lock_rows(session, Case, [case_id], [CaseState.NORMALISED], HEAD_COLUMNS)
        events: list = []
        add_event(events, advance_step("case", row, CaseState.TRACED, at=traced_at,
                                       data={"outcome": "traced", "asn": 64500}))
        add_event(events, advance_step("case", row, CaseState.AWAITING_ASSESSMENT,
                                       at=queued_at, actor=second_actor,
                                       data={"priority": 3}))
        write_rows(session, "case", [row])
        insert_events(session, events)
    return case_id, traced_at, queued_at


def _events(runtime, case_id):
    with runtime.session_factory() as session:
        return session.execute(select(Event).where(Event.case_id == case_id)
                               .order_by(Event.seq)).scalars().all()


def test_one_event_carries_every_state_with_its_time(runtime):
    case_id, traced_at, queued_at = _moved_twice(runtime)
    [event] = _events(runtime, case_id)
    assert (event.action, event.from_state, event.to_state) == (
        "case_traced", "normalised", "awaiting_assessment")
    assert [(s.action, s.from_state, s.to_state, s.at, s.data) for s in steps(event)] == [
        ("case_traced", "normalised", "traced", traced_at, {"outcome": "traced", "asn": 64500}),
        ("case_queued", "traced", "awaiting_assessment", queued_at, {"priority": 3}),
    ]
    with runtime.session_factory() as session:
        case = session.get(Case, case_id)
        assert (case.audit_seq, case.audit_hash) == (1, event.hash)
        assert (case.traced_at, case.awaiting_assessment_at) == (traced_at, queued_at)
        assert verify(session) == []


def test_another_actor_gets_an_event_of_its_own(runtime):
    case_id, _, _ = _moved_twice(runtime, second_actor="ana")
    events = _events(runtime, case_id)
    assert [(e.seq, e.to_state, e.actor) for e in events] == [
        (1, "traced", "system"), (2, "awaiting_assessment", "ana")]
    assert all(len(steps(e)) == 1 for e in events)
    with runtime.session_factory() as session:
        assert verify(session) == []


def _paths(value, path=()):
    """Every leaf of a JSON value, as a path of keys and indexes."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _paths(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _paths(inner, (*path, index))
    else:
        yield path


def _changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str) and value.endswith("+00:00"):  # a step's time, a second on
        return value.replace(value[17:19], f"{(int(value[17:19]) + 1) % 60:02d}", 1)
    return f"{value}x"


def _tampered_data(data):
    """Every single-field edit of the event's data: each step's action, states, time
    and data; also a step dropped, the steps reordered, a step added."""
    for path in _paths(data):
        edited = copy.deepcopy(data)
        inner = edited
        for key in path[:-1]:
            inner = inner[key]
        inner[path[-1]] = _changed(inner[path[-1]])
        yield "/".join(map(str, path)), edited
    dropped = copy.deepcopy(data)
    dropped[STEPS].pop()
    yield "a step dropped", dropped
    swapped = copy.deepcopy(data)
    swapped[STEPS].append(swapped[STEPS][0])
    yield "a step repeated", swapped
    bare = {k: v for k, v in data.items() if k != STEPS}
    yield "the steps removed", bare


@pytest.fixture
def moved(runtime):
    case_id, _, _ = _moved_twice(runtime)
    [event] = _events(runtime, case_id)
    return event


def _named(runtime, event_id, **values):
    with runtime.session_factory.begin() as session:
        session.execute(update(Event).where(Event.id == event_id).values(**values))
    with runtime.session_factory() as session:
        problems = verify(session)
    return [p.event_id for p in problems] == [event_id]


def test_every_edit_inside_a_multi_state_event_is_named(runtime, moved):
    """Tamper detection stays whole: each state, action, time and datum of each step,
    one at a time (the event put back between edits)."""
    original = copy.deepcopy(moved.data)
    edits = list(_tampered_data(original))
    assert {what for what, _ in edits} >= {
        "outcome", "asn", "steps/0/action", "steps/0/from_state", "steps/0/to_state",
        "steps/0/at", "steps/0/data/priority", "a step dropped"}
    for what, data in edits:
        assert data != original, what
        assert _named(runtime, moved.id, data=data), what
        with runtime.session_factory.begin() as session:
            session.execute(update(Event).where(Event.id == moved.id).values(data=original))
    for column, value in (("to_state", "traced"), ("from_state", None),
                          ("at", moved.at + timedelta(seconds=1)), ("action", "case_queued")):
        assert _named(runtime, moved.id, **{column: value}), column
        with runtime.session_factory.begin() as session:
            session.execute(update(Event).where(Event.id == moved.id)
                            .values(**{column: getattr(moved, column)}))
    with runtime.session_factory() as session:
        assert verify(session) == []


def test_a_step_must_follow_the_last_state():
    head = {"audit_seq": 0, "audit_hash": None}
    from pipeline.store.audit import event_row

    event = event_row("case:C-1", head, actor="system", action="case_opened",
                      at=_now(), to_state="normalised")
    with pytest.raises(ValueError):
        extend_event(event, head, action="case_queued", at=_now(), from_state="traced",
                     to_state="awaiting_assessment")
    stale = dict(head, audit_hash="0" * 64)
    with pytest.raises(ValueError):
        extend_event(event, stale, action="case_traced", at=_now(), from_state="normalised",
                     to_state="traced")


def _now():
    from datetime import UTC, datetime

    return datetime(2026, 12, 7, 4, 0, tzinfo=UTC)


def test_an_event_is_hashed_once_when_its_row_is_written(runtime, monkeypatch):
    """Steps go into the event unhashed; writing the row seals it, once, and the hash
    is the one `verify` recomputes from every step."""
    from pipeline.store import audit

    calls = []
    real = audit.event_hash
    monkeypatch.setattr(audit, "event_hash", lambda *a: calls.append(a) or real(*a))
    case_id, _, _ = _moved_twice(runtime)
    assert len(calls) == 1
    [event] = _events(runtime, case_id)
    assert event.hash == real(event.prev_hash, event.stream, event.seq, event.at,
                              event.actor, event.action, event.from_state, event.to_state,
                              event.data)


def test_an_event_is_sealed_before_another_chains_on_it(runtime, monkeypatch):
    from pipeline.store import audit

    calls = []
    real = audit.event_hash
    monkeypatch.setattr(audit, "event_hash", lambda *a: calls.append(a) or real(*a))
    case_id, _, _ = _moved_twice(runtime, second_actor="ana")
    assert len(calls) == 2  # the first when the second chained on it, then the second
    first, second = _events(runtime, case_id)
    assert second.prev_hash == first.hash


def test_an_event_not_sealed_is_never_inserted(runtime):
    with runtime.session_factory.begin() as session:
        case_id = make_case(session, at=runtime.clock.now()).id
    with pytest.raises(ValueError, match="sealed"), \
            runtime.session_factory.begin() as session:
        [row] = lock_rows(session, Case, [case_id], [CaseState.NORMALISED], HEAD_COLUMNS)
        event = advance_step("case", row, CaseState.TRACED, at=runtime.clock.now())
        insert_events(session, [event])  # before its row was written
