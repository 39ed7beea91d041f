"""The case API (pipeline.web.cases): the case view, release, assessments of one case
or of several cases of a site, by reference or id; someone else's case refused and
the denial audited."""

from __future__ import annotations

from sqlalchemy import select

from pipeline.core.messaging import ROUTE
from pipeline.store.models import Case, Event
from tests.assessment_support import queue
from tests.web.test_queue import CSAM, client, tokens  # noqa: F401 - the fixtures


def test_a_case_reference_works_wherever_an_id_does(client, runtime, tokens):  # noqa: F811
    [case_id] = queue(runtime, {"url": "http://a.example/1"})
    client.post("/api/v1/queue/claim", headers=tokens["ana"])
    with runtime.session_factory() as session:
        ref = session.get(Case, case_id).ref
    response = client.post(f"/api/v1/cases/{ref}/assessment", headers=tokens["ana"],
                           json={"legality": "out_of_remit"})
    assert response.json()["decisions"][0]["state"] == "closed"
    assert runtime.enqueuer.ids(ROUTE) == []


def test_a_missing_detail_is_named_in_the_answer(client, runtime, tokens):  # noqa: F811
    [case_id] = queue(runtime, {"url": "http://a.example/1"})
    client.post("/api/v1/queue/claim", headers=tokens["ana"])
    response = client.post(f"/api/v1/cases/{case_id}/assessment", headers=tokens["ana"],
                           json={"legality": "illegal_international", "category": "csam"})
    assert response.status_code == 422
    assert "age_group: required when category is csam" in " ".join(response.json()["problems"])


def test_someone_elses_case_is_refused_with_403_and_the_denial_audited(client, runtime, tokens):  # noqa: F811
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


def test_assessing_a_case_nobody_claimed_is_a_conflict(client, runtime, tokens):  # noqa: F811
    [case_id] = queue(runtime, {"url": "http://a.example/1"})
    response = client.post(f"/api/v1/cases/{case_id}/assessment", headers=tokens["ana"],
                           json={"legality": "not_illegal"})
    assert response.status_code == 409 and "not claimed" in response.json()["error"]
    assert client.get("/api/v1/cases/999999", headers=tokens["sue"]).status_code == 404


def test_release_puts_the_case_back_for_the_next_analyst(client, runtime, tokens):  # noqa: F811
    [case_id] = queue(runtime, {"url": "http://a.example/1"})
    client.post("/api/v1/queue/claim", headers=tokens["ana"])
    assert client.post("/api/v1/queue/claim", headers=tokens["bo"]).json()["lease"] is None
    released = client.post(f"/api/v1/cases/{case_id}/release", headers=tokens["ana"])
    assert released.json()["state"] == "awaiting_assessment"
    assert client.post("/api/v1/queue/claim",
                       headers=tokens["bo"]).json()["lease"]["case_id"] == case_id


def test_four_eyes_and_a_supervisors_decision_over_the_api(client, runtime, tokens):  # noqa: F811
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


def test_same_site_claim_and_one_decision_for_all(client, runtime, tokens):  # noqa: F811
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
