"""Object-level checks for outside parties: a partner or police token acts only on
cases notified to its destination. Every partner and police route of the app is
walked with a token of another destination: 403 and an audited denial (lists: the
case is not shown); the token of the right destination is let through."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from pipeline.app.auth import issue_token
from pipeline.domain.rules import load_ruleset
from pipeline.stages.routing import route_cases
from pipeline.store.models import Case, Event, Notice
from pipeline.web.app import create_app
from tests.factories import make_case

RULES = load_ruleset(Path(__file__).resolve().parents[2] / "rules")
# Outside-party routes that are about no case (they cannot be out of bounds).
ABOUT_NO_CASE = {("POST", "/api/v1/partner/reports")}
BODIES = {"/api/v1/police/cases/{ref}/reply": {"decision": "proceed"},
          "/api/v1/partner/cases/{ref}/takedown-status": {"status": "moved"}}


def _token(runtime, scope: str, label: str, destination: str | None) -> dict[str, str]:
    with runtime.session_factory.begin() as session:
        value, _ = issue_token(session, scope=scope, label=label, at=runtime.clock.now(),
                               destination=destination)
    return {"Authorization": f"Bearer {value}"}


@pytest.fixture
def held_case(runtime) -> str:
    """A domestic case held for the police (a notice to rs-mup-vtk), also sent to the
    partner hotline at-stopline."""
    now = runtime.clock.now()
    with runtime.session_factory.begin() as session:
        case = make_case(session, at=now, url="http://example.rs/held", state="assessed",
                         legality="illegal_international", category="csam",
                         hosting_country="RS", hosting_abuse_email="abuse@host.rs",
                         hosting_org="Host d.o.o.", hosting_asn=64500)
        route_cases(session, [case.id], clock=runtime.clock, settings=runtime.settings,
                    ruleset=RULES)
        session.add(Notice(case_id=case.id, destination="at-stopline",
                           destination_kind="hotline", kind="notice", channel="file",
                           state="sent", token="tok-at-1", created_at=now))
        assert case.state == "police_hold"
        return case.ref


def _outside_routes(app) -> list[tuple[str, str]]:
    """Every partner and police route the app serves (from its OpenAPI description)."""
    return sorted((method.upper(), path) for path, item in app.openapi()["paths"].items()
                  if path.startswith(("/api/v1/partner", "/api/v1/police"))
                  for method in item)


def test_every_partner_and_police_route_refuses_a_token_of_another_destination(
        runtime, held_case):
    app = create_app(runtime)
    routes = _outside_routes(app)
    assert routes == sorted({("GET", "/api/v1/police/cases"), *ABOUT_NO_CASE,
                             *(("POST", path) for path in BODIES)}), (
        "a new outside-party route: add it to this walk")
    strangers = {"partner": _token(runtime, "partner", "Other hotline", "de-eco"),
                 "police": _token(runtime, "police", "Other police", "hr-police"),
                 "none": _token(runtime, "police", "Old token", None)}
    with TestClient(app) as client:
        for method, path in routes:
            if (method, path) in ABOUT_NO_CASE:
                continue
            scope = "partner" if "/partner/" in path else "police"
            for header in (strangers[scope], strangers["none"] if scope == "police"
                           else None):
                if header is None:
                    continue
                url = path.replace("{ref}", held_case)
                if method == "GET":
                    response = client.get(url, headers=header)
                    assert response.status_code == 200
                    assert held_case not in response.text
                    continue
                response = client.post(url, json=BODIES[path], headers=header)
                assert response.status_code == 403, (path, response.text)
                missing = client.post(path.replace("{ref}", "C-NO-SUCH"), json=BODIES[path],
                                      headers=header)
                assert missing.status_code == 403  # no probing of references
    with runtime.session_factory() as session:
        denials = session.execute(select(Event.data).where(
            Event.action == "access_denied")).scalars().all()
        case = session.execute(select(Case).where(Case.ref == held_case)).scalar_one()
    assert len(denials) == 6
    assert {d["action"] for d in denials} == {"reply on a police hold",
                                              "report a takedown status"}
    assert case.state == "police_hold"  # nothing happened to it


def test_the_token_of_the_notified_destination_may_act(runtime, held_case):
    police = _token(runtime, "police", "VTK", "rs-mup-vtk")
    partner = _token(runtime, "partner", "Stopline", "at-stopline")
    with TestClient(create_app(runtime)) as client:
        listed = client.get("/api/v1/police/cases", headers=police).json()
        assert [c["case"] for c in listed] == [held_case]
        assert client.post(f"/api/v1/partner/cases/{held_case}/takedown-status",
                           json={"status": "removed"}, headers=partner).status_code == 202
        assert client.post(f"/api/v1/police/cases/{held_case}/reply",
                           json={"decision": "proceed"}, headers=police).status_code == 200
