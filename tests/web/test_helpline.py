"""The helpline API: counsellors record, form, refer; supervisors see all and hold;
analysts are refused (and the refusal audited); bad input is named with a 4xx."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from pipeline.app import users
from pipeline.core.messaging import DISPATCH, NORMALISE
from pipeline.store.models import Event

CALL = {"channel": "phone", "caller_type": "parent", "topic": "grooming",
        "anonymous": False, "caller_contact": "+381 11 000 111", "summary": "Son groomed",
        "duration_minutes": 4}


@pytest.fixture
def client(sqlite_runtime):
    from pipeline.web.app import create_app

    with TestClient(create_app(sqlite_runtime)) as client:
        yield client


@pytest.fixture
def tokens(sqlite_runtime):
    now = sqlite_runtime.clock.now()
    headers = {}
    with sqlite_runtime.session_factory.begin() as session:
        for name, role in [("cara", "counsellor"), ("sue", "supervisor"), ("ana", "analyst"),
                           ("al", "auditor")]:
            users.add_user(session, name, role, at=now)
            token, _ = users.add_token(session, scope="analyst", label=name, at=now,
                                       user_name=name)
            headers[name] = {"Authorization": f"Bearer {token}"}
    return headers


def test_a_counsellor_records_a_call_forms_a_case_and_refers_it(client, tokens, sqlite_runtime):
    body = {**CALL, "case": {"case_type": "grooming", "child_age_group": "10_13",
                             "relation": "parent", "urls": ["https://example.org/p/1"]}}
    answer = client.post("/api/v1/helpline/contacts", json=body, headers=tokens["cara"])
    assert answer.status_code == 201, answer.text
    recorded = answer.json()
    ref = recorded["case"]
    assert recorded["paged"] == [] and len(recorded["reports"]) == 1
    assert len(sqlite_runtime.enqueuer.ids(NORMALISE)) == 1
    referred = client.post(f"/api/v1/helpline/cases/{ref}/referrals",
                           json={"destinations": ["rs-vtk-prosecutor"]}, headers=tokens["cara"])
    assert referred.status_code == 201
    assert sqlite_runtime.enqueuer.ids(DISPATCH) == referred.json()["notices"]
    view = client.get(f"/api/v1/helpline/cases/{ref}", headers=tokens["sue"]).json()
    assert view["state"] == "referred" and view["contacts"][0]["caller_contact"] == (
        "+381 11 000 111")
    assert view["referrals"][0]["destination"] == "rs-vtk-prosecutor"
    assert view["reports"][0]["report_state"] == "received"
    replied = client.post(f"/api/v1/helpline/cases/{ref}/replies",
                          json={"destination": "rs-vtk-prosecutor", "reference": "KT 7/26"},
                          headers=tokens["cara"])
    assert replied.status_code == 200
    assert client.get(f"/api/v1/helpline/cases/{ref}",
                      headers=tokens["cara"]).json()["state"] == "answered"


def test_analysts_and_auditors_see_no_helpline_data_and_the_refusal_is_audited(
        client, tokens, sqlite_runtime):
    client.post("/api/v1/helpline/contacts", json=CALL, headers=tokens["cara"])
    for who in ("ana", "al"):
        assert client.get("/api/v1/helpline/contacts", headers=tokens[who]).status_code == 403
        assert client.post("/api/v1/helpline/contacts", json=CALL,
                           headers=tokens[who]).status_code == 403
    with sqlite_runtime.session_factory() as session:
        denials = session.execute(select(Event).where(Event.stream == "user:ana",
                                                      Event.action == "access_denied")).all()
    assert len(denials) == 2
    # Counsellors, for their part, do not reach the analysts' queue.
    assert client.get("/api/v1/queue", headers=tokens["cara"]).status_code == 403


def test_bad_input_is_named_with_a_4xx(client, tokens):
    cases = [
        ({**CALL, "channel": "fax"}, "channel"),
        ({**CALL, "anonymous": True}, "caller_contact"),
        ({**CALL, "caller_type": None}, "caller_type"),
        ({**CALL, "case": {"case_type": "burglary"}}, "case.case_type"),
        ({**CALL, "summary": "x" * 5000}, "Shorten “Short summary”: it takes at most"),
    ]
    for body, named in cases:
        answer = client.post("/api/v1/helpline/contacts", json=body, headers=tokens["cara"])
        assert answer.status_code == 422, (body, answer.text)
        assert named in answer.text
    ref = client.post("/api/v1/helpline/contacts", json={**CALL, "case": {
        "case_type": "sextortion"}}, headers=tokens["cara"]).json()["case"]
    answer = client.post(f"/api/v1/helpline/cases/{ref}/referrals",
                         json={"destinations": ["hotline-gb"]}, headers=tokens["cara"])
    assert answer.status_code == 422 and "does not take helpline referrals" in answer.text
    assert answer.json()["field"] == "destinations"  # named for the client's program
    assert client.get("/api/v1/helpline/cases/H-NONE", headers=tokens["cara"]).status_code == 404
    answer = client.post(f"/api/v1/helpline/cases/{ref}/close", json={"reason": "x"},
                         headers=tokens["cara"])
    assert answer.status_code == 422 and "is open: it cannot become closed" in answer.text
    assert "field" not in answer.json()  # about the case, not one field
    answer = client.post(f"/api/v1/helpline/cases/{ref}/replies",
                         json={"destination": "rs-mup-vtk"}, headers=tokens["cara"])
    assert answer.status_code == 422 and "reference" in answer.text


def test_only_supervisors_set_legal_holds_and_see_every_counsellors_welfare(client, tokens):
    ref = client.post("/api/v1/helpline/contacts", json={**CALL, "case": {
        "case_type": "sextortion"}}, headers=tokens["cara"]).json()["case"]
    hold = {"requested_by": "VTK 3/26", "reason": "investigation"}
    assert client.post(f"/api/v1/helpline/cases/{ref}/hold", json=hold,
                       headers=tokens["cara"]).status_code == 403
    assert client.post(f"/api/v1/helpline/cases/{ref}/hold", json=hold,
                       headers=tokens["sue"]).status_code == 201
    assert client.get(f"/api/v1/helpline/cases/{ref}",
                      headers=tokens["cara"]).json()["legal_hold"] is True
    mine = client.get("/api/v1/helpline/welfare", headers=tokens["cara"]).json()
    assert (mine["user"], mine["contacts"], mine["abuse_contacts"]) == ("cara", 1, 1)
    assert client.get("/api/v1/helpline/welfare/counsellors",
                      headers=tokens["cara"]).status_code == 403
    everyone = client.get("/api/v1/helpline/welfare/counsellors", headers=tokens["sue"]).json()
    assert {w["user"] for w in everyone} == {"cara", "sue"}


def test_the_referral_directory_lists_the_institutions(client, tokens):
    listed = client.get("/api/v1/helpline/institutions", headers=tokens["cara"]).json()
    keys = [i["key"] for i in listed]
    assert keys == ["rs-mup-vtk", "rs-vtk-prosecutor", "rs-school-authority",
                    "rs-social-work-centre", "rs-health"]
    assert not any(i["receives_personal_data"] for i in listed)  # off by default


def test_a_contact_from_the_form_is_read_and_taken_up_through_the_api(client, tokens,
                                                                    sqlite_runtime):
    from pipeline.stages import helpline

    rt = sqlite_runtime
    with rt.session_factory.begin() as session:
        ref = helpline.record_incoming(
            session, channel="contact_form", received_at=rt.clock.now(),
            summary="Groomed on https://example.org/p/9", sender="dad@example.org",
            language="en", now=rt.clock.now(), settings=rt.settings, source="form").ref
    assert client.get(f"/api/v1/helpline/contacts/{ref}", headers=tokens["ana"]
                      ).status_code == 403
    seen = client.get(f"/api/v1/helpline/contacts/{ref}", headers=tokens["cara"]).json()
    assert (seen["source"], seen["counsellor"], seen["case_ref"]) == ("form", "(form)", None)
    assert client.get("/api/v1/helpline/contacts/K-NOPE", headers=tokens["cara"]
                      ).status_code == 404
    both = client.post(f"/api/v1/helpline/contacts/{ref}/take-up", headers=tokens["cara"],
                       json={"caller_type": "parent", "topic": "grooming",
                             "case": {"case_type": "grooming"}, "join_case": "H-X"})
    assert both.status_code == 422 and "not both" in both.text
    taken = client.post(f"/api/v1/helpline/contacts/{ref}/take-up", headers=tokens["cara"],
                        json={"caller_type": "parent", "topic": "grooming", "case": {
                            "case_type": "grooming", "urls": ["https://example.org/p/9"]}})
    assert taken.status_code == 200, taken.text
    assert taken.json()["case"].startswith("H-") and len(taken.json()["reports"]) == 1
    seen = client.get(f"/api/v1/helpline/contacts/{ref}", headers=tokens["cara"]).json()
    assert (seen["counsellor"], seen["case_ref"]) == ("cara", taken.json()["case"])
