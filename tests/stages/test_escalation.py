"""Reminders and the escalation ladder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from pipeline.app.runtime import Runtime
from pipeline.core.clock import FrozenClock
from pipeline.core.errors import ConfigError
from pipeline.core.messaging import DISPATCH
from pipeline.domain.rules import Directory
from pipeline.stages.escalation import EscalationRules, load_rules, run_escalation
from pipeline.store.models import Case, Event, Notice
from pipeline.store.takedown_models import TakedownWatch
from tests.factories import make_case

RULES_FILE = Path(__file__).parents[2] / "rules" / "escalation.yaml"

DIRECTORY = Directory.model_validate({
    "home_police": "police-unit",
    "destinations": {
        "police-unit": {"key": "police-unit", "kind": "police", "name": "Police",
                        "address": "police@example.org"},
        "registrar": {"key": "registrar", "kind": "registrar", "name": "Registrar",
                      "address_from": "registrar_abuse_email"},
        "upstream-as64500": {"key": "upstream-as64500", "kind": "upstream",
                             "name": "Upstream of AS64500", "address": "abuse@transit.example"},
    },
})


def rules() -> EscalationRules:
    return load_rules(RULES_FILE, directory=DIRECTORY)


def noticed_case(rt: Runtime, *, sent_at: datetime, state: str = "monitoring",
                 **fields: Any) -> int:
    with rt.session_factory.begin() as session:
        values: dict[str, Any] = {"notified_at": sent_at, "hosting_asn": 64500,
                                  "registrar_abuse_email": "abuse@registrar.example",
                                  "legality": "illegal_international", "category": "csam",
                                  "assessed_at": sent_at}
        values.update(fields)
        case = make_case(session, at=sent_at - timedelta(hours=2), state=state,
                         url=f"http://example.com/{state}/{sent_at.timestamp()}", **values)
        session.add(Notice(case_id=case.id, destination="hosting-provider",
                           destination_kind="provider", kind="notice", round=1,
                           channel="smtp", address="abuse@host.example", state="sent",
                           token=f"tok-{case.id}", subject="Illegal content at your service",
                           body="Please remove it.", payload={}, created_at=sent_at,
                           sent_at=sent_at))
        return case.id


def run(rt: Runtime) -> dict[str, int]:
    return run_escalation(rt.session_factory, rt.enqueuer, rt.settings, clock=rt.clock,
                          rules=rules(), directory=DIRECTORY)


def notices(rt: Runtime, case_id: int) -> list[tuple[str, str, int, str]]:
    with rt.session_factory() as session:
        return [tuple(r) for r in session.execute(  # type: ignore[misc]
            select(Notice.kind, Notice.destination, Notice.round, Notice.state)
            .where(Notice.case_id == case_id, Notice.kind != "notice").order_by(Notice.id))]


def test_no_reminder_before_the_interval_and_one_after_it(runtime: Runtime) -> None:
    clock: FrozenClock = runtime.clock  # type: ignore[assignment]
    case_id = noticed_case(runtime, sent_at=clock.now())
    clock.advance(hours=23, minutes=59)
    assert run(runtime)["reminders"] == 0
    clock.advance(minutes=1)
    assert run(runtime)["reminders"] == 1
    assert notices(runtime, case_id) == [("reminder", "hosting-provider", 2, "planned")]
    with runtime.session_factory() as session:
        reminder = session.execute(select(Notice).where(Notice.kind == "reminder")).scalar_one()
        assert reminder.address == "abuse@host.example"
        assert reminder.subject.startswith("Reminder 1:")
        actions = session.execute(select(Event.action).where(Event.case_id == case_id)
                                  ).scalars().all()
    assert "case_reminded" in actions
    assert runtime.enqueuer.ids(DISPATCH) == [reminder.id]  # type: ignore[attr-defined]


def test_a_repeated_run_never_makes_a_second_reminder(runtime: Runtime) -> None:
    clock: FrozenClock = runtime.clock  # type: ignore[assignment]
    case_id = noticed_case(runtime, sent_at=clock.now())
    clock.advance(hours=25)
    run(runtime)
    run(runtime)
    clock.advance(minutes=5)
    run(runtime)
    assert notices(runtime, case_id) == [("reminder", "hosting-provider", 2, "planned")]


def test_a_late_run_sends_one_reminder_not_two(runtime: Runtime) -> None:
    clock: FrozenClock = runtime.clock  # type: ignore[assignment]
    case_id = noticed_case(runtime, sent_at=clock.now())
    clock.advance(hours=50)  # both reminders would be due
    run(runtime)
    assert len(notices(runtime, case_id)) == 1
    clock.advance(hours=24)
    run(runtime)
    kinds = [(k, r) for k, _, r, _ in notices(runtime, case_id)]
    assert ("reminder", 3) in kinds


def test_the_ladder_climbs_upstream_then_registrar_then_police(runtime: Runtime) -> None:
    clock: FrozenClock = runtime.clock  # type: ignore[assignment]
    start = clock.now()
    case_id = noticed_case(runtime, sent_at=start)
    for hours in (24, 48, 72, 96, 120, 144, 168, 192):
        clock.at = start + timedelta(hours=hours)
        run(runtime)
    made = notices(runtime, case_id)
    assert [m for m in made if m[0] == "reminder"] == [
        ("reminder", "hosting-provider", 2, "planned"),
        ("reminder", "hosting-provider", 3, "planned")]  # at most two
    assert [m for m in made if m[0] == "escalation"] == [
        ("escalation", "upstream-as64500", 1, "planned"),
        ("escalation", "registrar", 2, "planned"),
        ("escalation", "police-unit", 3, "planned")]
    with runtime.session_factory() as session:
        registrar = session.execute(select(Notice).where(Notice.destination == "registrar")
                                    ).scalar_one()
        escalated = session.execute(select(Event.data).where(
            Event.case_id == case_id, Event.action == "case_escalated")).scalars().all()
    assert registrar.address == "abuse@registrar.example"
    assert registrar.subject.startswith("Escalation:")
    assert [e["what"] for e in escalated] == ["step upstream", "step registrar", "step police"]


def test_a_step_without_a_destination_is_recorded_once_and_not_sent(runtime: Runtime) -> None:
    clock: FrozenClock = runtime.clock  # type: ignore[assignment]
    case_id = noticed_case(runtime, sent_at=clock.now(), hosting_asn=64999)
    clock.advance(hours=73)
    assert run(runtime)["unresolved"] == 1
    assert run(runtime)["unresolved"] == 0
    assert ("escalation", "upstream-as64999", 1, "dead") in notices(runtime, case_id)
    with runtime.session_factory() as session:
        dead = session.execute(select(Notice).where(Notice.state == "dead")).scalar_one()
    assert "no destination 'upstream-as64999'" in (dead.last_error or "")
    assert dead.id not in runtime.enqueuer.ids(DISPATCH)  # type: ignore[attr-defined]


def test_removed_content_gets_no_reminder(runtime: Runtime) -> None:
    clock: FrozenClock = runtime.clock  # type: ignore[assignment]
    case_id = noticed_case(runtime, sent_at=clock.now(), state="removed", open_key=None)
    clock.advance(hours=200)
    run(runtime)
    assert notices(runtime, case_id) == []


def test_a_removal_claim_holds_reminders_until_a_check_sees_the_content(
    runtime: Runtime,
) -> None:
    clock: FrozenClock = runtime.clock  # type: ignore[assignment]
    start = clock.now()
    case_id = noticed_case(runtime, sent_at=start)
    with runtime.session_factory.begin() as session:
        session.add(TakedownWatch(case_id=case_id, started_at=start, next_check_at=start,
                                  claimed_at=start + timedelta(hours=1), claimed_by="x",
                                  claim_status="removed", baseline_addresses=[]))
    clock.advance(hours=30)
    run(runtime)
    assert notices(runtime, case_id) == []
    with runtime.session_factory.begin() as session:
        watch = session.get(TakedownWatch, case_id)
        assert watch is not None
        watch.last_checked_at, watch.last_outcome = start + timedelta(hours=2), "present"
    run(runtime)
    assert len(notices(runtime, case_id)) == 1


def test_working_time_counts_only_working_hours(runtime: Runtime,
                                                 settings_factory: Any) -> None:
    friday_4pm = datetime(2026, 1, 9, 16, 0, tzinfo=UTC)
    runtime.settings = settings_factory(worktime={"timezone": "UTC"})
    clock: FrozenClock = runtime.clock  # type: ignore[assignment]
    clock.at = friday_4pm
    case_id = noticed_case(runtime, sent_at=friday_4pm)
    working = rules().model_copy(update={"working_time": True})
    clock.at = friday_4pm + timedelta(days=3)  # Monday 16:00: 1 + 7 = 8 working hours
    run_escalation(runtime.session_factory, runtime.enqueuer, runtime.settings,
                   clock=clock, rules=working, directory=DIRECTORY)
    assert notices(runtime, case_id) == []
    clock.at = friday_4pm + timedelta(days=5, hours=1)  # Wednesday 17:00: 24 working hours
    run_escalation(runtime.session_factory, runtime.enqueuer, runtime.settings,
                   clock=clock, rules=working, directory=DIRECTORY)
    assert notices(runtime, case_id) == [("reminder", "hosting-provider", 2, "planned")]


def test_the_shipped_rules_are_valid() -> None:
    loaded = load_rules(RULES_FILE, directory=DIRECTORY)
    assert [s.step for s in loaded.ladder] == ["upstream", "registrar", "police"]
    assert loaded.reminder.first_after_hours == 24


@pytest.mark.parametrize("text,problem", [
    ("ladder:\n  - step: a\n    after_hours: 10\n    notify: '@police'\n"
     "  - step: b\n    after_hours: 5\n    notify: '@police'\n", "increasing order"),
    ("ladder:\n  - step: late\n    after_hours: -1\n    notify: '@police'\n",
     "ladder step 1 (late).after_hours"),
    ("ladder:\n  - step: x\n    after_hours: 1\n    notify: nowhere\n",
     "ladder step 1 (x).notify: no destination 'nowhere'"),
    ("reminder:\n  first_after: 3\n", "reminder.first_after: unknown key"),
    ("ladder: [\n", "not valid YAML"),
])
def test_bad_rules_are_refused_naming_file_step_and_field(tmp_path: Path, text: str,
                                                          problem: str) -> None:
    path = tmp_path / "escalation.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_rules(path, directory=DIRECTORY)
    assert str(path) in str(info.value) and problem in str(info.value)


def test_the_case_keeps_its_escalation_record(runtime: Runtime) -> None:
    clock: FrozenClock = runtime.clock  # type: ignore[assignment]
    case_id = noticed_case(runtime, sent_at=clock.now())
    clock.advance(hours=80)
    run(runtime)
    with runtime.session_factory() as session:
        case = session.get(Case, case_id)
        assert case is not None
        from pipeline.store.audit import verify

        assert verify(session) == []
        assert case.audit_seq >= 2
