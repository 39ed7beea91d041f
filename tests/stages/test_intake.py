"""The intake stage (pipeline.stages.intake): unguessable references, the configured
limits named by field, reports stored with their first audit event, committed before
they are queued (a large submission's first report alone), and the status a reporter
may see; on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select

from pipeline.core.config import IntakeSection
from pipeline.core.errors import BadInput, NotFound
from pipeline.core.messaging import NORMALISE, RecordingEnqueuer
from pipeline.stages import intake
from pipeline.store.models import Event, Report
from schemas.intake import ReportIn

LIMITS = IntakeSection(max_batch=150, max_description_chars=20, max_contact_chars=10,
                       max_future_skew_seconds=60)


@pytest.fixture(params=["sqlite_runtime", "pg_runtime"])
def rt(request):
    return request.getfixturevalue(request.param)


def test_references_are_unguessable_and_readable_aloud():
    refs = {intake.new_reference("R") for _ in range(2_000)}
    assert len(refs) == 2_000
    pattern = re.compile(r"R-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-"
                         r"[A-HJ-NP-Z2-9]{4}")
    assert all(pattern.fullmatch(ref) for ref in refs)
    assert intake.new_reference("S").startswith("S-")


def test_each_limit_is_named_by_its_field(rt):
    now = rt.clock.now()
    intake.check_limits(ReportIn(url="http://a.example/", description="x" * 20,
                                 reporter_contact="a@b.rs"), LIMITS, now)
    for item, field in [
        (ReportIn(url="http://a.example/" + "a" * LIMITS.max_url_bytes), "url"),
        (ReportIn(url="http://a.example/", description="x" * 21), "description"),
        (ReportIn(url="http://a.example/", reporter_contact="x" * 11), "reporter_contact"),
        (ReportIn(url="http://a.example/", received_at=now + timedelta(minutes=5)),
         "received_at"),
    ]:
        with pytest.raises(BadInput, match=f"^{field}: "):
            intake.check_limits(item, LIMITS, now)


def test_a_report_over_a_limit_in_a_batch_is_named_by_its_index_and_nothing_is_stored(rt):
    items = [ReportIn(url="http://a.example/"), ReportIn(url="http://b.example/",
                                                         description="x" * 21)]
    with pytest.raises(BadInput, match=r"^reports\[1\]\.description: "), \
            rt.session_factory.begin() as session:
        intake.store_reports(session, items, clock=rt.clock, limits=LIMITS)
    with rt.session_factory() as session:
        assert session.execute(select(Report)).scalars().all() == []


def test_reports_are_stored_with_their_first_event_and_queued_after_the_commit(rt):
    items = [ReportIn(url="http://a.example/1", reporter_contact="a@b.rs"),
             ReportIn(url="http://a.example/2", channel="email", urgent=True)]
    submission, accepted = intake.accept_reports(
        rt.session_factory, items, clock=rt.clock, limits=LIMITS, enqueuer=rt.enqueuer,
        source="test", actor="intake:test")
    assert [a.url for a in accepted] == ["http://a.example/1", "http://a.example/2"]
    assert rt.enqueuer.ids(NORMALISE) == [a.id for a in accepted]
    with rt.session_factory() as session:
        reports = session.execute(select(Report).order_by(Report.id)).scalars().all()
        events = session.execute(select(Event).order_by(Event.id)).scalars().all()
    assert [r.ref for r in reports] == [a.ref for a in accepted]
    assert {r.submission_ref for r in reports} == {submission}
    assert [(r.state, r.channel, r.urgent, r.source) for r in reports] == [
        ("received", "web", False, "test"), ("received", "email", True, "test")]
    assert reports[0].reporter_contact == "a@b.rs"
    assert [(e.report_id, e.action, e.actor) for e in events] == [
        (a.id, "report_received", "intake:test") for a in accepted]


def test_a_large_submission_sends_its_first_report_alone(rt):
    items = [ReportIn(url=f"http://a.example/{i}") for i in range(intake.FIRST_ALONE_ABOVE + 1)]
    enqueuer = RecordingEnqueuer()
    _, accepted = intake.accept_reports(rt.session_factory, items, clock=rt.clock,
                                        limits=LIMITS, enqueuer=enqueuer)
    ids = [a.id for a in accepted]
    assert enqueuer.sent == [(NORMALISE, ids[:1]), (NORMALISE, ids[1:])]


def test_an_empty_or_too_large_request_is_refused(rt):
    for items, message in [([], "at least one report"),
                           ([ReportIn(url="http://a.example/")] * 151, "at most 150")]:
        with pytest.raises(BadInput, match=message):
            intake.accept_reports(rt.session_factory, items, clock=rt.clock, limits=LIMITS,
                                  enqueuer=rt.enqueuer)
    assert rt.enqueuer.ids(NORMALISE) == []


def test_a_reporter_sees_only_the_public_status(rt):
    _, (first, second) = intake.accept_reports(
        rt.session_factory, [ReportIn(url="http://a.example/"),
                             ReportIn(url="http://b.example/")],
        clock=rt.clock, limits=LIMITS, enqueuer=rt.enqueuer)
    with rt.session_factory.begin() as session:
        session.get(Report, second.id).state = "rejected"
    with rt.session_factory() as session:
        status = intake.public_status(session, first.ref)
        assert (status.reference, status.status) == (first.ref, "received")
        assert intake.public_status(session, second.ref).status == "rejected"
        with pytest.raises(NotFound):
            intake.public_status(session, "R-NONE-NONE-NONE-NONE")
    assert "a.example" not in status.model_dump_json()


def test_references_made_together_are_as_those_made_one_at_a_time():
    refs = intake.new_references("C", 5_000)
    assert len(set(refs)) == 5_000
    pattern = re.compile(r"C-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-"
                         r"[A-HJ-NP-Z2-9]{4}")
    assert all(pattern.fullmatch(ref) for ref in refs)
    letters = Counter(letter for ref in refs for letter in ref[2:] if letter != "-")
    assert len(letters) == 32  # every letter of the alphabet appears, none other
    assert max(letters.values()) < 1.25 * min(letters.values())  # 2,500 each expected
    assert intake.new_references("S", 0) == []
