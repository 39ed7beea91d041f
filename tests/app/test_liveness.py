"""A worker process's heartbeat (pipeline.app.liveness): a row while the process runs,
renewed by its own thread, removed when it stops; a database that is away is logged,
not raised."""

from __future__ import annotations

import logging
import time

from pipeline.app.runtime import build_runtime
from pipeline.store.migrate import upgrade


def test_a_worker_process_beats_while_it_runs_and_removes_its_row_when_it_stops(
    sqlite_runtime
):
    from pipeline.app.liveness import ProcessHeartbeat
    from pipeline.core.process import heartbeat_name, holder_of, new_claim_owner, process_id
    from pipeline.store.ops_models import Heartbeat

    rt = sqlite_runtime
    liveness = ProcessHeartbeat(rt).start()
    try:
        with rt.session_factory() as session:
            row = session.get(Heartbeat, heartbeat_name())
            assert row is not None and row.beat_at.replace(tzinfo=None) == (
                rt.clock.now().replace(tzinfo=None))
    finally:
        liveness.stop()
    with rt.session_factory() as session:
        assert session.get(Heartbeat, heartbeat_name()) is None
    owner = new_claim_owner()
    assert holder_of(owner) == process_id() and len(owner) <= 64
    assert holder_of("0123abcd" * 4) is None  # an owner from before claims named their process


def test_the_heartbeat_is_renewed_by_its_thread(settings_factory):
    from pipeline.app.liveness import ProcessHeartbeat
    from pipeline.core.clock import FrozenClock
    from pipeline.core.process import heartbeat_name
    from pipeline.store.ops_models import Heartbeat

    settings = settings_factory(recovery={"heartbeat_seconds": 0.05})
    upgrade(settings.database.url)
    clock = FrozenClock()
    rt = build_runtime(settings, clock=clock)
    first = clock.now()
    liveness = ProcessHeartbeat(rt).start()
    try:
        clock.advance(minutes=5)
        deadline = time.monotonic() + 30
        while True:
            with rt.session_factory() as session:
                beat_at = session.get(Heartbeat, heartbeat_name()).beat_at
            if beat_at.replace(tzinfo=None) > first.replace(tzinfo=None):
                break
            assert time.monotonic() < deadline, "the heartbeat was never renewed"
            time.sleep(0.05)
    finally:
        liveness.stop()
        rt.close()


def test_a_database_that_is_away_is_logged_not_raised(settings_factory, caplog):
    from pipeline.app.liveness import ProcessHeartbeat

    settings = settings_factory(recovery={"heartbeat_seconds": 3600,
                                          "dead_after_seconds": 3 * 3600})
    rt = build_runtime(settings)  # never migrated: there is no heartbeats table
    try:
        with caplog.at_level(logging.WARNING, logger="pipeline.app.liveness"):
            liveness = ProcessHeartbeat(rt).start()
            liveness.stop()
    finally:
        rt.close()
    messages = [r.getMessage() for r in caplog.records]
    assert "Could not record this process's heartbeat." in messages
    assert "Could not remove this process's heartbeat." in messages
