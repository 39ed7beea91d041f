"""Helpline statistics: the export reproduces the National Contact Centre's
published four months, counts only what falls in the period, suppresses small counts
the same way, and never carries a caller's data."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pipeline.stages.stats import export_stats, to_csv
from pipeline.store.helpline_models import (
    HelplineCase,
    HelplineContact,
    HelplineReferral,
)

START, END = date(2026, 1, 1), date(2026, 4, 30)  # four months
SECRET = "caller-secret-0641234567"


def _spread(n: int, start: datetime, days: int) -> list[datetime]:
    """`n` times spread over `days` days from `start` (on working hours)."""
    return [start + timedelta(days=(i * days) // n, hours=8 + i % 7, minutes=i % 60)
            for i in range(n)]


def _refs(prefix: str) -> Any:
    return (f"{prefix}-{i:06d}" for i in itertools.count())


def build_ncc(runtime: Any) -> None:
    """2,079 communications (1,683 calls, 396 e-mails) -> 361 cases -> 344 advisory,
    17 referred (15 police, 2 prosecutor); plus rows just outside the period."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    contact_refs, case_refs = _refs("K"), _refs("H")
    callers = itertools.cycle(["child"] * 5 + ["parent"] * 3 + ["teacher", "other"])
    types = itertools.cycle(["sextortion"] * 4 + ["grooming"] * 3 +
                            ["cyberbullying", "csam", "self_harm", "hate_speech", "other"])
    channels = ["phone"] * 1683 + ["email"] * 396
    times = _spread(len(channels), t0, 119)
    with runtime.session_factory.begin() as session:
        cases = []
        for i in range(361):
            at = times[i * 5]
            referred = i < 17
            case = HelplineCase(
                ref=next(case_refs), case_type=next(types), urgent=False, counsellor="ana",
                notes=SECRET, state="referred" if referred else "advisory",
                state_changed_at=at, open_at=at, outcome="referred" if referred else
                "advisory", advisory_at=None if referred else at + timedelta(hours=1),
                referred_at=at + timedelta(hours=2) if referred else None, audit_seq=0)
            cases.append(case)
        session.add_all(cases)
        session.flush()
        for i, case in enumerate(cases[:17]):
            session.add(HelplineReferral(
                helpline_case_id=case.id, destination="rs-mup-vtk" if i < 15 else
                "rs-vtk-prosecutor", referred_by="ana", referred_at=case.referred_at,
                paged=False, personal_data_included=False, reminders=0))
        contacts = []
        for i, (channel, at) in enumerate(zip(channels, times, strict=True)):
            contacts.append(HelplineContact(
                ref=next(contact_refs), channel=channel, received_at=at, caller_type=next(callers),
                topic="sextortion", anonymous=False, caller_contact=SECRET, summary=SECRET,
                counsellor="ana", source="console", created_at=at, audit_seq=0,
                helpline_case_id=cases[i // 5].id if i % 5 == 0 and i // 5 < 361 else None))
        # Outside the period: the day before and the day after.
        for at in (t0 - timedelta(hours=1), datetime(2026, 5, 1, 0, 30, tzinfo=UTC)):
            contacts.append(HelplineContact(
                ref=next(contact_refs), channel="chat", received_at=at, caller_type="child",
                topic="grooming", anonymous=True, counsellor="ana", source="console",
                created_at=at, audit_seq=0))
            session.add(HelplineCase(
                ref=next(case_refs), case_type="grooming", urgent=False, counsellor="ana",
                state="advisory", state_changed_at=at, open_at=at, advisory_at=at,
                outcome="advisory", audit_seq=0))
        session.add_all(contacts)


def counts(items: list[Any]) -> dict[str, int | None]:
    return {c.key: c.count for c in items}


def test_the_export_reproduces_the_national_contact_centres_four_months(runtime):
    build_ncc(runtime)
    with runtime.session_factory() as session:
        export = export_stats(session, START, END, settings=runtime.settings,
                              now=runtime.clock.now())
    h = export.helpline
    assert h.communications == 2079
    assert counts(h.communications_by_channel) == {"phone": 1683, "email": 396}
    assert sum(counts(h.communications_by_caller).values()) == 2079  # type: ignore[arg-type]
    assert set(counts(h.communications_by_caller)) == {"child", "parent", "teacher", "other"}
    assert h.cases == 361
    assert sum(counts(h.cases_by_type).values()) == 361  # type: ignore[arg-type]
    assert counts(h.by_outcome) == {"advisory": 344, "referred": 17}
    assert counts(h.referred_by_institution) == {"rs-mup-vtk": 15, "rs-vtk-prosecutor": 2}
    # The URL side is untouched by the helpline's referrals.
    assert export.notices.total == 0
    # The CSV carries the same figures, and no caller data anywhere.
    rows = list(csv.reader(io.StringIO(to_csv(export))))
    helpline_rows = {(r[1], r[2], r[3]): r[4] for r in rows if r[0] == "helpline"}
    assert helpline_rows[("", "", "communications")] == "2079"
    assert helpline_rows[("channel", "phone", "communications")] == "1683"
    assert helpline_rows[("channel", "email", "communications")] == "396"
    assert helpline_rows[("", "", "cases")] == "361"
    assert helpline_rows[("outcome", "advisory", "cases")] == "344"
    assert helpline_rows[("outcome", "referred", "cases")] == "17"
    assert helpline_rows[("institution", "rs-mup-vtk", "referrals")] == "15"
    assert helpline_rows[("institution", "rs-vtk-prosecutor", "referrals")] == "2"
    assert SECRET not in export.model_dump_json() and SECRET not in to_csv(export)


def test_small_helpline_counts_are_suppressed_like_the_rest(runtime):
    build_ncc(runtime)
    with runtime.session_factory() as session:
        export = export_stats(session, START, END, settings=runtime.settings,
                              now=runtime.clock.now(), suppress_below=10)
    h = export.helpline
    assert counts(h.referred_by_institution) == {"rs-mup-vtk": 15, "rs-vtk-prosecutor": None}
    assert counts(h.by_outcome) == {"advisory": 344, "referred": 17}
    assert h.communications == 2079
