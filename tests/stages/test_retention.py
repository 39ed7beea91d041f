"""Retention: purge after closing, dry run, legal hold, statistics and audit intact."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from pipeline.app import auth
from pipeline.app.auth import Principal
from pipeline.app.scheduler import JOBS
from pipeline.core.config import RetentionSection
from pipeline.core.errors import PermissionDenied
from pipeline.stages.retention import PURGED, lift_legal_hold, plan, purge, set_legal_hold
from pipeline.store import audit
from pipeline.store.models import Case, Event, Notice, Report
from pipeline.store.ops_models import LegalHold
from pipeline.store.states import CaseState
from pipeline.store.trace_models import Trace, TraceAnswer
from tests.ops_helpers import add_case

MIRA = Principal(name="mira", role="supervisor", user_id=1)
SECTION = RetentionSection(reporter_contact_days=30, description_days=60,
                           trace_answers_days=90, closed_case_urls_days=365)
PURGE_FIELDS = {
    "reports": {"reporter_contact", "description", "url", "canonical_url", "url_userinfo",
                "contact_purged_at", "description_purged_at", "url_purged_at", "audit_seq",
                "audit_hash"},
    "cases": {"canonical_url", "url_purged_at", "trace_answers_purged_at", "audit_seq",
              "audit_hash"},
}


def _snapshot(session, model, skip: set[str]) -> dict[int, dict[str, Any]]:
    rows = session.execute(select(model)).scalars().all()
    return {r.id: {c.key: getattr(r, c.key) for c in model.__table__.columns
                   if c.key not in skip} for r in rows}


def _closed_case(runtime, *, days_ago: float, **kw) -> Case:
    at = runtime.clock.now() - timedelta(days=days_ago)
    with runtime.session_factory.begin() as session:
        return add_case(session, at=at, step=timedelta(minutes=1), **kw)


def test_a_dry_run_says_what_would_go_and_changes_nothing(runtime):
    case = _closed_case(runtime, days_ago=45)
    with runtime.session_factory() as session:
        before = _snapshot(session, Report, set())
        todo = plan(session, SECTION, now=runtime.clock.now())
        after = _snapshot(session, Report, set())
    summary = todo.summary()
    assert summary["reporter_contact"] == {"cases": 1, "reports": 1}
    assert summary["description"] == {"cases": 0, "reports": 0}
    assert summary["case_urls"] == {"cases": 0, "reports": 0}
    assert todo.cases["reporter_contact"] == [case.id]
    assert before == after


def test_each_kind_is_purged_after_its_own_time_since_the_case_closed(runtime):
    case = _closed_case(runtime, days_ago=70)  # contact (30) and description (60) due
    purge(runtime.session_factory, SECTION, now=runtime.clock.now())
    with runtime.session_factory() as session:
        report = session.execute(select(Report).where(Report.case_id == case.id)).scalar_one()
        stored = session.get(Case, case.id)
        trace = session.execute(select(Trace).where(Trace.case_id == case.id)).scalar_one()
        assert report.reporter_contact is None and report.contact_purged_at is not None
        assert report.description is None and report.description_purged_at is not None
        assert report.url == "http://bad.example/x.html"  # URLs are kept 365 days
        assert stored.canonical_url == "http://bad.example/x.html"
        assert trace.dns_raw  # raw answers are kept 90 days


def test_a_purge_removes_urls_and_raw_answers_but_keeps_rows_states_and_times(runtime):
    case = _closed_case(runtime, days_ago=400)
    open_case = _closed_case(runtime, days_ago=400, url="http://open.example/",
                             until=CaseState.AWAITING_ASSESSMENT)
    with runtime.session_factory() as session:
        reports_before = _snapshot(session, Report, PURGE_FIELDS["reports"])
        cases_before = _snapshot(session, Case, PURGE_FIELDS["cases"])
        untouched_before = _snapshot(session, Report, set())
    purge(runtime.session_factory, SECTION, now=runtime.clock.now())
    with runtime.session_factory() as session:
        assert _snapshot(session, Report, PURGE_FIELDS["reports"]) == reports_before
        assert _snapshot(session, Case, PURGE_FIELDS["cases"]) == cases_before
        stored = session.get(Case, case.id)
        assert stored.canonical_url == PURGED and stored.url_purged_at is not None
        assert stored.dedup_key == cases_before[case.id]["dedup_key"]  # re-uploads still seen
        report = session.execute(select(Report).where(Report.case_id == case.id)).scalar_one()
        assert (report.url, report.canonical_url) == (PURGED, None)
        trace = session.execute(select(Trace).where(Trace.case_id == case.id)).scalar_one()
        assert trace.dns_raw == {} and trace.rdap_raw == []
        # The same RDAP answer is still used by the open case's trace: it stays.
        assert len(session.execute(select(TraceAnswer)).scalars().all()) == 1
        assert trace.hosting_country == "NL" and trace.hosting_asn == 64500
        notice = session.execute(select(Notice).where(Notice.case_id == case.id)).scalar_one()
        assert notice.body is None and notice.subject is None
        assert notice.payload == {"url": PURGED, "category": "csam"}
        assert notice.sent_at is not None and notice.state == "sent"
        # The case still open is not touched, however old.
        open_report = session.execute(
            select(Report).where(Report.case_id == open_case.id)).scalar_one()
        assert {c.key: getattr(open_report, c.key) for c in Report.__table__.columns} == (
            untouched_before[open_report.id])


def test_a_purge_is_audited_without_personal_data_and_the_chains_still_verify(runtime):
    case = _closed_case(runtime, days_ago=400)
    purge(runtime.session_factory, SECTION, now=runtime.clock.now())
    with runtime.session_factory() as session:
        assert audit.verify(session) == []
        purged = session.execute(
            select(Event).where(Event.stream == f"case:{case.ref}",
                                Event.action == "case_data_purged")).scalar_one()
        assert purged.data["kinds"] == ["case_urls", "description", "reporter_contact",
                                        "trace_answers"]
        run = session.execute(select(Event).where(Event.action == "retention_run")).scalar_one()
        assert run.data["cases"] == 1
        texts = " ".join(str(e.data) for e in session.execute(select(Event)).scalars())
        assert "reporter@example.org" not in texts and "bad.example/x.html" not in texts


def test_purging_twice_changes_nothing_the_second_time(runtime):
    _closed_case(runtime, days_ago=400)
    purge(runtime.session_factory, SECTION, now=runtime.clock.now())
    with runtime.session_factory() as session:
        events = session.execute(select(Event)).scalars().all()
    second = purge(runtime.session_factory, SECTION, now=runtime.clock.now())
    assert second.empty
    with runtime.session_factory() as session:
        assert len(session.execute(select(Event)).scalars().all()) == len(events)


def test_a_legal_hold_stops_the_purge_until_a_supervisor_lifts_it(runtime):
    case = _closed_case(runtime, days_ago=400)
    now = runtime.clock.now()
    with runtime.session_factory.begin() as session:
        set_legal_hold(session, case.ref, principal=MIRA,
                       requested_by="Police cybercrime unit, ref 2026/114",
                       reason="Investigation ongoing", at=now)
    todo = purge(runtime.session_factory, SECTION, now=now)
    assert todo.held == [case.id] and todo.empty
    with runtime.session_factory() as session:
        report = session.execute(select(Report).where(Report.case_id == case.id)).scalar_one()
        assert report.reporter_contact == "reporter@example.org"
        assert session.get(Case, case.id).canonical_url == "http://bad.example/x.html"
    with runtime.session_factory.begin() as session:
        lift_legal_hold(session, case.ref, principal=MIRA,
                        reason="Case closed by the court", at=now)
    purge(runtime.session_factory, SECTION, now=now)
    with runtime.session_factory() as session:
        assert session.get(Case, case.id).canonical_url == PURGED
        actions = [e.action for e in session.execute(
            select(Event).where(Event.stream == f"case:{case.ref}").order_by(Event.seq)
        ).scalars()]
        assert actions[-3:] == ["legal_hold_set", "legal_hold_lifted", "case_data_purged"]
        hold = session.execute(select(LegalHold)).scalar_one()
        assert hold.lifted_by == "mira" and hold.set_by == "mira"
        assert audit.verify(session) == []


@pytest.mark.parametrize("role", ["analyst", "admin", "auditor", "police"])
def test_only_a_supervisor_may_set_a_legal_hold(runtime, role):
    case = _closed_case(runtime, days_ago=1)
    someone = Principal(name="someone", role=role, user_id=7)
    with pytest.raises(PermissionDenied), runtime.session_factory.begin() as session:
        set_legal_hold(session, case.ref, principal=someone, requested_by="Police",
                       reason="because", at=runtime.clock.now())


def test_a_legal_hold_is_a_permission_of_its_own(runtime, monkeypatch):
    """The code asks for `case.legal_hold`, not for a role: granting it to admins lets
    an admin set a hold, and taking it from supervisors stops them."""
    case = _closed_case(runtime, days_ago=1)
    assert auth.PERMISSIONS["case.legal_hold"] == {"supervisor"}
    admin = Principal(name="ada", role="admin", user_id=8)
    monkeypatch.setitem(auth.PERMISSIONS, "case.legal_hold", frozenset({"admin"}))
    with runtime.session_factory.begin() as session:
        hold = set_legal_hold(session, case.ref, principal=admin, requested_by="Police",
                              reason="because", at=runtime.clock.now())
        assert hold.set_by == "ada"
    with pytest.raises(PermissionDenied), runtime.session_factory.begin() as session:
        lift_legal_hold(session, case.ref, principal=MIRA, reason="done",
                        at=runtime.clock.now())


def test_a_rejected_report_without_a_case_is_purged_from_its_rejection(runtime):
    from pipeline.stages.intake import new_reference
    from pipeline.store.lifecycle import transition
    from pipeline.store.states import ReportState

    at = runtime.clock.now() - timedelta(days=400)
    with runtime.session_factory.begin() as session:
        report = Report(ref=new_reference("R"), submission_ref=new_reference("S"),
                        url="not a url at all", channel="web", received_at=at,
                        reporter_contact="+381 64 1234567", description="Words", state=None,
                        audit_seq=0)
        transition(session, report, ReportState.RECEIVED, at=at)
        session.add(report)
        session.flush()
        transition(session, report, ReportState.REJECTED, at=at)
        report_id = report.id
    purge(runtime.session_factory, SECTION, now=runtime.clock.now())
    with runtime.session_factory() as session:
        stored = session.get(Report, report_id)
        assert (stored.reporter_contact, stored.description, stored.url) == (None, None, PURGED)
        assert stored.state == "rejected" and stored.rejected_at is not None
        assert audit.verify(session) == []


def test_the_scheduler_runs_the_purge_and_the_heartbeat():
    assert {"retention", "heartbeat"} <= {job.name for job in JOBS}


def test_the_scheduled_purge_does_nothing_when_retention_is_disabled(runtime):
    from pipeline.stages.retention import scheduled_purge

    case = _closed_case(runtime, days_ago=800)  # past the default 730 days for URLs
    runtime.settings.retention.enabled = False
    assert scheduled_purge(runtime) is None
    with runtime.session_factory() as session:
        assert session.get(Case, case.id).url_purged_at is None
    runtime.settings.retention.enabled = True
    assert scheduled_purge(runtime)["case_urls"]["cases"] == 1


def _token(runtime, role: str) -> str:
    from pipeline.app import auth, users
    with runtime.session_factory.begin() as session:
        if role in auth.OUTSIDE_SCOPES:
            token, _ = auth.issue_token(session, scope=role, label=f"{role} unit",
                                        at=runtime.clock.now())
        else:
            user, _ = users.add_user(session, f"{role}-1", role, at=runtime.clock.now())
            token, _ = auth.issue_token(session, scope="analyst", label=role,
                                        at=runtime.clock.now(), user=user)
    return token


def test_a_supervisor_sets_and_lifts_a_hold_through_the_api_and_others_are_refused(
        sqlite_runtime):
    from fastapi.testclient import TestClient

    from pipeline.web.app import create_app

    runtime = sqlite_runtime
    case = _closed_case(runtime, days_ago=400)
    client = TestClient(create_app(runtime))
    url = f"/api/v1/cases/{case.ref}/legal-holds"
    body = {"requested_by": "VTK Beograd, KT 114/26", "reason": "Investigation"}
    for role in ("analyst", "police"):
        response = client.post(url, json=body,
                               headers={"Authorization": f"Bearer {_token(runtime, role)}"})
        assert response.status_code == 403, response.text
    supervisor = {"Authorization": f"Bearer {_token(runtime, 'supervisor')}"}
    response = client.post(url, json=body, headers=supervisor)
    assert response.status_code == 201, response.text
    assert response.json()["set_by"] == "supervisor-1"
    assert purge(runtime.session_factory, SECTION, now=runtime.clock.now()).held == [case.id]
    listed = client.get(url, headers=supervisor).json()
    assert [h["lifted_at"] for h in listed] == [None]
    response = client.post(f"{url}/lift", json={"reason": "done"}, headers=supervisor)
    assert response.status_code == 200 and response.json()[0]["lifted_by"] == "supervisor-1"
    purge(runtime.session_factory, SECTION, now=runtime.clock.now())
    with runtime.session_factory() as session:
        assert session.get(Case, case.id).canonical_url == PURGED
        denials = session.execute(select(Event).where(Event.action == "access_denied")
                                  ).scalars().all()
        assert len(denials) == 2


def test_the_cli_dry_run_says_what_would_go_and_the_run_purges(settings_factory, monkeypatch):
    from click.testing import CliRunner

    from pipeline.app.runtime import build_runtime
    from pipeline.cli import main
    from pipeline.core.clock import SystemClock
    from pipeline.store.migrate import upgrade

    settings = settings_factory()
    upgrade(settings.database.url)
    monkeypatch.setenv("HOTLINE_DATABASE__URL", settings.database.url)
    monkeypatch.setenv("HOTLINE_APP__DATA_DIR", settings.app.data_dir)
    runtime = build_runtime(settings, clock=SystemClock())
    case = _closed_case(runtime, days_ago=800)
    result = CliRunner().invoke(main, ["retention", "run", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "case_urls         would purge 1 cases, 1 reports (730 days after closing)" in (
        result.output)
    with runtime.session_factory() as session:
        assert session.get(Case, case.id).url_purged_at is None
    with runtime.session_factory.begin() as session:
        from pipeline.app import users
        users.add_user(session, "mira", "supervisor", at=runtime.clock.now())
        users.add_user(session, "ana", "analyst", at=runtime.clock.now())
    hold = ["case", "hold", case.ref, "--requested-by", "VTK", "--reason", "Investigation"]
    refused = CliRunner().invoke(main, [*hold, "--by", "ana"])
    assert refused.exit_code == 1 and "supervisor" in refused.output
    assert CliRunner().invoke(main, [*hold, "--by", "mira"]).exit_code == 0
    result = CliRunner().invoke(main, ["retention", "run"])
    assert "case_urls         purged 0 cases" in result.output
    assert "legal holds: 1 due cases skipped" in result.output
    lift = ["case", "lift-hold", case.ref, "--by", "mira", "--reason", "Court ruled"]
    assert CliRunner().invoke(main, lift).exit_code == 0
    result = CliRunner().invoke(main, ["retention", "run"])
    assert "case_urls         purged 1 cases, 1 reports" in result.output
    with runtime.session_factory() as session:
        assert session.get(Case, case.id).url_purged_at is not None
    runtime.close()


def test_the_statistics_export_is_the_same_after_a_purge(runtime):
    stats = pytest.importorskip("pipeline.stages.stats")
    for days_ago, url in ((400, "http://bad.example/1"), (800, "http://bad.example/2"),
                          (3, "http://bad.example/3")):
        _closed_case(runtime, days_ago=days_ago, url=url)
    today = runtime.clock.now().date()

    def export() -> Any:
        with runtime.session_factory() as session:
            result = stats.export_stats(session, today - timedelta(days=900), today,
                                        settings=runtime.settings, now=runtime.clock.now())
            return stats.export_rows(result)

    before = export()
    assert before
    summary = purge(runtime.session_factory, SECTION, now=runtime.clock.now()).summary()
    assert summary["case_urls"]["cases"] == 2
    assert export() == before


def test_an_rdap_answer_another_trace_still_uses_is_kept(runtime):
    old = _closed_case(runtime, days_ago=400)
    recent = _closed_case(runtime, days_ago=10, url="http://bad.example/other")
    purge(runtime.session_factory, SECTION, now=runtime.clock.now())
    with runtime.session_factory() as session:
        traces = {t.case_id: t for t in session.execute(select(Trace)).scalars()}
        assert traces[old.id].rdap_raw == [] and traces[recent.id].rdap_raw
        key = traces[recent.id].rdap_raw[0]["answer"]
        assert session.get(TraceAnswer, key) is not None


def test_an_rdap_answer_no_trace_uses_any_more_is_deleted(runtime):
    _closed_case(runtime, days_ago=400)
    with runtime.session_factory() as session:
        assert len(session.execute(select(TraceAnswer)).scalars().all()) == 1
    purge(runtime.session_factory, SECTION, now=runtime.clock.now())
    with runtime.session_factory() as session:
        assert session.execute(select(TraceAnswer)).scalars().all() == []
        run = session.execute(select(Event).where(Event.action == "retention_run")).scalar_one()
        assert run.data["rdap_answers"] == 1
