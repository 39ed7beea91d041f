"""The assessment API: every route authenticates, checks role and object, audits
denials; a decision moves the case on (routing or closed)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from pipeline.app import users
from pipeline.core.messaging import ROUTE
from pipeline.store.models import Case, Event
from pipeline.web.app import create_app
from tests.assessment_support import queue

CSAM = {"legality": "illegal_international", "category": "csam", "age_group": "infant",
        "gender": "both", "site_type": "file_host", "content_type": "video",
        "commercial": True, "notes": "seen"}


@pytest.fixture
def client(runtime):
    with TestClient(create_app(runtime)) as client:
        yield client


@pytest.fixture
def tokens(runtime):
    """A bearer header per user: ana, bo (analysts), sue (supervisor), al (auditor),
    root (admin), and a partner hotline."""
    now = runtime.clock.now()
    headers = {}
    with runtime.session_factory.begin() as session:
        for name, role in [("ana", "analyst"), ("bo", "analyst"), ("sue", "supervisor"),
                           ("al", "auditor"), ("root", "admin")]:
            users.add_user(session, name, role, at=now)
            token, _ = users.add_token(session, scope="analyst", label=name, at=now,
                                       user_name=name)
            headers[name] = {"Authorization": f"Bearer {token}"}
        token, _ = users.add_token(session, scope="partner", label="Stoponline", at=now)
        headers["partner"] = {"Authorization": f"Bearer {token}"}
    return headers


def test_a_request_without_a_valid_token_is_refused_and_recorded(client, runtime):
    assert client.get("/api/v1/queue").status_code == 401
    response = client.get("/api/v1/queue", headers={"Authorization": "Bearer hl_guess"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    with runtime.session_factory() as session:
        event = session.execute(select(Event).where(Event.stream == "auth:api")).scalar_one()
    assert event.action == "authentication_failed"


def test_an_analyst_claims_assesses_and_the_case_goes_on_to_routing(client, runtime, tokens):
    [case_id] = queue(runtime, {"url": "http://a.example/1", "claimed_category": "csam"})
    listing = client.get("/api/v1/queue", headers=tokens["ana"]).json()
    assert listing["waiting"] == 1 and listing["items"][0]["id"] == case_id

    claimed = client.post("/api/v1/queue/claim", headers=tokens["ana"]).json()
    assert claimed["lease"]["case_id"] == case_id
    assert claimed["welfare"]["csam_assessments"] == 0

    view = client.get(f"/api/v1/cases/{case_id}", headers=tokens["ana"]).json()
    assert view["lease"]["holder"] == "ana" and view["reports"][0]["reporter_contact"] is None

    response = client.post(f"/api/v1/cases/{case_id}/assessment", headers=tokens["ana"],
                           json=CSAM)
    assert response.status_code == 200, response.text
    [result] = response.json()["decisions"]
    assert (result["outcome"], result["state"]) == ("finalised", "assessed")
    assert response.json()["welfare"]["csam_assessments"] == 1
    assert runtime.enqueuer.ids(ROUTE) == [case_id]


def test_a_case_reference_works_wherever_an_id_does(client, runtime, tokens):
    [case_id] = queue(runtime, {"url": "http://a.example/1"})
    client.post("/api/v1/queue/claim", headers=tokens["ana"])
    with runtime.session_factory() as session:
        ref = session.get(Case, case_id).ref
    response = client.post(f"/api/v1/cases/{ref}/assessment", headers=tokens["ana"],
                           json={"legality": "out_of_remit"})
    assert response.json()["decisions"][0]["state"] == "closed"
    assert runtime.enqueuer.ids(ROUTE) == []


def test_a_missing_detail_is_named_in_the_answer(client, runtime, tokens):
    [case_id] = queue(runtime, {"url": "http://a.example/1"})
    client.post("/api/v1/queue/claim", headers=tokens["ana"])
    response = client.post(f"/api/v1/cases/{case_id}/assessment", headers=tokens["ana"],
                           json={"legality": "illegal_international", "category": "csam"})
    assert response.status_code == 422
    assert "age_group: required when category is csam" in " ".join(response.json()["problems"])


def test_someone_elses_case_is_refused_with_403_and_the_denial_audited(client, runtime, tokens):
    [case_id] = queue(runtime, {"url": "http://a.example/1"})
    client.post("/api/v1/queue/claim", headers=tokens["ana"])
    response = client.post(f"/api/v1/cases/{case_id}/assessment", headers=tokens["bo"],
                           json={"legality": "not_illegal"})
    assert response.status_code == 403
    assert client.get(f"/api/v1/cases/{case_id}", headers=tokens["bo"]).status_code == 403
    assert client.post(f"/api/v1/cases/{case_id}/release",
                       headers=tokens["bo"]).status_code == 403
    with runtime.session_factory() as session:
        denials = session.execute(select(Event).where(
            Event.stream == "user:bo", Event.action == "access_denied")).scalars().all()
    assert len(denials) == 3
    assert {d.case_id for d in denials} == {case_id}


@pytest.mark.parametrize(("who", "method", "path"), [
    ("al", "post", "/api/v1/queue/claim"),
    ("partner", "get", "/api/v1/queue"),
    ("ana", "get", "/api/v1/users"),
    ("ana", "get", "/api/v1/welfare/analysts"),
    ("root", "post", "/api/v1/queue/claim"),
])
def test_each_role_is_held_to_its_own_work(client, runtime, tokens, who, method, path):
    response = getattr(client, method)(path, headers=tokens[who])
    assert response.status_code == 403, response.text


def test_assessing_a_case_nobody_claimed_is_a_conflict(client, runtime, tokens):
    [case_id] = queue(runtime, {"url": "http://a.example/1"})
    response = client.post(f"/api/v1/cases/{case_id}/assessment", headers=tokens["ana"],
                           json={"legality": "not_illegal"})
    assert response.status_code == 409 and "not claimed" in response.json()["error"]
    assert client.get("/api/v1/cases/999999", headers=tokens["sue"]).status_code == 404


def test_release_puts_the_case_back_for_the_next_analyst(client, runtime, tokens):
    [case_id] = queue(runtime, {"url": "http://a.example/1"})
    client.post("/api/v1/queue/claim", headers=tokens["ana"])
    assert client.post("/api/v1/queue/claim", headers=tokens["bo"]).json()["lease"] is None
    released = client.post(f"/api/v1/cases/{case_id}/release", headers=tokens["ana"])
    assert released.json()["state"] == "awaiting_assessment"
    assert client.post("/api/v1/queue/claim",
                       headers=tokens["bo"]).json()["lease"]["case_id"] == case_id


def test_four_eyes_and_a_supervisors_decision_over_the_api(client, runtime, tokens):
    [case_id] = queue(runtime, {"url": "http://a.example/1", "claimed_category": "csam"})
    client.post("/api/v1/queue/claim", headers=tokens["ana"])
    first = client.post(f"/api/v1/cases/{case_id}/assessment", headers=tokens["ana"],
                        json={"legality": "not_illegal"}).json()["decisions"][0]
    assert first["outcome"] == "needs_second_assessment"
    assert first["assessment"]["four_eyes_rule"] == "not_illegal_on_claimed_csam"
    lease = client.post("/api/v1/queue/claim", headers=tokens["bo"],
                        json={"kind": "second"}).json()["lease"]
    assert lease["kind"] == "second"
    second = client.post(f"/api/v1/cases/{case_id}/assessment", headers=tokens["bo"],
                         json=CSAM).json()["decisions"][0]
    assert second["state"] == "awaiting_supervisor"
    disputes = client.get("/api/v1/queue?state=awaiting_supervisor", headers=tokens["sue"])
    assert [i["id"] for i in disputes.json()["items"]] == [case_id]
    final = client.post(f"/api/v1/cases/{case_id}/assessment", headers=tokens["sue"],
                        json=CSAM).json()["decisions"][0]
    assert (final["outcome"], final["state"]) == ("finalised", "assessed")
    view = client.get(f"/api/v1/cases/{case_id}", headers=tokens["sue"]).json()
    assert [a["kind"] for a in view["assessments"]] == ["first", "second", "supervisor"]
    assert view["legality"] == "illegal_international"


def test_same_site_claim_and_one_decision_for_all(client, runtime, tokens):
    ids = queue(runtime, *[{"url": f"http://cdn.bad.example/{i}", "host": "cdn.bad.example",
                            "registered_domain": "bad.example"} for i in range(3)])
    claimed = client.post("/api/v1/queue/claim-site", headers=tokens["ana"],
                          json={"registered_domain": "bad.example"}).json()
    assert sorted(lease["case_id"] for lease in claimed["leases"]) == sorted(ids)
    response = client.post("/api/v1/assessments/batch", headers=tokens["ana"],
                           json={"cases": [str(i) for i in ids], "assessment": CSAM})
    assert response.status_code == 200, response.text
    assert {d["state"] for d in response.json()["decisions"]} == {"assessed"}
    assert sorted(runtime.enqueuer.ids(ROUTE)) == sorted(ids)
    bad = client.post("/api/v1/queue/claim-site", headers=tokens["ana"],
                      json={"host": "a", "registered_domain": "b"})
    assert bad.status_code == 422


def test_supervisors_see_every_analysts_welfare(client, runtime, tokens):
    counts = client.get("/api/v1/welfare/analysts", headers=tokens["sue"]).json()
    assert {w["user"] for w in counts} == {"ana", "bo", "sue"}
    mine = client.get("/api/v1/welfare", headers=tokens["ana"]).json()
    assert mine["user"] == "ana" and mine["take_a_break"] is False


def test_an_admin_adds_a_user_and_issues_a_token_that_works(client, runtime, tokens):
    added = client.post("/api/v1/users", headers=tokens["root"],
                        json={"name": "cy", "role": "analyst"})
    assert added.status_code == 201 and added.json()["one_time_password"]
    issued = client.post("/api/v1/tokens", headers=tokens["root"],
                         json={"scope": "analyst", "label": "cy", "user": "cy"}).json()
    header = {"Authorization": f"Bearer {issued['token']}"}
    assert client.get("/api/v1/queue", headers=header).status_code == 200
    revoked = client.delete(f"/api/v1/tokens/{issued['prefix']}", headers=tokens["root"])
    assert revoked.json() == {"revoked": 1}
    assert client.get("/api/v1/queue", headers=header).status_code == 401
