"""Case work through the console's forms (no browser): disputes, roles per page."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from pipeline.store.models import Case
from pipeline.web.app import create_app
from tests.web.console.conftest import PASSWORD, add_person, queued_case


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match
    return match.group(1)


class Person:
    """One browser session of one user, through the ASGI app."""

    def __init__(self, runtime, name):
        self.client = TestClient(create_app(runtime), follow_redirects=False,
                                 headers={"Accept-Language": "en"})  # English texts
        form = self.client.get("/console/login")
        response = self.client.post("/console/login", data={
            "name": name, "password": PASSWORD, "csrf": _csrf(form.text)})
        assert response.status_code == 303, response.text
        self.csrf = _csrf(self.client.get("/console/password").text)

    def post(self, path, **data):
        return self.client.post(path, data={"csrf": self.csrf, **data})


@pytest.fixture
def runtime(sqlite_runtime):
    for name, role in [("ana", "analyst"), ("ben", "analyst"), ("sue", "supervisor"),
                       ("aud", "auditor")]:
        add_person(sqlite_runtime, name, role)
    return sqlite_runtime


def _state(runtime, ref):
    with runtime.session_factory() as session:
        return session.execute(select(Case.state).where(Case.ref == ref)).scalar_one()


NATIONAL = {"legality": "illegal_national", "category": "hate_speech"}


def test_a_dispute_between_two_analysts_is_decided_by_a_supervisor_on_the_case_page(runtime):
    ref = queued_case(runtime, "http://forum.example.rs/t/1", claimed="hate_speech")
    ana, ben, sue = (Person(runtime, n) for n in ("ana", "ben", "sue"))
    assert ana.post("/console/claim", kind="first").headers["location"].startswith(
        f"/console/cases/{ref}")
    assert ana.post(f"/console/cases/{ref}/assessment", **NATIONAL).status_code == 303
    assert _state(runtime, ref) == "awaiting_second_assessment"
    # The first analyst is never given their own case for the second look.
    assert ana.post("/console/claim", kind="second").headers["location"] == (
        "/console/?done=empty")
    ben.post("/console/claim", kind="second")
    assert ben.post(f"/console/cases/{ref}/assessment",
                    legality="not_illegal").status_code == 303
    assert _state(runtime, ref) == "awaiting_supervisor"

    review = sue.client.get("/console/review")
    assert ref in review.text
    page = sue.client.get(f"/console/cases/{ref}")
    assert "Supervisor&#39;s decision" in page.text or "Supervisor's decision" in page.text
    assert ana.client.get(f"/console/cases/{ref}").text.count('id="assessment-form"') == 0
    assert sue.post(f"/console/cases/{ref}/assessment", **NATIONAL).status_code == 303
    assert _state(runtime, ref) == "assessed"


def test_an_auditor_reads_statistics_and_cases_but_may_not_claim(runtime):
    ref = queued_case(runtime, "http://a.example.rs/1")
    aud = Person(runtime, "aud")
    assert aud.client.get("/console/stats").status_code == 200
    assert aud.client.get(f"/console/cases/{ref}").status_code == 200
    assert aud.client.get("/console/").status_code == 403
    assert aud.post("/console/claim", kind="first").status_code == 403
    assert _state(runtime, ref) == "awaiting_assessment"


def test_an_analyst_may_not_download_the_per_url_export(runtime):
    ana = Person(runtime, "ana")
    assert ana.client.get("/console/stats/urls").status_code == 403
    assert ana.client.get("/console/stats/export?format=csv").status_code == 200


def test_an_unknown_case_gets_a_not_found_page_not_a_json_error(runtime):
    ana = Person(runtime, "ana")
    response = ana.client.get("/console/cases/C-NOPE")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Not found" in response.text


def test_an_analyst_keeps_a_claimed_case_longer_and_puts_it_back(runtime):
    from pipeline.store.assessment_models import CaseLease

    ref = queued_case(runtime, "http://b.example.rs/2")
    ana = Person(runtime, "ana")
    ana.post("/console/claim", kind="first")
    with runtime.session_factory() as session:
        first = session.execute(select(CaseLease.expires_at)).scalar_one()
    runtime.clock.advance(minutes=10)
    assert ana.post(f"/console/cases/{ref}/renew").headers["location"].endswith("renewed")
    with runtime.session_factory() as session:
        assert session.execute(select(CaseLease.expires_at)).scalar_one() > first
    assert ana.post(f"/console/cases/{ref}/release").status_code == 303
    assert _state(runtime, ref) == "awaiting_assessment"
