"""The assessment queue: claims with leases, decisions, four eyes, same-site work,
welfare, the case view; on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select

from pipeline.app.auth import audit_denials
from pipeline.core.config import AssessmentSection
from pipeline.core.errors import PermissionDenied
from pipeline.stages import assessment
from pipeline.store.assessment_models import Assessment, CaseLease
from pipeline.store.audit import verify
from pipeline.store.models import Case, Event
from schemas.assessment import AssessmentIn
from tests.assessment_support import people, queue

LEASE = 600
CSAM = {"legality": "illegal_international", "category": "csam", "age_group": "pre_pubescent",
        "gender": "female", "site_type": "image_host", "content_type": "image",
        "commercial": False}


def decision(**fields) -> AssessmentIn:
    return AssessmentIn.model_validate(fields)


def claim(runtime, principal, kind="any"):
    with runtime.session_factory.begin() as session:
        return assessment.claim_next(session, principal, now=runtime.clock.now(),
                                     lease_seconds=LEASE, kind=kind)


def assess(runtime, principal, case_id, item, settings=None):
    with runtime.session_factory.begin() as session:
        d = assessment.assess(session, principal, case_id, item, now=runtime.clock.now(),
                              settings=settings or runtime.settings.assessment)
        return d.outcome, d.case.state, d.route


def case_row(runtime, case_id) -> Case:
    with runtime.session_factory() as session:
        return session.get(Case, case_id)


def test_the_queue_gives_the_highest_priority_first_then_the_oldest(runtime):
    p = people(runtime, ("ana", "analyst"))["ana"]
    old_low, new_high, old_high, newest_low = queue(
        runtime,
        {"url": "http://a.example/1", "age_minutes": 90, "priority": 0},
        {"url": "http://a.example/2", "age_minutes": 5, "priority": 100},
        {"url": "http://a.example/3", "age_minutes": 60, "priority": 100},
        {"url": "http://a.example/4", "age_minutes": 1, "priority": 0},
    )
    order = [claim(runtime, p).case_id for _ in range(4)]
    assert order == [old_high, new_high, old_low, newest_low]
    assert claim(runtime, p) is None


def test_a_claimed_case_is_in_assessment_with_a_lease_until_it_expires(runtime):
    p = people(runtime, ("ana", "analyst"))["ana"]
    [case_id] = queue(runtime, {"url": "http://a.example/1"})
    lease = claim(runtime, p)
    assert lease.case_id == case_id and lease.holder == "ana"
    assert (lease.expires_at - runtime.clock.now()).total_seconds() == LEASE
    assert case_row(runtime, case_id).state == "in_assessment"

    runtime.clock.advance(seconds=LEASE - 1)
    with runtime.session_factory.begin() as session:
        assert assessment.expire_leases(session, now=runtime.clock.now()) == 0
    runtime.clock.advance(seconds=2)
    with runtime.session_factory.begin() as session:
        assert assessment.expire_leases(session, now=runtime.clock.now()) == 1
    assert case_row(runtime, case_id).state == "awaiting_assessment"
    with runtime.session_factory() as session:
        assert session.get(CaseLease, case_id) is None
        actions = session.execute(select(Event.action).where(Event.case_id == case_id)
                                  .order_by(Event.id)).scalars().all()
    assert actions[-2:] == ["case_claimed", "case_lease_expired"]


def test_the_lease_job_is_registered_with_the_scheduler():
    from pipeline.app.scheduler import JOBS

    assert "assessment-leases" in {job.name for job in JOBS}


def test_a_released_case_returns_to_the_queue_and_another_analyst_can_claim_it(runtime):
    who = people(runtime, ("ana", "analyst"), ("bo", "analyst"))
    [case_id] = queue(runtime, {"url": "http://a.example/1"})
    claim(runtime, who["ana"])
    assert claim(runtime, who["bo"]) is None
    with runtime.session_factory.begin() as session:
        assessment.release(session, who["ana"], case_id, now=runtime.clock.now())
    assert claim(runtime, who["bo"]).case_id == case_id


def test_an_analyst_cannot_assess_or_release_a_case_another_holds_and_it_is_audited(runtime):
    who = people(runtime, ("ana", "analyst"), ("bo", "analyst"))
    [case_id] = queue(runtime, {"url": "http://a.example/1"})
    claim(runtime, who["ana"])
    with pytest.raises(PermissionDenied, match="held by another analyst"), audit_denials(
        runtime.session_factory, who["bo"], runtime.clock
    ):
        assess(runtime, who["bo"], case_id, decision(**CSAM))
    with pytest.raises(PermissionDenied), runtime.session_factory.begin() as session:
        assessment.release(session, who["bo"], case_id, now=runtime.clock.now())
    assert case_row(runtime, case_id).state == "in_assessment"
    with runtime.session_factory() as session:
        denial = session.execute(select(Event).where(Event.stream == "user:bo")).scalar_one()
    assert denial.action == "access_denied" and denial.case_id == case_id


def test_a_final_illegal_decision_is_copied_onto_the_case_which_waits_for_routing(runtime):
    p = people(runtime, ("ana", "analyst"))["ana"]
    [case_id] = queue(runtime, {"url": "http://a.example/1", "claimed_category": "csam"})
    claim(runtime, p)
    assert assess(runtime, p, case_id, decision(**CSAM)) == ("finalised", "assessed", True)
    case = case_row(runtime, case_id)
    assert (case.legality, case.category) == ("illegal_international", "csam")
    with runtime.session_factory() as session:
        a = session.execute(select(Assessment)).scalar_one()
        assert session.get(CaseLease, case_id) is None
    assert a.final and a.kind == "first" and a.age_group == "pre_pubescent"


@pytest.mark.parametrize("legality", ["not_illegal", "out_of_remit", "content_not_available"])
def test_a_decision_that_needs_no_action_closes_the_case(runtime, legality):
    p = people(runtime, ("ana", "analyst"))["ana"]
    [case_id] = queue(runtime, {"url": "http://a.example/1", "claimed_category": "phishing"})
    claim(runtime, p)
    assert assess(runtime, p, case_id, decision(legality=legality)) == ("closed", "closed",
                                                                         False)
    case = case_row(runtime, case_id)
    assert case.legality == legality and case.open_key is None and case.closed_at is not None


def test_a_national_law_decision_needs_a_second_analyst_who_is_not_the_first(runtime):
    who = people(runtime, ("ana", "analyst"), ("bo", "analyst"))
    [case_id] = queue(runtime, {"url": "http://a.example/1"})
    claim(runtime, who["ana"])
    national = decision(legality="illegal_national", category="hate_speech")
    assert assess(runtime, who["ana"], case_id, national)[:2] == (
        "needs_second_assessment", "awaiting_second_assessment")
    assert claim(runtime, who["ana"]) is None  # the first analyst is never offered it
    lease = claim(runtime, who["bo"])
    assert (lease.case_id, lease.kind) == (case_id, "second")
    assert assess(runtime, who["bo"], case_id, national) == ("finalised", "assessed", True)
    with runtime.session_factory() as session:
        kinds = session.execute(select(Assessment.kind, Assessment.final, Assessment.four_eyes_rule)
                                .order_by(Assessment.id)).all()
    assert [tuple(k) for k in kinds] == [("first", False, "national_law"),
                                         ("second", True, "national_law")]


def test_a_not_illegal_decision_on_a_report_claimed_as_csam_needs_four_eyes(runtime):
    who = people(runtime, ("ana", "analyst"))
    [case_id] = queue(runtime, {"url": "http://a.example/1", "claimed_category": "csam"})
    claim(runtime, who["ana"])
    outcome, state, _ = assess(runtime, who["ana"], case_id, decision(legality="not_illegal"))
    assert (outcome, state) == ("needs_second_assessment", "awaiting_second_assessment")


def test_a_second_assessment_needs_the_analysts_own_claim(runtime):
    who = people(runtime, ("ana", "analyst"), ("bo", "analyst"))
    [case_id] = queue(runtime, {"url": "http://a.example/1"})
    claim(runtime, who["ana"])
    assess(runtime, who["ana"], case_id, decision(legality="illegal_national",
                                                  category="hate_speech"))
    with pytest.raises(PermissionDenied, match="claim it first"):
        assess(runtime, who["bo"], case_id, decision(legality="not_illegal"))


def test_disagreement_goes_to_a_supervisor_who_did_not_assess_it(runtime):
    who = people(runtime, ("ana", "analyst"), ("bo", "analyst"), ("sue", "supervisor"),
                 ("sam", "supervisor"))
    [case_id] = queue(runtime, {"url": "http://a.example/1", "claimed_category": "csam"})
    claim(runtime, who["ana"])
    assess(runtime, who["ana"], case_id, decision(legality="not_illegal"))
    claim(runtime, who["sue"], kind="second")  # a supervisor may make a second assessment
    assert assess(runtime, who["sue"], case_id, decision(**CSAM))[:2] == (
        "disputed", "awaiting_supervisor")
    with pytest.raises(PermissionDenied, match="awaits a supervisor"):
        assess(runtime, who["bo"], case_id, decision(**CSAM))
    with pytest.raises(PermissionDenied, match="who assessed it"):
        assess(runtime, who["sue"], case_id, decision(**CSAM))
    assert assess(runtime, who["sam"], case_id, decision(**CSAM)) == (
        "finalised", "assessed", True)
    assert case_row(runtime, case_id).legality == "illegal_international"


def test_four_eyes_can_be_turned_off(runtime):
    p = people(runtime, ("ana", "analyst"))["ana"]
    [case_id] = queue(runtime, {"url": "http://a.example/1"})
    claim(runtime, p)
    outcome, state, _ = assess(runtime, p, case_id,
                               decision(legality="illegal_national", category="hate_speech"),
                               settings=AssessmentSection(four_eyes=[]))
    assert (outcome, state) == ("finalised", "assessed")


def test_assessing_an_unclaimed_or_decided_case_is_a_conflict(runtime):
    p = people(runtime, ("ana", "analyst"))["ana"]
    [case_id] = queue(runtime, {"url": "http://a.example/1"})
    with pytest.raises(assessment.Conflict, match="not claimed"):
        assess(runtime, p, case_id, decision(legality="not_illegal"))
    claim(runtime, p)
    assess(runtime, p, case_id, decision(legality="out_of_remit"))
    with pytest.raises(assessment.Conflict, match="closed"):
        assess(runtime, p, case_id, decision(legality="out_of_remit"))


def test_same_site_work_claims_the_sites_open_cases_and_applies_one_decision(runtime):
    who = people(runtime, ("ana", "analyst"), ("bo", "analyst"))
    ids = queue(
        runtime,
        {"url": "http://img.bad.example/1", "host": "img.bad.example",
         "registered_domain": "bad.example"},
        {"url": "http://www.bad.example/2", "host": "www.bad.example",
         "registered_domain": "bad.example"},
        {"url": "http://bad.example/3", "host": "bad.example",
         "registered_domain": "bad.example", "age_minutes": 30},
        {"url": "http://other.example/4", "host": "other.example",
         "registered_domain": "other.example", "age_minutes": 60},
    )
    # Bo holds one case of the site already; it is left to him.
    with runtime.session_factory.begin() as session:
        assessment.claim_site(session, who["bo"], now=runtime.clock.now(), lease_seconds=LEASE,
                              max_cases=1, host="bad.example")
    with runtime.session_factory.begin() as session:
        site, leases, skipped = assessment.claim_site(
            session, who["ana"], now=runtime.clock.now(), lease_seconds=LEASE, max_cases=50,
            case_key=str(ids[0]))
    assert site == "bad.example" and skipped == 1
    assert sorted(lease.case_id for lease in leases) == sorted(ids[:2])
    with runtime.session_factory.begin() as session:
        decisions = assessment.assess_many(session, who["ana"], [str(i) for i in ids[:2]],
                                           decision(**CSAM), now=runtime.clock.now(),
                                           settings=runtime.settings.assessment)
    assert [d.outcome for d in decisions] == ["finalised", "finalised"]
    assert {case_row(runtime, i).legality for i in ids[:2]} == {"illegal_international"}
    assert case_row(runtime, ids[3]).state == "awaiting_assessment"


def test_one_decision_on_several_cases_is_all_or_nothing(runtime):
    who = people(runtime, ("ana", "analyst"), ("bo", "analyst"))
    ids = queue(runtime, {"url": "http://a.example/1"}, {"url": "http://a.example/2",
                                                         "age_minutes": 1})
    claim(runtime, who["ana"])  # the older case
    claim(runtime, who["bo"])
    with (pytest.raises(PermissionDenied, match="held by another analyst"),
          runtime.session_factory.begin() as session):
        assessment.assess_many(session, who["ana"], [str(ids[1]), str(ids[0])],
                               decision(legality="not_illegal"), now=runtime.clock.now(),
                               settings=AssessmentSection(four_eyes=[]))
    assert case_row(runtime, ids[1]).state == "in_assessment"


def test_welfare_counts_todays_csam_assessments_and_prompts_a_break_at_the_limit(runtime):
    p = people(runtime, ("ana", "analyst"))["ana"]
    ids = queue(runtime, *[{"url": f"http://a.example/{i}", "age_minutes": 10 - i}
                           for i in range(3)])
    settings = AssessmentSection(four_eyes=[], welfare_csam_soft_limit=2)
    for i, case_id in enumerate(ids):
        claim(runtime, p)
        runtime.clock.advance(minutes=4)
        item = decision(**CSAM) if i < 2 else decision(legality="not_illegal")
        assess(runtime, p, case_id, item, settings=settings)
    with runtime.session_factory() as session:
        [w] = assessment.welfare_all(session, now=runtime.clock.now(), settings=settings)
    assert (w.user, w.csam_assessments, w.assessments) == ("ana", 2, 3)
    assert w.minutes_in_queue == 12.0 and w.take_a_break
    runtime.clock.advance(days=1)
    with runtime.session_factory() as session:
        [w] = assessment.welfare_all(session, now=runtime.clock.now(), settings=settings)
    assert w.assessments == 0 and not w.take_a_break


def test_the_case_view_shows_reports_history_and_earlier_cases(runtime):
    who = people(runtime, ("ana", "analyst"), ("sue", "supervisor"))
    earlier, case_id = queue(
        runtime,
        {"url": "http://a.example/old", "age_minutes": 600},
        {"url": "http://a.example/1", "contact": "reporter@example.org",
         "claimed_category": "csam"},
    )
    claim(runtime, who["ana"])  # the older one
    lease = claim(runtime, who["ana"])
    assert lease.case_id == case_id
    with runtime.session_factory.begin() as session:
        view = assessment.case_view(session, who["ana"], case_id, now=runtime.clock.now(),
                                    settings=runtime.settings.assessment)
    assert view.canonical_url == "http://a.example/1" and view.lease.holder == "ana"
    [report] = view.reports
    assert report.reporter_contact is None and report.reporter_contact_given
    assert [c.id for c in view.earlier_cases] == [earlier]
    assert view.earlier_cases[0].relation == "same_site"
    assert [h.action for h in view.history] == ["case_claimed"]

    with runtime.session_factory.begin() as session:
        view = assessment.case_view(session, who["sue"], case_id, now=runtime.clock.now(),
                                    settings=runtime.settings.assessment)
    assert view.reports[0].reporter_contact == "reporter@example.org"
    assert view.history[-1].action == "reporter_contact_viewed"
    assert view.history[-1].actor == "user:sue"


def test_the_case_view_names_the_urls_earlier_closed_case_as_the_same_url(runtime):
    who = people(runtime, ("ana", "analyst"))
    [earlier] = queue(runtime, {"url": "http://b.example/x", "age_minutes": 900,
                                "host": "b.example", "registered_domain": "b.example"})
    with runtime.session_factory.begin() as session:  # closed: the URL has no open case
        old = session.get(Case, earlier)
        old.state, old.open_key, old.closed_at = "closed", None, runtime.clock.now()
    case_id, _elsewhere = queue(
        runtime,
        {"url": "http://b.example/x", "host": "b.example", "registered_domain": "b.example"},
        {"url": "http://c.example/y", "host": "c.example", "registered_domain": "c.example"})
    assert claim(runtime, who["ana"]).case_id == case_id
    with runtime.session_factory.begin() as session:
        view = assessment.case_view(session, who["ana"], case_id, now=runtime.clock.now(),
                                    settings=runtime.settings.assessment)
    assert [(c.id, c.relation) for c in view.earlier_cases] == [(earlier, "same_url")]


def test_an_analyst_may_not_view_a_case_they_have_nothing_to_do_with(runtime):
    who = people(runtime, ("ana", "analyst"), ("bo", "analyst"), ("al", "auditor"))
    [case_id] = queue(runtime, {"url": "http://a.example/1"})
    with runtime.session_factory.begin() as session:
        assessment.case_view(session, who["bo"], case_id, now=runtime.clock.now(),
                             settings=runtime.settings.assessment)  # queued: visible
    claim(runtime, who["ana"])
    with (pytest.raises(PermissionDenied, match="not open to bo"),
          runtime.session_factory.begin() as session):
        assessment.case_view(session, who["bo"], case_id, now=runtime.clock.now(),
                             settings=runtime.settings.assessment)
    with runtime.session_factory.begin() as session:
        view = assessment.case_view(session, who["al"], case_id, now=runtime.clock.now(),
                                    settings=runtime.settings.assessment)
    assert view.reports[0].reporter_contact is None  # auditors do not see contacts


def test_an_auditor_may_not_claim_and_a_partner_token_may_not_work_cases(runtime):
    from pipeline.app.auth import Principal

    auditor = people(runtime, ("al", "auditor"))["al"]
    partner = Principal(name="Stoponline", role="partner", token_id=1)
    queue(runtime, {"url": "http://a.example/1"})
    for principal in (auditor, partner):
        with pytest.raises(PermissionDenied):
            claim(runtime, principal)


def test_the_audit_trail_is_intact_after_the_whole_flow(runtime):
    who = people(runtime, ("ana", "analyst"), ("bo", "analyst"), ("sue", "supervisor"))
    [case_id] = queue(runtime, {"url": "http://a.example/1", "claimed_category": "csam"})
    claim(runtime, who["ana"])
    assess(runtime, who["ana"], case_id, decision(legality="not_illegal"))
    claim(runtime, who["bo"])
    with runtime.session_factory.begin() as session:
        assessment.release(session, who["bo"], case_id, now=runtime.clock.now())
    claim(runtime, who["bo"])
    assess(runtime, who["bo"], case_id, decision(**CSAM))
    assess(runtime, who["sue"], case_id, decision(legality="not_illegal"))
    with runtime.session_factory() as session:
        assert verify(session) == []
        actions = session.execute(select(Event.action).where(Event.case_id == case_id)
                                  .order_by(Event.id)).scalars().all()
    assert actions == ["case_claimed", "case_needs_second_assessment", "case_claimed_for_second",
                       "case_released", "case_claimed_for_second", "case_disputed",
                       "case_decided_by_supervisor", "case_closed"]


def test_concurrent_claims_on_postgresql_never_give_one_case_to_two_analysts(pg_runtime):
    runtime = pg_runtime
    analysts = people(runtime, *[(f"a{i}", "analyst") for i in range(8)])
    ids = queue(runtime, *[{"url": f"http://a.example/{i}", "age_minutes": i % 7,
                            "priority": (i % 3) * 10} for i in range(120)])
    claimed: list[tuple[str, int]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(analysts))

    def work(principal):
        try:
            start.wait()
            while (lease := claim(runtime, principal)) is not None:
                claimed.append((principal.name, lease.case_id))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(p,)) for p in analysts.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    counts = Counter(case_id for _, case_id in claimed)
    assert sorted(counts) == sorted(ids) and set(counts.values()) == {1}
    assert len({name for name, _ in claimed}) > 1
    with runtime.session_factory() as session:
        leases = dict(session.execute(select(CaseLease.case_id, CaseLease.user_id)).all())
    assert sorted(leases) == sorted(ids)


def test_concurrent_second_claims_on_postgresql_never_share_a_case(pg_runtime):
    runtime = pg_runtime
    first = people(runtime, ("first", "analyst"))["first"]
    seconds = people(runtime, *[(f"b{i}", "analyst") for i in range(6)])
    ids = queue(runtime, *[{"url": f"http://a.example/{i}"} for i in range(30)])
    national = decision(legality="illegal_national", category="hate_speech")
    for _ in ids:
        lease = claim(runtime, first)
        assess(runtime, first, lease.case_id, national)
    claimed: list[int] = []
    start = threading.Barrier(len(seconds))

    def work(principal):
        start.wait()
        while (lease := claim(runtime, principal, kind="second")) is not None:
            claimed.append(lease.case_id)

    threads = [threading.Thread(target=work, args=(p,)) for p in seconds.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)


def test_a_closed_case_tells_its_reporter_so(runtime):
    from pipeline.stages.intake import public_status
    from pipeline.store.models import Report

    p = people(runtime, ("ana", "analyst"))["ana"]
    [case_id] = queue(runtime, {"url": "http://a.example/1"})
    with runtime.session_factory() as session:
        ref = session.execute(select(Report.ref).where(Report.case_id == case_id)).scalar_one()
        assert public_status(session, ref).status == "in_progress"
    claim(runtime, p)
    assess(runtime, p, case_id, decision(legality="out_of_remit"))
    with runtime.session_factory() as session:
        assert public_status(session, ref).status == "closed"


def test_the_case_view_shows_the_latest_trace_with_its_evidence(runtime):
    from datetime import timedelta

    from pipeline.store.trace_models import Trace

    sue = people(runtime, ("sue", "supervisor"))["sue"]
    [case_id] = queue(runtime, {"url": "http://a.example/1"})
    now = runtime.clock.now()
    with runtime.session_factory.begin() as session:
        for hours, country in ((2, "NL"), (1, "DE")):
            session.add(Trace(case_id=case_id, started_at=now - timedelta(hours=hours),
                              traced_at=now - timedelta(hours=hours), outcome="traced",
                              hosting_country=country, resolver="127.0.0.1:53",
                              addresses=[{"ip": "192.0.2.1", "asn": 64500}]))
    with runtime.session_factory.begin() as session:
        view = assessment.case_view(session, sue, case_id, now=now,
                                    settings=runtime.settings.assessment)
    assert view.trace.hosting_country == "DE" and view.trace.resolver == "127.0.0.1:53"
    assert view.trace.addresses == [{"ip": "192.0.2.1", "asn": 64500}]


def test_four_eyes_looks_at_what_every_reporter_claimed(runtime):
    from pipeline.stages.intake import new_reference
    from pipeline.store.models import Report

    p = people(runtime, ("ana", "analyst"))["ana"]
    [case_id] = queue(runtime, {"url": "http://a.example/1", "claimed_category": "phishing"})
    now = runtime.clock.now()
    with runtime.session_factory.begin() as session:
        session.add(Report(ref=new_reference("R"), submission_ref=new_reference("S"),
                           url="http://a.example/1", channel="web", received_at=now,
                           state="duplicate", state_changed_at=now, audit_seq=0,
                           case_id=case_id, claimed_category="self_generated_csam"))
    claim(runtime, p)
    outcome, _, _ = assess(runtime, p, case_id, decision(legality="not_illegal"))
    assert outcome == "needs_second_assessment"


def test_the_scheduled_job_frees_an_expired_second_assessment_claim(runtime):
    from pipeline.app.scheduler import JOBS

    who = people(runtime, ("ana", "analyst"), ("bo", "analyst"), ("cy", "analyst"))
    [case_id] = queue(runtime, {"url": "http://a.example/1"})
    claim(runtime, who["ana"])
    assess(runtime, who["ana"], case_id, decision(legality="illegal_national",
                                                  category="hate_speech"))
    assert claim(runtime, who["bo"]).kind == "second"
    assert claim(runtime, who["cy"]) is None
    runtime.clock.advance(seconds=LEASE + 1)
    job = next(j for j in JOBS if j.name == "assessment-leases")
    assert job.run(runtime) == 1
    assert case_row(runtime, case_id).state == "awaiting_second_assessment"
    assert claim(runtime, who["cy"]).case_id == case_id
    with runtime.session_factory() as session:
        actions = session.execute(select(Event.action).where(Event.case_id == case_id)
                                  .order_by(Event.id)).scalars().all()
    assert actions[-3:] == ["case_claimed_for_second", "case_lease_expired",
                            "case_claimed_for_second"]


def test_renewing_a_lease_keeps_the_case_past_its_first_expiry(runtime):
    p = people(runtime, ("ana", "analyst"))["ana"]
    [case_id] = queue(runtime, {"url": "http://a.example/1"})
    claim(runtime, p)
    runtime.clock.advance(seconds=LEASE - 10)
    with runtime.session_factory.begin() as session:
        lease = assessment.renew(session, p, case_id, now=runtime.clock.now(),
                                 lease_seconds=LEASE)
    assert lease.expires_at == runtime.clock.now() + timedelta(seconds=LEASE)
    runtime.clock.advance(seconds=20)
    with runtime.session_factory.begin() as session:
        assert assessment.expire_leases(session, now=runtime.clock.now()) == 0
    assert case_row(runtime, case_id).state == "in_assessment"
