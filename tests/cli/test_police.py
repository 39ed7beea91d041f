"""`hotline police reply` (pipeline/cli/police.py): a supervisor records the police's
reply that came by telephone or letter, through the API's use case."""

from __future__ import annotations

from sqlalchemy import select

from pipeline.store.models import Event
from tests.routing_support import assessed, case_of, notices_of, route


def test_a_supervisor_records_the_police_reply_from_the_terminal(cli, sqlite_runtime):
    case_id = assessed(sqlite_runtime)
    route(sqlite_runtime, case_id)
    ref = case_of(sqlite_runtime, case_id).ref
    cli("users", "add", "ana", "--role", "analyst")
    cli("users", "add", "sue", "--role", "supervisor")

    denied = cli("police", "reply", ref, "proceed", "--as", "ana", ok=False)
    assert denied.exit_code == 1 and "denied: an analyst may not reply" in denied.output
    no_reason = cli("police", "reply", ref, "keep_holding", "--as", "sue", ok=False)
    assert no_reason.exit_code == 1 and "reason" in no_reason.output

    kept = cli("police", "reply", ref, "keep_holding", "--as", "sue", "--reason",
               "by telephone: surveillance", "--until", "2099-01-02T03:04:05").output
    assert f"Case {ref} stays held for the police until 2099-01-02 03:04 UTC." in kept
    done = cli("police", "reply", ref, "proceed", "--as", "sue").output
    assert f"Case {ref} is notified; 1 notices released for sending." in done
    # Embedded mode: the command ran dispatch itself, to the outbox.
    assert [n.state for n in notices_of(sqlite_runtime, case_id)] == ["planned", "sent"]
    with sqlite_runtime.session_factory() as session:
        actions = session.execute(select(Event.action).where(
            Event.case_id == case_id, Event.actor == "user:sue").order_by(Event.id)
        ).scalars().all()
    assert actions == ["police_hold_extended", "case_police_cleared"]

    again = cli("police", "reply", ref, "proceed", "--as", "sue", ok=False)
    assert again.exit_code == 1 and "not held for the police" in again.output
