"""The reconciler (pipeline/stages/reconciler.py): what sat too long in a waiting state
is sent on again, and a dead worker process's notices are released at once. The
end-to-end recoveries (a broker losing messages, workers killed) are in
tests/workers/; those of notices mid-delivery in tests/stages/test_dispatch.py."""

from __future__ import annotations

from datetime import timedelta

from pipeline.core.messaging import DISPATCH, ROUTE, RecordingEnqueuer
from pipeline.core.process import HEARTBEAT_PREFIX, PROCESS_ID_LENGTH
from pipeline.stages.reconciler import find_stuck, reconcile, release_dead_holders
from pipeline.store.models import Event, Notice
from pipeline.store.ops_models import Heartbeat
from pipeline.store.states import CaseState, NoticeState
from tests.factories import make_case, make_notice
from tests.routing_support import assessed, notices_of, route


def test_the_reconciler_routes_stuck_assessed_cases_and_dispatches_due_notices(runtime):
    stuck_case = assessed(runtime)
    routed_case = assessed(runtime, hosting_country="DE")
    route(runtime, routed_case)
    (notice,) = notices_of(runtime, routed_case)
    runtime.clock.advance(seconds=600)
    with runtime.session_factory() as session:
        counts = reconcile(session, runtime.enqueuer, now=runtime.clock.now(),
                           deadline_seconds=120, limit=100)
    assert counts == {ROUTE: 1, DISPATCH: 1}
    assert runtime.enqueuer.ids(ROUTE) == [stuck_case]
    assert runtime.enqueuer.ids(DISPATCH) == [notice.id]


def test_a_case_waiting_for_its_own_retry_is_not_stuck(runtime):
    """A stage that set `retry_at` sends the case again itself: not lost."""
    now = runtime.clock.now()
    with runtime.session_factory.begin() as session:
        waiting = make_case(session, at=now, url="http://a.example/1",
                            state=CaseState.TRACED, retry_at=now + timedelta(hours=1))
        lost = make_case(session, at=now, url="http://a.example/2", state=CaseState.TRACED)
    runtime.clock.advance(seconds=600)
    with runtime.session_factory() as session:
        stuck = find_stuck(session, now=runtime.clock.now(), deadline_seconds=120, limit=100)
    assert stuck == {"trace": [lost.id]} and waiting.id not in stuck["trace"]


DEAD, ALIVE = "d" * PROCESS_ID_LENGTH, "a" * PROCESS_ID_LENGTH  # process ids


def _claimed(runtime, state, owner):
    now = runtime.clock.now()
    with runtime.session_factory.begin() as session:
        case = make_case(session, at=now, url=f"http://a.example/{state}/{owner}",
                         state=CaseState.NOTIFIED)
        return make_notice(session, case, at=now, state=state, lease_owner=owner,
                           lease_until=now + timedelta(minutes=5)).id


def _beat(runtime, process, at):
    with runtime.session_factory.begin() as session:
        session.add(Heartbeat(name=f"{HEARTBEAT_PREFIX}{process}", beat_at=at,
                              host="test", pid=1))


def test_a_dead_processes_notices_are_released_and_its_heartbeat_removed(runtime):
    now = runtime.clock.now()
    _beat(runtime, DEAD, now - timedelta(minutes=10))
    _beat(runtime, ALIVE, now)
    again = _claimed(runtime, NoticeState.SENDING, f"{DEAD}.1")
    flagged = _claimed(runtime, NoticeState.HANDING_OVER, f"{DEAD}.2")
    kept = _claimed(runtime, NoticeState.SENDING, f"{ALIVE}.1")
    enqueuer = RecordingEnqueuer()
    counts = release_dead_holders(runtime.session_factory, enqueuer, now=now,
                                  dead_after_seconds=60, lease_seconds=300)
    assert counts == {"dead_processes": 1, "notices_released": 1, "notices_unconfirmed": 1}
    assert enqueuer.ids(DISPATCH) == [again]
    with runtime.session_factory() as session:
        states = {i: session.get(Notice, i).state for i in (again, flagged, kept)}
        assert states == {again: "planned", flagged: "unconfirmed", kept: "sending"}
        assert session.get(Notice, again).crashes == 1
        assert [h.name for h in session.query(Heartbeat).all()] == [
            f"{HEARTBEAT_PREFIX}{ALIVE}"]
        actions = sorted(e.action for e in session.query(Event).all())
        assert actions == ["notice_claim_lost", "notice_unconfirmed"]
    # Nothing more to do the second time.
    assert release_dead_holders(runtime.session_factory, RecordingEnqueuer(), now=now,
                                dead_after_seconds=60, lease_seconds=300) == {}
