"""The route stage, the police's reply and partner intake through the API, and the
confirmation link, on SQLite and PostgreSQL. The police hold itself is in
tests/stages/test_police.py, the reconciler in tests/stages/test_reconciler.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from pipeline.core.messaging import DISPATCH
from pipeline.store.audit import verify
from pipeline.store.models import Case, Event, Report
from pipeline.web.app import create_app
from tests.routing_support import RULES, assessed, case_of, notices_of, route, token


def test_a_domestic_case_is_held_for_the_police_with_the_provider_notice_waiting(runtime):
    case_id = assessed(runtime)
    now = runtime.clock.now()
    planned = route(runtime, case_id)
    case = case_of(runtime, case_id)
    assert case.state == "police_hold"
    assert case.police_hold_until == now + timedelta(hours=72)
    police, provider = notices_of(runtime, case_id)
    assert (police.destination, police.state, police.due_at) == ("rs-mup-vtk", "planned", now)
    assert (provider.destination, provider.state, provider.due_at) == (
        "hosting-provider", "held", now + timedelta(hours=72))
    assert provider.address == "abuse@host.rs"
    assert planned == [police.id]
    assert case.routing["hits"] == ["domestic-illegal"]
    assert "nothing-to-act-on" in case.routing["misses"]
    assert case.routing["rules"] == RULES.digest
    with runtime.session_factory() as session:
        actions = list(session.execute(select(Event.action).where(Event.case_id == case_id)
                                       .order_by(Event.seq)).scalars())
        assert actions == ["case_routed", "case_held_for_police"]
        assert verify(session) == []


def test_routing_a_case_twice_changes_nothing_the_second_time(runtime):
    case_id = assessed(runtime, hosting_country="DE")
    first = route(runtime, case_id)
    second = route(runtime, case_id)
    assert len(first) == 1 and second == []
    assert len(notices_of(runtime, case_id)) == 1
    assert case_of(runtime, case_id).state == "notified"


def test_a_case_abroad_is_forwarded_to_the_hotline_in_the_exchange_format(runtime):
    case_id = assessed(runtime, hosting_country="NL", hosting_abuse_email="abuse@host.nl")
    (notice_id,) = route(runtime, case_id)
    (notice,) = notices_of(runtime, case_id)
    assert notice.id == notice_id and notice.destination == "hotline-nl"
    exchange = notice.payload["exchange"]
    assert exchange["format"] == "hotline-exchange"
    assert exchange["reports"][0]["hosting"]["country"] == "NL"
    assert case_of(runtime, case_id).state == "notified"


def test_a_case_that_is_not_illegal_closes_without_routing_or_notices(runtime):
    case_id = assessed(runtime, legality="not_illegal")
    assert route(runtime, case_id) == []
    case = case_of(runtime, case_id)
    assert case.state == "closed" and case.routed_at is None and case.open_key is None
    assert case.routing["closed"] == "nothing illegal to act on"
    assert notices_of(runtime, case_id) == []






# --------------------------------------------------------------------------- the API


@pytest.fixture
def client(runtime):
    with TestClient(create_app(runtime)) as client:
        yield client


def test_the_police_reply_through_the_api_with_a_police_token(client, runtime):
    case_id = assessed(runtime)
    route(runtime, case_id)
    ref = case_of(runtime, case_id).ref
    police = token(runtime, "police", "VTK", destination="rs-mup-vtk")
    url = f"/api/v1/police/cases/{ref}/reply"
    assert client.post(url, json={"decision": "proceed"}).status_code == 401
    partner = token(runtime, "partner", "Stopline")
    assert client.post(url, json={"decision": "proceed"}, headers=partner).status_code == 403
    refused = client.post(url, json={"decision": "keep_holding"}, headers=police)
    assert refused.status_code == 422 and "reason" in refused.json()["error"]
    listed = client.get("/api/v1/police/cases", headers=police).json()
    assert [(c["case"], c["reason"]) for c in listed] == [(ref, None)]
    assert client.get("/api/v1/police/cases", headers=partner).status_code == 403
    held = client.post(url, json={"decision": "keep_holding", "reason": "surveillance"},
                       headers=police)
    assert held.status_code == 200, held.text
    assert held.json()["state"] == "police_hold"
    done = client.post(url, json={"decision": "proceed"}, headers=police)
    assert done.json() == {"case": ref, "state": "notified", "hold_until": None,
                           "released_notices": 1}
    assert runtime.enqueuer.ids(DISPATCH) == [notices_of(runtime, case_id)[1].id]
    again = client.post(url, json={"decision": "proceed"}, headers=police)
    assert again.status_code == 409
    with runtime.session_factory() as session:
        event = session.execute(select(Event).where(Event.case_id == case_id,
                                                    Event.action == "police_hold_extended")
                                ).scalar_one()
        assert event.actor == "police:VTK" and event.data["reason"] == "surveillance"


def test_partner_hotlines_submit_reports_in_the_exchange_format(client, runtime):
    partner = token(runtime, "partner", "Stopline AT")
    document = {
        "format": "hotline-exchange", "version": 1,
        "sender": {"name": "Stopline", "country": "AT"},
        "sent_at": "2026-01-05T08:00:00Z",
        "reports": [{"reference": "AT-1", "url": "http://example.rs/p",
                     "received_at": "2026-01-05T07:00:00Z", "category": "csam",
                     "legality": "illegal_international", "hosting": {"country": "RS"}}],
    }
    response = client.post("/api/v1/partner/reports", json=document, headers=partner)
    assert response.status_code == 201, response.text
    (accepted,) = response.json()["reports"]
    assert accepted["reference"] == "AT-1"
    with runtime.session_factory() as session:
        report = session.execute(select(Report).where(Report.ref == accepted["our_reference"])
                                 ).scalar_one()
        assert (report.channel, report.source, report.claimed_category) == (
            "partner", "Stopline AT", "csam")
    smuggled = {**document, "reports": [{**document["reports"][0],
                                         "reporter": "jane@example.org"}]}
    assert client.post("/api/v1/partner/reports", json=smuggled,
                       headers=partner).status_code == 422
    police = token(runtime, "police", "VTK")
    assert client.post("/api/v1/partner/reports", json=document,
                       headers=police).status_code == 403


def test_the_confirmation_link_shows_a_page_and_only_a_post_records_the_confirmation(
    client, runtime
):
    case_id = assessed(runtime, hosting_country="DE")
    route(runtime, case_id)
    (notice,) = notices_of(runtime, case_id)
    url = f"/api/v1/notices/{notice.token}/confirm"
    page = client.get(url)
    assert page.status_code == 200 and "<form method=\"post\">" in page.text
    assert notices_of(runtime, case_id)[0].confirmed_at is None
    runtime.clock.advance(hours=5)
    assert client.post(url).status_code == 200
    assert client.post(url).status_code == 200
    assert notices_of(runtime, case_id)[0].confirmed_at == runtime.clock.now()
    with runtime.session_factory() as session:
        count = session.execute(select(func.count()).select_from(Event).where(
            Event.case_id == case_id, Event.action == "notice_confirmed")).scalar_one()
        assert count == 1
        assert verify(session) == []
    assert client.get("/api/v1/notices/nope/confirm").status_code == 404
    assert client.post("/api/v1/notices/nope/confirm").status_code == 404


def test_a_case_whose_notice_cannot_be_built_stays_assessed_and_the_others_go_on(runtime):
    bad = assessed(runtime, host="evil.example\r\nBcc: someone@example.org")
    good = assessed(runtime, hosting_country="DE")
    planned = route(runtime, bad, good)
    assert len(planned) == 1
    assert case_of(runtime, bad).state == "assessed"
    assert notices_of(runtime, bad) == []
    assert case_of(runtime, good).state == "notified"
    with runtime.session_factory() as session:
        assert verify(session) == []


def test_content_that_moved_is_traced_again_and_routed_in_a_new_round(runtime):
    from pipeline.stages.trace import trace_cases
    from pipeline.store.lifecycle import transition

    case_id = assessed(runtime, hosting_country="NL", hosting_abuse_email="abuse@host.nl")
    route(runtime, case_id)
    with runtime.session_factory.begin() as session:
        case = session.get(Case, case_id)
        transition(session, case, "monitoring", at=runtime.clock.advance(hours=1))
        transition(session, case, "traced", at=runtime.clock.advance(hours=1))
    rerouted: list[int] = []
    with runtime.session_factory.begin() as session:
        trace_cases(session, [case_id], clock=runtime.clock, rerouted=rerouted)
        case = session.get(Case, case_id)
        # The (placeholder) trace found a new home for it: Germany.
        case.hosting_country, case.hosting_abuse_email = "DE", "abuse@host.de"
    assert rerouted == [case_id]
    assert case_of(runtime, case_id).state == "assessed"
    route(runtime, case_id)
    notices = notices_of(runtime, case_id)
    assert [(n.destination, n.round) for n in notices] == [("hotline-nl", 1), ("hotline-de", 2)]
    with runtime.session_factory() as session:
        assert verify(session) == []
