"""The assessment API: every route authenticates, checks role and object, audits
denials; a decision moves the case on (routing or closed)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from pipeline.app import users
from pipeline.core.messaging import ROUTE
from pipeline.store.models import Event
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










def test_supervisors_see_every_analysts_welfare(client, runtime, tokens):
    counts = client.get("/api/v1/welfare/analysts", headers=tokens["sue"]).json()
    assert {w["user"] for w in counts} == {"ana", "bo", "sue"}
    mine = client.get("/api/v1/welfare", headers=tokens["ana"]).json()
    assert mine["user"] == "ana" and mine["take_a_break"] is False


