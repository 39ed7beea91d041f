"""The use cases the API, the console and the CLI share (pipeline/app/casework.py):
here the police's reply, by a police token or recorded by a supervisor. (Claim,
release and decide are exercised through all three in tests/web/test_queue.py,
tests/web/console/test_casework.py and tests/cli/test_assessment.py.)"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from pipeline.app import casework
from pipeline.app.auth import Principal
from pipeline.core.errors import PermissionDenied
from pipeline.core.messaging import DISPATCH
from pipeline.stages.police import NotHeld, PoliceDecision
from pipeline.store.models import Event
from tests.assessment_support import people
from tests.routing_support import assessed, case_of, notices_of, route


def held_case(runtime):
    case_id = assessed(runtime)
    route(runtime, case_id)
    return case_id, case_of(runtime, case_id).ref


def police_token(runtime, destination):
    """The principal of a police token for `destination` (as the API authenticates it)."""
    return Principal(name="VTK", role="police", token_id=1, destination=destination)


def denials(runtime):
    with runtime.session_factory() as session:
        return list(session.execute(select(Event).where(Event.action == "access_denied"))
                    .scalars())


def test_a_supervisor_records_the_police_reply_and_the_notices_go_to_dispatch(runtime):
    case_id, ref = held_case(runtime)
    sue = people(runtime, ("sue", "supervisor"))["sue"]
    kept = casework.police_reply(runtime, sue, ref, PoliceDecision.KEEP_HOLDING,
                                 reason="by telephone: surveillance")
    assert (kept.case_ref, kept.state, kept.released) == (ref, "police_hold", [])
    assert kept.hold_until == case_of(runtime, case_id).police_hold_until
    done = casework.police_reply(runtime, sue, ref, PoliceDecision.PROCEED)
    provider = notices_of(runtime, case_id)[1]
    assert (done.state, done.hold_until, done.released) == ("notified", None, [provider.id])
    assert runtime.enqueuer.ids(DISPATCH) == [provider.id]  # sent on after the commit
    with runtime.session_factory() as session:
        actors = session.execute(select(Event.action, Event.actor).where(
            Event.case_id == case_id, Event.actor == "user:sue").order_by(Event.id)).all()
    assert [tuple(a) for a in actors] == [("police_hold_extended", "user:sue"),
                                          ("case_police_cleared", "user:sue")]


def test_an_analyst_may_not_record_the_police_reply_and_the_denial_is_audited(runtime):
    case_id, ref = held_case(runtime)
    ana = people(runtime, ("ana", "analyst"))["ana"]
    with pytest.raises(PermissionDenied, match="supervisor"):
        casework.police_reply(runtime, ana, ref, PoliceDecision.PROCEED)
    assert [d.actor for d in denials(runtime)] == ["user:ana"]
    assert case_of(runtime, case_id).state == "police_hold"
    assert runtime.enqueuer.ids(DISPATCH) == []


def test_a_police_token_replies_only_on_cases_notified_to_its_destination(runtime):
    case_id, ref = held_case(runtime)
    with pytest.raises(PermissionDenied):
        casework.police_reply(runtime, police_token(runtime, "hr-police"), ref,
                              PoliceDecision.PROCEED)
    assert case_of(runtime, case_id).state == "police_hold"
    done = casework.police_reply(runtime, police_token(runtime, "rs-mup-vtk"), ref,
                                 PoliceDecision.TAKE_OVER, reason="we handle it")
    assert (done.state, done.released) == ("closed", [])
    assert [n.state for n in notices_of(runtime, case_id)] == ["planned", "cancelled"]


def test_a_reply_on_a_case_no_longer_held_is_refused(runtime):
    _, ref = held_case(runtime)
    sue = people(runtime, ("sue", "supervisor"))["sue"]
    casework.police_reply(runtime, sue, ref, PoliceDecision.PROCEED)
    with pytest.raises(NotHeld):
        casework.police_reply(runtime, sue, ref, PoliceDecision.PROCEED)
