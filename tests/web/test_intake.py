"""The intake API: reports are stored before they are enqueued; bad input gets a
clear 4xx naming the problem."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from pipeline.core.messaging import NORMALISE, TRACE
from pipeline.store.models import Case, Event, Report
from pipeline.store.states import CaseState, ReportState
from pipeline.web.app import create_app
from tests.factories import make_case, make_report


@pytest.fixture
def client(runtime):
    with TestClient(create_app(runtime)) as client:
        yield client


def _count(runtime, model=Report):
    with runtime.session_factory() as session:
        return session.execute(select(func.count()).select_from(model)).scalar_one()


def test_one_report_is_stored_settled_and_its_case_enqueued_with_a_tracking_reference(
        client, runtime):
    response = client.post("/api/v1/reports", json={
        "url": "http://example.com/x", "channel": "web", "claimed_category": "csam",
        "description": "seen on a forum", "reporter_contact": "a@example.org",
        "language": "sr-Latn"})
    assert response.status_code == 201, response.text
    body = response.json()
    ref = body["reports"][0]["reference"]
    assert ref.startswith("R-")
    with runtime.session_factory() as session:
        report = session.execute(select(Report).where(Report.ref == ref)).scalar_one()
        # Settled in the intake transaction: normalised, on a new case, written once.
        assert report.state == "new_case" and report.claimed_category == "csam"
        assert report.canonical_url == "http://example.com/x" and report.case_id
        assert report.received_at and report.normalised_at and report.new_case_at
        event = session.execute(select(Event).where(Event.report_id == report.id)).scalar_one()
        assert event.action == "report_received" and event.actor == "intake"
        assert event.case_id == report.case_id
        assert [s["to_state"] for s in event.data["steps"]] == ["normalised", "new_case"]
        assert "a@example.org" not in json.dumps(event.data)
    assert runtime.enqueuer.sent == [(TRACE, [report.case_id])]


def test_with_settling_off_a_report_is_stored_received_for_the_workers(client, runtime):
    runtime.settings.intake.settle_up_to = 0
    response = client.post("/api/v1/reports", json={"url": "http://example.com/x"})
    assert response.status_code == 201, response.text
    with runtime.session_factory() as session:
        report = session.execute(select(Report)).scalar_one()
        assert report.state == "received" and report.case_id is None
        event = session.execute(select(Event).where(Event.report_id == report.id)).scalar_one()
        assert event.action == "report_received" and "steps" not in event.data
    assert runtime.enqueuer.sent == [(NORMALISE, [report.id])]


def test_a_batch_shares_one_submission_reference(client, runtime):
    urls = [f"http://example.com/{n}" for n in range(1000)]
    response = client.post("/api/v1/reports", json={"reports": [{"url": u} for u in urls]})
    assert response.status_code == 201
    body = response.json()
    assert [r["url"] for r in body["reports"]] == urls
    assert len({r["reference"] for r in body["reports"]}) == 1000
    assert _count(runtime) == 1000
    with runtime.session_factory() as session:
        assert session.execute(select(func.count(func.distinct(Report.submission_ref)))
                               ).scalar_one() == 1
        # In-process broker: the whole batch is settled at intake.
        assert set(session.execute(select(Report.state)).scalars()) == {"new_case"}
        cases = session.execute(select(Case.id).order_by(Case.id)).scalars().all()
    assert runtime.enqueuer.ids(NORMALISE) == [] and runtime.enqueuer.ids(TRACE) == cases


def test_with_a_worker_fleet_a_large_batch_settles_its_first_report_at_intake(client,
                                                                               runtime):
    runtime.settings.intake.settle_up_to = 100  # the default with a Redis broker
    response = client.post("/api/v1/reports", json={"reports": [
        {"url": f"http://example.com/{n}"} for n in range(1000)]})
    assert response.status_code == 201
    # Committed first, then queued: the first report is on its case already; the
    # other 999 go to the workers, who settle them side by side.
    with runtime.session_factory() as session:
        stored = session.execute(select(Report.id, Report.state, Report.case_id)
                                 .order_by(Report.id)).all()
    assert stored[0].state == "new_case"
    assert {row.state for row in stored[1:]} == {"received"}
    assert runtime.enqueuer.sent == [(TRACE, [stored[0].case_id]),
                                     (NORMALISE, [row.id for row in stored[1:]])]
    # A small batch is settled whole.
    runtime.enqueuer.sent.clear()
    response = client.post("/api/v1/reports", json={"reports": [
        {"url": f"http://example.org/{n}"} for n in range(100)]})
    assert response.status_code == 201
    assert [(stage, len(ids)) for stage, ids in runtime.enqueuer.sent] == [(TRACE, 100)]


def test_with_settling_off_a_large_batch_sends_its_first_report_alone(client, runtime):
    runtime.settings.intake.settle_up_to = 0
    response = client.post("/api/v1/reports", json={"reports": [
        {"url": f"http://example.com/{n}"} for n in range(1000)]})
    assert response.status_code == 201
    # The first report of a large batch in a message of its own (a worker settles it
    # at once), the other 999 after it; a small batch stays one message.
    with runtime.session_factory() as session:
        stored = session.execute(select(Report.id).order_by(Report.id)).scalars().all()
    assert [ids for _, ids in runtime.enqueuer.sent] == [stored[:1], stored[1:]]
    runtime.enqueuer.sent.clear()
    response = client.post("/api/v1/reports", json={"reports": [
        {"url": f"http://example.org/{n}"} for n in range(100)]})
    assert response.status_code == 201
    assert [len(ids) for _, ids in runtime.enqueuer.sent] == [100]


def test_a_batch_of_ten_thousand_is_refused_whole(client, runtime):
    response = client.post("/api/v1/reports",
                           json={"reports": [{"url": "http://e.com"}] * 10_000})
    assert response.status_code == 422
    assert "at most 1000" in response.json()["error"]
    assert _count(runtime) == 0


@pytest.mark.parametrize(("body", "status", "names"), [
    (b"{not json", 400, "not valid JSON"),
    (b'{"url": 5}', 422, "url"),
    (b'{"channel": "web"}', 422, "url: Field required"),
    (b'{"url": "http://e.com", "channel": "pigeon"}', 422, "channel"),
    (b'{"url": "http://e.com", "claimed_category": "spam"}', 422, "claimed_category"),
    (b'{"url": "http://e.com", "received_at": "2026-01-01T10:00:00"}', 422, "time zone"),
    (b'{"url": "http://e.com", "colour": "red"}', 422, "colour"),
    (b'{"url": "http://e.com", "language": "not a tag!"}', 422, "language"),
    (b'{"reports": []}', 422, "reports"),
    (b'{"reports": [{"url": "http://e.com"}, {"url": ""}]}', 422, "reports.1.url"),
    (b'[1, 2]', 422, ""),
])
def test_bad_input_gets_a_clear_error_and_nothing_is_stored(client, runtime, body, status, names):
    response = client.post("/api/v1/reports", content=body,
                           headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert names in response.text
    assert _count(runtime) == 0
    assert runtime.enqueuer.sent == []


@pytest.mark.parametrize(("field", "size", "limit_name"), [
    ("url", 70_000, "url"),
    ("description", 10_001, "description"),
    ("reporter_contact", 501, "reporter_contact"),
])
def test_oversize_fields_are_refused_naming_the_field(client, runtime, field, size, limit_name):
    payload = {"url": "http://e.com/"}
    payload[field] = (payload.get(field, "") + "x" * size)
    response = client.post("/api/v1/reports", json=payload)
    assert response.status_code == 422
    assert limit_name in response.json()["error"]
    assert _count(runtime) == 0


def test_a_body_over_the_size_limit_is_refused_before_it_is_read(settings_factory):
    from pipeline.app.runtime import build_runtime
    from pipeline.store.migrate import upgrade

    settings = settings_factory(web={"max_body_bytes": 2048})
    upgrade(settings.database.url)
    runtime = build_runtime(settings)
    with TestClient(create_app(runtime)) as client:
        response = client.post("/api/v1/reports", json={"url": "http://e.com/" + "a" * 4000})
    assert response.status_code == 413
    runtime.close()


def test_a_received_time_in_the_future_is_refused(client, runtime):
    response = client.post("/api/v1/reports",
                           json={"url": "http://e.com", "received_at": "2099-01-01T00:00:00Z"})
    assert response.status_code == 422
    assert "future" in response.json()["error"]


def test_the_status_page_tells_a_reporter_only_what_they_may_know(client, runtime):
    ref = client.post("/api/v1/reports", json={"url": "http://e.com/a"}).json()[
        "reports"][0]["reference"]
    status = client.get(f"/api/v1/reports/{ref}")
    assert status.status_code == 200
    assert status.json()["status"] == "in_progress"  # settled at intake: on its case
    assert set(status.json()) == {"reference", "received_at", "status", "explanation"}
    assert client.get("/api/v1/reports/R-NOPE-NOPE-NOPE-NOPE").status_code == 404


def _status_schema(schema: dict) -> dict:
    """The OpenAPI schema of `ReportStatus.status`, its `$ref` / `allOf` followed."""
    node = schema["components"]["schemas"]["ReportStatus"]["properties"]["status"]
    while "enum" not in node:
        target = node["$ref"] if "$ref" in node else node["allOf"][0]["$ref"]
        node = schema["components"]["schemas"][target.rsplit("/", 1)[1]]
    return node


def test_every_status_a_reporter_can_see_is_one_the_api_documents(client, runtime):
    documented = _status_schema(client.get("/openapi.json").json())["enum"]
    assert sorted(documented) == ["action_taken", "closed", "content_removed", "in_progress",
                                  "received", "rejected"]
    description = client.get("/openapi.json").json()["components"]["schemas"][
        "ReportStatus"]["properties"]["status"]["description"]
    assert all(value in description for value in documented), description

    at = runtime.clock.now()
    refs: dict[tuple[str, str | None], str] = {}
    with runtime.session_factory() as session, session.begin():
        for n, (report_state, case_state) in enumerate(
                (r, c) for r in ReportState for c in [None, *CaseState]):
            case_id = None
            if case_state is not None:
                case_id = make_case(session, at=at, url=f"http://s.example/{n}",
                                    state=case_state).id
            report = make_report(session, at=at, url=f"http://s.example/{n}",
                                 state=report_state, case_id=case_id)
            refs[(report_state, case_state)] = report.ref

    seen: dict[tuple[str, str | None], str] = {}
    for key, ref in refs.items():
        response = client.get(f"/api/v1/reports/{ref}")
        assert response.status_code == 200, (key, response.text)
        seen[key] = response.json()["status"]
    assert {k: v for k, v in seen.items() if v not in documented} == {}
    # Every documented value is one a reporter can actually be shown.
    assert set(seen.values()) == set(documented)
    assert seen[(ReportState.NEW_CASE, CaseState.CLOSED)] == "closed"
    assert seen[(ReportState.DUPLICATE, CaseState.REMOVED)] == "content_removed"
