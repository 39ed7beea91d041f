"""The audit hash chain names an edited, deleted or reordered event."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import delete, select, update

from pipeline.store.audit import record, verify
from pipeline.store.lifecycle import transition
from pipeline.store.models import Event
from pipeline.store.states import CaseState
from tests.factories import make_case


def _case_with_history(runtime):
    clock = runtime.clock
    with runtime.session_factory.begin() as session:
        case = make_case(session, at=clock.now(), state=CaseState.NORMALISED)
        for state in (CaseState.TRACED, CaseState.AWAITING_ASSESSMENT,
                      CaseState.IN_ASSESSMENT, CaseState.ASSESSED):
            transition(session, case, state, at=clock.advance(minutes=1))
        record(session, "user:ana", actor="ana", action="login", at=clock.now())
    return case


def _events(runtime, case):
    with runtime.session_factory() as session:
        return session.execute(
            select(Event).where(Event.case_id == case.id).order_by(Event.seq)
        ).scalars().all()


def test_an_untouched_trail_verifies(runtime):
    _case_with_history(runtime)
    with runtime.session_factory() as session:
        assert verify(session) == []


def test_an_edited_event_is_named(runtime):
    case = _case_with_history(runtime)
    target = _events(runtime, case)[1]
    with runtime.session_factory.begin() as session:
        session.execute(update(Event).where(Event.id == target.id).values(actor="mallory"))
    with runtime.session_factory() as session:
        problems = verify(session)
    assert [p.event_id for p in problems] == [target.id]
    assert "edited" in problems[0].what


def test_a_deleted_event_in_the_middle_is_named(runtime):
    case = _case_with_history(runtime)
    events = _events(runtime, case)
    with runtime.session_factory.begin() as session:
        session.execute(delete(Event).where(Event.id == events[2].id))
    with runtime.session_factory() as session:
        problems = verify(session)
    assert len(problems) == 1
    assert problems[0].event_id == events[3].id
    assert "deleted" in problems[0].what


def test_deleting_the_last_event_is_caught_by_the_head_on_the_case(runtime):
    case = _case_with_history(runtime)
    events = _events(runtime, case)
    with runtime.session_factory.begin() as session:
        session.execute(delete(Event).where(Event.id == events[-1].id))
    with runtime.session_factory() as session:
        problems = verify(session)
    assert [p.stream for p in problems] == [f"case:{case.ref}"]


def test_swapping_two_events_is_named(runtime):
    case = _case_with_history(runtime)
    a, b = _events(runtime, case)[1:3]
    with runtime.session_factory.begin() as session:
        session.execute(update(Event).where(Event.id == a.id).values(seq=-1))
        session.execute(update(Event).where(Event.id == b.id).values(seq=a.seq))
        session.execute(update(Event).where(Event.id == a.id).values(seq=b.seq))
    with runtime.session_factory() as session:
        problems = verify(session)
    assert len(problems) == 1 and problems[0].event_id == b.id


def test_named_streams_are_chained_too(runtime):
    clock = runtime.clock
    with runtime.session_factory.begin() as session:
        for n in range(3):
            record(session, "system", actor="system", action=f"job{n}", at=clock.now())
    with runtime.session_factory.begin() as session:
        session.execute(update(Event).where(Event.action == "job1").values(data={"x": 1}))
    with runtime.session_factory() as session:
        problems = verify(session)
    assert [p.stream for p in problems] == ["system"]


# The hash's canonical form comes from a C encoder built once; its bytes must be those
# of `json.dumps` with the same settings, or every stored chain would stop verifying.
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_JSON, st.datetimes())
def test_the_canonical_form_is_json_dumps_byte_for_byte(value, moment):
    from pipeline.store import audit
    assert audit._ENCODER is not None  # CPython's accelerator: the fast path is tested
    for item in (value, [value, moment], {"at": moment, "data": value}):
        assert audit._canonical(item) == audit._dumps(item)
