"""The helpline: contacts, helpline cases, their state table (one test per
transition), referrals through the dispatch outbox with the evidence bundle, replies,
reminders on working time, URLs into the URL pipeline, retention with legal hold,
counsellors' welfare."""

from __future__ import annotations

import email
import hashlib
import io
import shutil
import zipfile
from email import policy
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select, text

from pipeline.app import privacy
from pipeline.core.errors import BadInput, NotFound
from pipeline.core.messaging import DISPATCH, NORMALISE, RecordingEnqueuer
from pipeline.domain.rules import RulesInvalid, cached_ruleset
from pipeline.stages import helpline
from pipeline.stages.dispatch import deliver_notices
from pipeline.store import audit
from pipeline.store.helpline_models import HelplineCase, HelplineContact, HelplineReferral
from pipeline.store.models import Event, Notice, Report
from pipeline.store.states import HELPLINE_CASE_TRANSITIONS, HelplineCaseState
from schemas.helpline import CaseIn, ContactIn, ReplyIn, TaskIn
from tests.assessment_support import make_user

ROOT = Path(__file__).resolve().parents[2]
H = HelplineCaseState
CALLER = "mother: +381 64 123 4567"
SUMMARY = "Daughter (13) blackmailed over Instagram by someone asking for more photos."


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """The shipped rules with addresses filled in, so the outbox writes whole e-mails."""
    folder = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", folder)
    data = yaml.safe_load((folder / "destinations.yaml").read_text())
    for key in ("rs-mup-vtk", "rs-vtk-prosecutor", "rs-school-authority"):
        data["destinations"][key]["address"] = f"{key}@example.rs"
    data["destinations"]["rs-mup-vtk"]["receives_personal_data"] = True
    (folder / "destinations.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    return folder


@pytest.fixture
def hl(runtime: Any, settings_factory: Any, rules_dir: Path) -> Any:
    """The runtime with settings pointing at the test rules, delivering to the outbox."""
    runtime.settings = settings_factory(
        database={"url": runtime.settings.database.url},
        routing={"rules_dir": str(rules_dir)},
        helpline={"rules_file": str(rules_dir / "helpline.yaml")},
        dispatch={"deliver": "outbox"})
    cached_ruleset.__globals__["_cache"].clear()
    return runtime


def call(**fields: Any) -> ContactIn:
    values: dict[str, Any] = {"channel": "phone", "caller_type": "parent", "topic": "sextortion",
                              "anonymous": False, "caller_contact": CALLER,
                              "summary": SUMMARY, "duration_minutes": 6}
    values.update(fields)
    return ContactIn(**values)


def record(rt: Any, item: ContactIn, counsellor: str = "ana") -> helpline.Outcome:
    now = rt.clock.now()
    return helpline.commit_then_enqueue(rt.session_factory, rt.enqueuer, lambda s: (
        helpline.record_contact(s, item, counsellor=counsellor, now=now, settings=rt.settings)))


def new_case(rt: Any, **case: Any) -> str:
    outcome = record(rt, call(case=CaseIn(**{"case_type": "sextortion", **case})))
    assert outcome.case is not None
    return outcome.case.ref


def do(rt: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
    with rt.session_factory.begin() as session:
        return fn(session, *args, now=rt.clock.now(), **kwargs)


def state_of(rt: Any, ref: str) -> str:
    with rt.session_factory() as session:
        return session.execute(select(HelplineCase.state).where(HelplineCase.ref == ref)
                               ).scalar_one()


# ----------------------------------------------------------------------- contacts


def test_a_contact_keeps_the_callers_data_encrypted_at_rest(hl):
    outcome = record(hl, call())
    assert outcome.contact is not None and outcome.case is None
    with hl.engine.connect() as conn:
        stored = conn.execute(text("SELECT caller_contact, summary FROM helpline_contacts")).one()
    assert all(value.startswith("fernet:") for value in stored)
    assert CALLER not in str(stored) and "Instagram" not in str(stored)
    with hl.session_factory() as session:
        contact = session.execute(select(HelplineContact)).scalar_one()
        assert (contact.caller_contact, contact.summary) == (CALLER, SUMMARY)
        assert contact.duration_seconds == 360
        [event] = session.execute(select(Event).where(Event.stream == f"contact:{contact.ref}")
                                  ).scalars()
        assert event.action == "contact_recorded" and CALLER not in str(event.data)


def test_an_anonymous_contact_cannot_carry_a_caller_contact():
    with pytest.raises(ValueError, match="caller_contact"):
        ContactIn(caller_type="child", topic="grooming", anonymous=True, caller_contact="x@y")


def test_a_summary_over_the_limit_is_refused_by_name(hl):
    with pytest.raises(BadInput, match="Shorten “Short summary”: it takes at most"):
        record(hl, call(summary="x" * (hl.settings.helpline.max_summary_chars + 1)))


# ------------------------------------------------------------- one test per transition


def test_transition_none_to_open_when_a_contact_forms_a_case(hl):
    ref = new_case(hl, child_age_group="10_13", relation="parent", accounts="instagram: @x1")
    assert state_of(hl, ref) == "open"
    with hl.session_factory() as session:
        case = session.execute(select(HelplineCase)).scalar_one()
        assert case.open_at == hl.clock.now() and case.accounts == "instagram: @x1"
        contact = session.execute(select(HelplineContact)).scalar_one()
        assert contact.helpline_case_id == case.id


def test_transition_open_to_advisory_closes_with_advice(hl):
    ref = new_case(hl)
    do(hl, helpline.close_advisory, ref, actor="user:ana")
    assert state_of(hl, ref) == "advisory"


def test_transition_open_to_referred_by_a_referral(hl):
    ref = new_case(hl)
    do(hl, helpline.refer, ref, ["rs-vtk-prosecutor"], actor="user:ana", settings=hl.settings)
    assert state_of(hl, ref) == "referred"


def test_transition_referred_to_answered_when_every_institution_replied(hl):
    ref = new_case(hl)
    do(hl, helpline.refer, ref, ["rs-vtk-prosecutor", "rs-school-authority"], actor="u",
       settings=hl.settings)
    do(hl, helpline.record_reply, ref, ReplyIn(destination="rs-vtk-prosecutor",
                                               reference="KTR-123/26"), actor="u",
       settings=hl.settings)
    assert state_of(hl, ref) == "referred"  # the school authority has not replied
    do(hl, helpline.record_reply, ref, ReplyIn(destination="rs-school-authority",
                                               text="The school is informed."), actor="u",
       settings=hl.settings)
    assert state_of(hl, ref) == "answered"


def test_transition_referred_to_closed(hl):
    ref = new_case(hl)
    do(hl, helpline.refer, ref, ["rs-vtk-prosecutor"], actor="u", settings=hl.settings)
    do(hl, helpline.close_case, ref, actor="u", reason="handed over by telephone")
    assert state_of(hl, ref) == "closed"


def test_transition_answered_to_closed(hl):
    ref = new_case(hl)
    do(hl, helpline.refer, ref, ["rs-vtk-prosecutor"], actor="u", settings=hl.settings)
    do(hl, helpline.record_reply, ref, ReplyIn(destination="rs-vtk-prosecutor",
                                               reference="KTR-1"), actor="u",
       settings=hl.settings)
    do(hl, helpline.close_case, ref, actor="u", reason="the prosecutor took it over")
    assert state_of(hl, ref) == "closed"


def test_transition_advisory_to_open_when_the_caller_comes_back(hl):
    ref = new_case(hl)
    do(hl, helpline.close_advisory, ref, actor="u")
    record(hl, call(join_case=ref))
    assert state_of(hl, ref) == "open"


def test_transition_answered_to_referred_by_a_later_referral(hl):
    ref = new_case(hl)
    do(hl, helpline.refer, ref, ["rs-vtk-prosecutor"], actor="u", settings=hl.settings)
    do(hl, helpline.record_reply, ref, ReplyIn(destination="rs-vtk-prosecutor",
                                               reference="KTR-2"), actor="u",
       settings=hl.settings)
    do(hl, helpline.refer, ref, ["rs-social-work-centre"], actor="u", settings=hl.settings)
    assert state_of(hl, ref) == "referred"


def test_every_declared_transition_has_its_test_above():
    tested = {(None, H.OPEN), (H.OPEN, H.ADVISORY), (H.OPEN, H.REFERRED),
              (H.REFERRED, H.ANSWERED), (H.REFERRED, H.CLOSED), (H.ANSWERED, H.CLOSED),
              (H.ADVISORY, H.OPEN), (H.ANSWERED, H.REFERRED)}
    assert set(HELPLINE_CASE_TRANSITIONS) == tested


def test_an_undeclared_transition_is_refused_by_name(hl):
    ref = new_case(hl)
    do(hl, helpline.close_advisory, ref, actor="u")
    with pytest.raises(BadInput, match="is closed as advisory: it cannot become closed"):
        do(hl, helpline.close_case, ref, actor="u", reason="x")
    with pytest.raises(BadInput, match="cannot be referred"):
        do(hl, helpline.refer, ref, ["rs-vtk-prosecutor"], actor="u", settings=hl.settings)
    with hl.session_factory() as session:
        assert audit.verify(session) == []


# ---------------------------------------------------------------------- referrals


def _outbox_mail(rt: Any, notice_id: int) -> email.message.EmailMessage:
    folder = Path(rt.settings.data_path) / "outbox"
    [path] = folder.glob(f"notice-{notice_id}-*.eml")
    return email.message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[return-value]


def test_a_referral_goes_once_through_dispatch_with_its_evidence_bundle(hl):
    ref = new_case(hl, urls=["https://instagram.com/groomer.account"])
    outcome = helpline.commit_then_enqueue(hl.session_factory, hl.enqueuer, lambda s: (
        helpline.refer(s, ref, ["rs-vtk-prosecutor"], actor="user:ana",
                       now=hl.clock.now(), settings=hl.settings)))
    again = helpline.commit_then_enqueue(hl.session_factory, hl.enqueuer, lambda s: (
        helpline.refer(s, ref, ["rs-vtk-prosecutor"], actor="user:ana",
                       now=hl.clock.now(), settings=hl.settings)))
    assert len(outcome.notice_ids) == 1 and again.notice_ids == []
    assert hl.enqueuer.ids(DISPATCH) == outcome.notice_ids
    result = deliver_notices(hl.session_factory, outcome.notice_ids, clock=hl.clock,
                             settings=hl.settings)
    assert result.sent == outcome.notice_ids
    # A second delivery run sends nothing more.
    assert deliver_notices(hl.session_factory, outcome.notice_ids, clock=hl.clock,
                           settings=hl.settings).sent == []
    message = _outbox_mail(hl, outcome.notice_ids[0])
    assert message["To"] == "rs-vtk-prosecutor@example.rs"
    body = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Prosleđivanje" in message["Subject"] and ref in message["Subject"]
    assert "https://instagram.com/groomer.account" in body
    # The prosecutor may not receive personal data (the flag is off by default).
    assert CALLER not in body and "Instagram by someone" not in body
    [attachment] = [p for p in message.iter_attachments()]
    archive = zipfile.ZipFile(io.BytesIO(attachment.get_content()))
    files = {Path(n).name: archive.read(n) for n in archive.namelist()}
    for line in files["SHA256SUMS"].decode().splitlines():
        digest, _, name = line.partition("  ")
        assert hashlib.sha256(files[name]).hexdigest() == digest
    assert CALLER.encode() not in b"".join(files.values())
    assert helpline.WITHHELD.encode() in files["contacts.json"]
    with hl.session_factory() as session:
        referral = session.execute(select(HelplineReferral)).scalar_one()
        assert referral.evidence_sha256 == hashlib.sha256(files["manifest.json"]).hexdigest()
        actions = list(session.execute(select(Event.action).where(
            Event.stream == f"helpline:{ref}").order_by(Event.seq)).scalars())
        assert actions[-2:] == ["helpline_referral_planned", "notice_sent"]
        assert audit.verify(session) == []


def test_an_institution_allowed_personal_data_receives_them_and_no_other(hl):
    ref = new_case(hl, notes="Father is away; call the mother after 16:00.")
    outcome = helpline.commit_then_enqueue(hl.session_factory, hl.enqueuer, lambda s: (
        helpline.refer(s, ref, ["@police", "rs-school-authority"], actor="u",
                       now=hl.clock.now(), settings=hl.settings)))
    deliver_notices(hl.session_factory, outcome.notice_ids, clock=hl.clock,
                    settings=hl.settings)
    police, school = (_outbox_mail(hl, i).get_body(("plain",)).get_content()  # type: ignore[union-attr]
                      for i in outcome.notice_ids)
    assert CALLER in police and "call the mother" in police
    assert CALLER not in school and "call the mother" not in school


def test_referral_to_an_unknown_or_non_institution_destination_is_named(hl):
    ref = new_case(hl)
    with pytest.raises(BadInput, match="nobody is not in the directory"):
        do(hl, helpline.refer, ref, ["nobody"], actor="u", settings=hl.settings)
    with pytest.raises(BadInput, match="hosting-provider does not take helpline referrals"):
        do(hl, helpline.refer, ref, ["hosting-provider"], actor="u", settings=hl.settings)


def test_the_urgency_rule_pages_the_police_at_once(hl):
    ref = new_case(hl, urgent=True)
    assert state_of(hl, ref) == "referred"
    with hl.session_factory() as session:
        referral = session.execute(select(HelplineReferral)).scalar_one()
        assert (referral.destination, referral.paged) == ("rs-mup-vtk", True)
        case = session.execute(select(HelplineCase)).scalar_one()
        assert case.routing["steps"][0]["rule"] == "child-in-danger-pages-police"
        assert case.routing["steps"][0]["hit"] is True
        notice = session.get(Notice, referral.notice_id)
        assert notice.subject.startswith("HITNO")
    assert hl.enqueuer.ids(DISPATCH) == [referral.notice_id]


def test_a_case_that_is_not_urgent_pages_nobody(hl):
    ref = new_case(hl)
    assert state_of(hl, ref) == "open"
    assert hl.enqueuer.ids(DISPATCH) == []


def test_paging_is_routing_data_a_new_rule_needs_no_code(hl, rules_dir):
    (rules_dir / "helpline.yaml").write_text(yaml.safe_dump({"rules": [{
        "name": "young-grooming-to-prosecutor", "description": "test rule",
        "when": {"case_type": "grooming", "child_age_group": "under_10"},
        "then": [{"notify": "rs-vtk-prosecutor"}]}]}))
    ref = new_case(hl, case_type="grooming", child_age_group="under_10")
    with hl.session_factory() as session:
        assert session.execute(select(HelplineReferral.destination)).scalar_one() == (
            "rs-vtk-prosecutor")
    assert state_of(hl, ref) == "referred"


def test_a_helpline_rule_naming_an_unknown_fact_or_target_is_refused(hl, rules_dir):
    (rules_dir / "helpline.yaml").write_text(yaml.safe_dump({"rules": [{
        "name": "bad", "description": "x", "when": {"colour": "red"},
        "then": [{"notify": "hosting-provider"}]}]}))
    with pytest.raises(RulesInvalid) as caught:
        helpline.load_helpline_rules(rules_dir / "helpline.yaml",
                                     helpline.directory_of(hl.settings))
    text_ = str(caught.value.problems if hasattr(caught.value, "problems") else caught.value)
    assert "when.colour: unknown fact" in text_ and "does not take helpline referrals" in text_


def test_a_silent_institution_is_reminded_on_working_time_once_per_round(hl):
    ref = new_case(hl)
    outcome = helpline.commit_then_enqueue(hl.session_factory, hl.enqueuer, lambda s: (
        helpline.refer(s, ref, ["rs-vtk-prosecutor"], actor="u", now=hl.clock.now(),
                       settings=hl.settings)))
    deliver_notices(hl.session_factory, outcome.notice_ids, clock=hl.clock,
                    settings=hl.settings)
    enqueuer = RecordingEnqueuer()

    def remind() -> list[int]:
        return helpline.plan_reminders(hl.session_factory, settings=hl.settings,
                                       clock=hl.clock, enqueuer=enqueuer)

    # Sent Monday 10:00 in Belgrade; working hours 09-17 there: 40 working hours come
    # the next Monday at 10:00 (7 + 4 x 8 + 1), not before, weekend or not.
    hl.clock.advance(days=5, minutes=-1)  # Saturday 09:59: 39 working hours
    assert remind() == []
    hl.clock.advance(days=2, minutes=1)  # Monday 10:00
    [first] = remind()
    assert remind() == []  # not twice
    with hl.session_factory() as session:
        notice = session.get(Notice, first)
        assert (notice.kind, notice.round, notice.helpline_case_id) == ("reminder", 1,
                                                                        notice.helpline_case_id)
        assert notice.subject.startswith("PODSETNIK 1")
    deliver_notices(hl.session_factory, [first], clock=hl.clock, settings=hl.settings)
    do(hl, helpline.record_reply, ref, ReplyIn(destination="rs-vtk-prosecutor",
                                               reference="KTR-9"), actor="u",
       settings=hl.settings)
    hl.clock.advance(days=14)
    assert remind() == []  # it replied
    assert enqueuer.ids(DISPATCH) == [first]


# ---------------------------------------------------------------- URLs in a case


def test_urls_in_a_case_enter_the_url_pipeline_through_intake_and_show_their_state(hl):
    ref = new_case(hl, urgent=False, urls=["https://instagram.com/x1", "https://t.me/grp"])
    with hl.session_factory() as session:
        reports = session.execute(select(Report).order_by(Report.id)).scalars().all()
        assert [r.url for r in reports] == ["https://instagram.com/x1", "https://t.me/grp"]
        assert {(r.state, r.source, r.claimed_category, r.reporter_contact, r.description)
                for r in reports} == {("received", "helpline", "sextortion", None, None)}
        assert hl.enqueuer.ids(NORMALISE) == [r.id for r in reports]
        # The report's own audit stream starts as every report's does.
        first = session.execute(select(Event.action).where(
            Event.stream == f"report:{reports[0].ref}")).scalar_one()
        assert first == "report_received"
        view = helpline.case_view(session, ref, now=hl.clock.now(), settings=hl.settings)
        assert [(r.url, r.report_state, r.case_state) for r in view.reports] == [
            ("https://instagram.com/x1", "received", None), ("https://t.me/grp", "received", None)]


def test_urls_added_later_are_reported_and_linked(hl):
    ref = new_case(hl)
    outcome = helpline.commit_then_enqueue(hl.session_factory, hl.enqueuer, lambda s: (
        helpline.add_urls(s, ref, ["http://example.com/profile"], actor="u",
                          now=hl.clock.now(), settings=hl.settings)))
    assert hl.enqueuer.ids(NORMALISE) == outcome.report_ids
    with hl.session_factory() as session:
        view = helpline.case_view(session, ref, now=hl.clock.now(), settings=hl.settings)
    assert [r.report_ref for r in view.reports] == outcome.report_refs


# --------------------------------------------------------------- tasks, welfare


def test_tasks_have_due_dates_and_show_when_overdue(hl):
    ref = new_case(hl)
    due = hl.clock.now().replace(hour=14)
    task = do(hl, helpline.add_task, ref, TaskIn(title="Call the mother back", due_at=due),
              actor="u")
    hl.clock.advance(hours=6)
    with hl.session_factory() as session:
        [seen] = helpline.case_view(session, ref, now=hl.clock.now(), settings=hl.settings).tasks
    assert seen.overdue
    do(hl, helpline.complete_task, ref, task.id, actor="u")
    with hl.session_factory() as session:
        [seen] = helpline.case_view(session, ref, now=hl.clock.now(), settings=hl.settings).tasks
    assert not seen.overdue and seen.done_at is not None


def test_counsellors_exposure_to_calls_about_abuse_is_counted_per_day(hl):
    with hl.session_factory.begin() as session:
        make_user(session, "ana", "counsellor", at=hl.clock.now())
    hl.settings.helpline.welfare_abuse_soft_limit = 3
    for topic in ("sextortion", "grooming", "online_safety"):
        record(hl, call(topic=topic))
    with hl.session_factory() as session:
        [ana] = helpline.counsellor_welfare(session, now=hl.clock.now(), settings=hl.settings)
    assert (ana.user, ana.contacts, ana.abuse_contacts, ana.take_a_break) == ("ana", 3, 2, False)
    record(hl, call(topic="csam"))
    with hl.session_factory() as session:
        [ana] = helpline.counsellor_welfare(session, now=hl.clock.now(), settings=hl.settings)
    assert (ana.abuse_contacts, ana.take_a_break, ana.minutes_on_contacts) == (3, True, 24.0)
    hl.clock.advance(days=1)
    with hl.session_factory() as session:
        [ana] = helpline.counsellor_welfare(session, now=hl.clock.now(), settings=hl.settings)
    assert ana.abuse_contacts == 0


# ------------------------------------------------------------------------ retention


def test_retention_purges_callers_data_after_the_case_ended_unless_held(hl):
    held = new_case(hl)
    purged = new_case(hl)
    for ref in (held, purged):
        do(hl, helpline.close_advisory, ref, actor="u")
    do(hl, helpline.set_legal_hold, held, by="sup", requested_by="VTK 12/26", reason="inquiry")
    hl.clock.advance(days=hl.settings.helpline.personal_data_days + 1)
    counts = helpline.purge_personal_data(hl.session_factory, settings=hl.settings,
                                          now=hl.clock.now())
    assert counts == {"cases": 1, "contacts": 0, "held": 1}
    with hl.session_factory() as session:
        rows = {c.ref: c for c in session.execute(select(HelplineCase)).scalars()}
        contacts = {c.helpline_case_id: c for c in session.execute(
            select(HelplineContact)).scalars()}
        assert contacts[rows[purged].id].caller_contact is None
        assert contacts[rows[purged].id].summary is None
        assert contacts[rows[purged].id].topic == "sextortion"  # statistics unchanged
        assert contacts[rows[held].id].caller_contact == CALLER
        assert audit.verify(session) == []
    do(hl, helpline.lift_legal_hold, held, by="sup", reason="inquiry closed")
    assert helpline.purge_personal_data(hl.session_factory, settings=hl.settings,
                                        now=hl.clock.now())["cases"] == 1


def test_a_contact_without_a_case_is_purged_from_its_received_time(hl):
    record(hl, call())
    hl.clock.advance(days=hl.settings.helpline.personal_data_days + 1)
    assert helpline.purge_personal_data(hl.session_factory, settings=hl.settings,
                                        now=hl.clock.now())["contacts"] == 1
    with hl.session_factory() as session:
        contact = session.execute(select(HelplineContact)).scalar_one()
        assert (contact.caller_contact, contact.summary) == (None, None)


def test_what_the_stage_records_is_what_the_statistics_count(hl):
    from datetime import date

    from pipeline.stages.stats import export_stats

    referred, advisory = new_case(hl), new_case(hl, case_type="grooming")
    record(hl, call(channel="email", caller_type="teacher", topic="online_safety"))
    do(hl, helpline.refer, referred, ["rs-vtk-prosecutor"], actor="u", settings=hl.settings)
    do(hl, helpline.close_advisory, advisory, actor="u")
    day = hl.clock.now().date()
    with hl.session_factory() as session:
        h = export_stats(session, day, date(day.year, day.month, day.day),
                         settings=hl.settings, now=hl.clock.now()).helpline
    assert (h.communications, h.cases) == (3, 2)
    assert {c.key: c.count for c in h.communications_by_channel} == {"phone": 2, "email": 1}
    assert {c.key: c.count for c in h.by_outcome} == {"advisory": 1, "referred": 1}
    assert {c.key: c.count for c in h.referred_by_institution} == {"rs-vtk-prosecutor": 1}
    assert {c.key: c.count for c in h.cases_by_type} == {"sextortion": 1, "grooming": 1}


def test_the_scheduler_runs_the_helpline_reminders_and_purge(hl):
    from pipeline.app.scheduler import JOBS

    jobs = {job.name: job for job in JOBS}
    ref = new_case(hl)
    outcome = helpline.commit_then_enqueue(hl.session_factory, hl.enqueuer, lambda s: (
        helpline.refer(s, ref, ["rs-vtk-prosecutor"], actor="u", now=hl.clock.now(),
                       settings=hl.settings)))
    deliver_notices(hl.session_factory, outcome.notice_ids, clock=hl.clock,
                    settings=hl.settings)
    hl.clock.advance(days=8)
    assert jobs["helpline-reminders"].run(hl) == {"reminders": 1}
    do(hl, helpline.close_case, ref, actor="u", reason="done")
    hl.clock.advance(days=hl.settings.helpline.personal_data_days + 1)
    assert jobs["helpline-retention"].run(hl) == {"cases": 1, "contacts": 0, "held": 0}
    with hl.session_factory() as session:
        bodies = [n.body for n in session.execute(select(Notice)).scalars()]
    assert bodies == [helpline.PURGED, helpline.PURGED]


def test_a_message_from_the_mailbox_or_form_becomes_a_helpline_contact(hl):
    with hl.session_factory.begin() as session:
        contact = helpline.record_incoming(
            session, channel="email", received_at=hl.clock.now(), summary="My son is bullied",
            sender="parent@example.rs", language="sr", now=hl.clock.now(),
            settings=hl.settings, source="mailbox")
        ref = contact.ref
    with hl.session_factory() as session:
        stored = session.execute(select(HelplineContact).where(HelplineContact.ref == ref)
                                 ).scalar_one()
        assert (stored.channel, stored.source, stored.anonymous) == ("email", "mailbox", False)
        assert stored.caller_contact == "parent@example.rs"
        assert session.execute(select(Report)).first() is None  # not a URL report


MAIL = ROOT / "tests" / "data" / "mail"


def _look_at(hl: Any, name: str) -> int:
    """A message from the test corpus taken by the mailbox into its look-at queue."""
    from pipeline.stages.mailbox import take_message

    taken = take_message(hl.session_factory, (MAIL / name).read_bytes(), via="lmtp",
                         clock=hl.clock, settings=hl.settings, enqueuer=RecordingEnqueuer())
    assert taken.outcome == "look_at"
    return taken.message_id


def within(rt: Any, work: Any) -> Any:
    with rt.session_factory.begin() as session:
        return work(session)


def test_a_mail_message_becomes_a_helpline_contact_once_linked_and_audited(hl):
    from pipeline.store.mail_models import MailMessage

    message_id = _look_at(hl, "20-attachment-only-no-url.eml")
    done = within(hl, lambda s: helpline.contact_from_mail(s, message_id, counsellor="cara",
                                                        now=hl.clock.now(), settings=hl.settings))
    assert done.created
    again = within(hl, lambda s: helpline.contact_from_mail(s, message_id, counsellor="ivo",
                                                         now=hl.clock.now(), settings=hl.settings))
    assert (again.contact_ref, again.created) == (done.contact_ref, False)
    with hl.session_factory() as session:
        contact = session.execute(select(HelplineContact)).scalar_one()
        message = session.get(MailMessage, message_id)
        assert (message.state, message.helpline_contact_ref) == ("helpline", contact.ref)
        assert message.looked_at_by == "user:cara"
        assert (message.sender, message.subject) == (None, None)  # moved to the contact
        assert (contact.channel, contact.source, contact.counsellor) == ("email", "mailbox",
                                                                          "cara")
        assert (contact.anonymous, contact.caller_contact) == (False, "someone@mail.example")
        assert contact.summary.startswith("E-mail: see file")
        assert "evidence.pdf (application/pdf)" in contact.summary  # by name, never content
        assert session.execute(select(Report)).first() is None
        actions = session.execute(select(Event.action, Event.actor).where(
            Event.action.in_(["mail_to_helpline", "contact_recorded"]))).all()
        assert sorted(actions) == [("contact_recorded", "user:cara"),
                                   ("mail_to_helpline", "user:cara")]
        stored = session.execute(text("SELECT caller_contact FROM helpline_contacts")).scalar()
        assert "someone@mail.example" not in stored  # encrypted at rest


def test_a_mail_message_looked_at_or_unknown_is_not_turned_into_a_contact(hl):
    from pipeline.core.errors import NotFound
    from pipeline.stages.mailbox import mark_looked_at

    message_id = _look_at(hl, "21-no-url-question.eml")
    within(hl, lambda s: mark_looked_at(s, message_id, by="user:ana", clock=hl.clock))
    for wanted in (message_id, 999):
        with pytest.raises(NotFound), hl.session_factory.begin() as session:
            helpline.contact_from_mail(session, wanted, counsellor="cara",
                                       now=hl.clock.now(), settings=hl.settings)
    with hl.session_factory() as session:
        assert session.execute(select(HelplineContact)).first() is None


def test_two_people_turning_one_mail_message_at_once_make_one_contact(hl):
    import threading

    message_id = _look_at(hl, "21-no-url-question.eml")
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def turn(name: str) -> None:
        barrier.wait()
        try:
            with hl.session_factory.begin() as session:
                results.append(helpline.contact_from_mail(
                    session, message_id, counsellor=name, now=hl.clock.now(),
                    settings=hl.settings))
        except Exception as exc:  # noqa: BLE001 - recorded and asserted below
            results.append(exc)

    threads = [threading.Thread(target=turn, args=(n,)) for n in ("cara", "sue")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(r.created for r in results) == [False, True], results
    assert results[0].contact_ref == results[1].contact_ref
    with hl.session_factory() as session:
        assert len(session.execute(select(HelplineContact)).all()) == 1
        assert len(session.execute(select(Event).where(
            Event.action == "mail_to_helpline")).all()) == 1


def test_two_counsellors_referring_at_once_make_one_referral(hl):
    import threading

    ref = new_case(hl)
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def refer() -> None:
        barrier.wait()
        try:
            results.append(helpline.commit_then_enqueue(hl.session_factory, hl.enqueuer,
                                                        lambda s: helpline.refer(
                s, ref, ["rs-vtk-prosecutor"], actor="u", now=hl.clock.now(),
                settings=hl.settings)).notice_ids)
        except Exception as exc:  # noqa: BLE001 - recorded and asserted below
            results.append(exc)

    threads = [threading.Thread(target=refer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(len(r) for r in results) == [0, 1], results
    with hl.session_factory() as session:
        assert len(session.execute(select(Notice)).all()) == 1
        assert len(session.execute(select(HelplineReferral)).all()) == 1


def test_after_a_key_rotation_the_helplines_data_go_under_the_first_key(hl, settings_factory):
    from cryptography.fernet import Fernet

    from pipeline.core import crypto
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    crypto.install_keys(settings_factory(privacy={"encryption_key": old}))
    new_case(hl, accounts="instagram: @x", notes="call after 16:00")
    crypto.install_keys(settings_factory(privacy={"encryption_key": f"{new},{old}"}))
    done = privacy.reencrypt_helpline(hl.session_factory, at=hl.clock.now(), actor="user:ops")
    assert (done.rotated, done.clear) == (4, 0)  # contact, summary, accounts, notes
    only_new = Fernet(new)
    with hl.engine.connect() as conn:
        stored = conn.execute(text("SELECT caller_contact, summary FROM helpline_contacts")
                              ).one()
    assert only_new.decrypt(stored[0][len(crypto.PREFIX):].encode()).decode() == CALLER
    again = privacy.reencrypt_helpline(hl.session_factory, at=hl.clock.now(), actor="user:ops")
    assert (again.rotated, again.current) == (0, 4)
    with hl.session_factory() as session:
        event = session.execute(select(Event).where(
            Event.action == "helpline_data_reencrypted")).scalars().first()
        assert event is not None and CALLER not in str(event.data)


def test_the_addresses_written_in_a_message_are_found_once_in_order():
    text = ("See https://bad.example.net/u/x, and www.bad.example.org. Again: "
            "https://bad.example.net/u/x (ftp://no.example is not offered)")
    assert helpline.urls_in(text) == ["https://bad.example.net/u/x", "www.bad.example.org"]
    assert helpline.urls_in(None) == []


def test_a_contact_from_the_form_is_taken_up_into_a_case_with_its_urls(hl):
    with hl.session_factory.begin() as session:
        ref = helpline.record_incoming(
            session, channel="contact_form", received_at=hl.clock.now(),
            summary="Blackmail: https://bad.example.net/u/x", sender=None, language="en",
            now=hl.clock.now(), settings=hl.settings, source="form").ref
    with hl.session_factory() as session:
        assert session.execute(select(Report)).first() is None  # nothing reported yet
        assert [c.ref for c in helpline.waiting_contacts(session)] == [ref]
    outcome = helpline.commit_then_enqueue(hl.session_factory, hl.enqueuer, lambda s: (
        helpline.take_up(s, ref, caller_type="child", topic="sextortion",
                         case=CaseIn(case_type="sextortion", urls=helpline.urls_in(
                             "Blackmail: https://bad.example.net/u/x")),
                         join=None, counsellor="cara", now=hl.clock.now(),
                         settings=hl.settings)))
    assert outcome.case is not None and len(outcome.report_ids) == 1
    assert hl.enqueuer.ids(NORMALISE) == outcome.report_ids
    with hl.session_factory() as session:
        contact, case_ref = helpline.find_contact(session, ref.lower())
        assert (contact.caller_type, contact.topic, contact.counsellor) == (
            "child", "sextortion", "cara")
        assert case_ref == outcome.case.ref and contact.taken_up_at == hl.clock.now()
        assert helpline.waiting_contacts(session) == []
        event = session.execute(select(Event).where(Event.action == "contact_taken_up")
                                ).scalar_one()
        assert event.data["before"] == {"caller_type": "other", "topic": "other"}
    with pytest.raises(BadInput, match="already belongs to a case"), \
            hl.session_factory.begin() as session:
        helpline.take_up(session, ref, caller_type="child", topic="grooming",
                         case=CaseIn(case_type="grooming"), join=None, counsellor="sue",
                         now=hl.clock.now(), settings=hl.settings)
    with pytest.raises(NotFound), hl.session_factory.begin() as session:
        helpline.take_up(session, "K-NOPE", caller_type="child", topic="grooming",
                         case=None, join=None, counsellor="sue", now=hl.clock.now(),
                         settings=hl.settings)
