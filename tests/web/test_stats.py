"""The statistics API: aggregates for the hotline's people, URLs for admins only."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from pipeline.app import users
from pipeline.store.models import Event, Notice
from pipeline.store.takedown_models import TakedownWatch
from pipeline.web.app import create_app
from tests.factories import make_case


@pytest.fixture
def client(sqlite_runtime):
    with TestClient(create_app(sqlite_runtime)) as client:
        yield client


@pytest.fixture
def tokens(sqlite_runtime):
    now = sqlite_runtime.clock.now()
    headers = {}
    with sqlite_runtime.session_factory.begin() as session:
        for name, role in [("ana", "analyst"), ("root", "admin")]:
            users.add_user(session, name, role, at=now)
            token, _ = users.add_token(session, scope="analyst", label=name, at=now,
                                       user_name=name)
            headers[name] = {"Authorization": f"Bearer {token}"}
        token, _ = users.add_token(session, scope="partner", label="cz-stoponline", at=now,
                                   destination="cz-stoponline")
        headers["partner"] = {"Authorization": f"Bearer {token}"}
    return headers


@pytest.fixture
def assessed_case(sqlite_runtime):
    now = sqlite_runtime.clock.now()
    with sqlite_runtime.session_factory.begin() as session:
        case = make_case(session, at=now - timedelta(hours=3), url="http://secret.example/x",
                         state="monitoring", assessed_at=now - timedelta(hours=1),
                         legality="illegal_international", category="csam",
                         hosting_country="CZ")
        session.add(TakedownWatch(case_id=case.id, started_at=now, next_check_at=now
                                  + timedelta(hours=1), baseline_addresses=[]))
        session.add(Notice(case_id=case.id, destination="cz-stoponline",
                           destination_kind="hotline", kind="notice", channel="file",
                           state="sent", token="tok-cz-1", created_at=now))
        return case.ref


def test_statistics_need_a_person_of_the_hotline(client, tokens, assessed_case) -> None:
    period = {"from": "2026-01-01", "to": "2026-01-31"}
    assert client.get("/api/v1/stats", params=period).status_code == 401
    assert client.get("/api/v1/stats", params=period, headers=tokens["partner"]
                      ).status_code == 403
    response = client.get("/api/v1/stats", params=period, headers=tokens["ana"])
    assert response.status_code == 200
    body = response.json()
    assert body["illegal_by_hosting_country"] == [{"key": "CZ", "count": 1}]
    assert "secret.example" not in response.text


def test_the_csv_export_comes_with_its_header(client, tokens, assessed_case) -> None:
    response = client.get("/api/v1/stats", params={"from": "2026-01-01", "to": "2026-01-31",
                                                   "format": "csv"}, headers=tokens["ana"])
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["section", "dimension", "key", "metric", "value"]
    assert ["illegal", "hosting_country", "CZ", "count", "1"] in rows


def test_a_period_ending_before_it_starts_is_refused(client, tokens) -> None:
    response = client.get("/api/v1/stats", params={"from": "2026-02-01", "to": "2026-01-01"},
                          headers=tokens["ana"])
    assert response.status_code == 422


def test_only_an_admin_exports_urls_and_a_refusal_is_recorded(client, tokens, assessed_case,
                                                              sqlite_runtime) -> None:
    period = {"from": "2026-01-01", "to": "2026-01-31"}
    assert client.get("/api/v1/stats/urls", params=period, headers=tokens["ana"]
                      ).status_code == 403
    response = client.get("/api/v1/stats/urls", params=period, headers=tokens["root"])
    assert response.status_code == 200
    assert [r["url"] for r in response.json()] == ["http://secret.example/x"]
    with sqlite_runtime.session_factory() as session:
        actions = session.execute(select(Event.action).where(
            Event.action.in_(["access_denied", "url_export"]))).scalars().all()
    assert sorted(actions) == ["access_denied", "url_export"]


def test_a_partner_hotline_reports_content_removed(client, tokens, assessed_case,
                                                   sqlite_runtime) -> None:
    path = f"/api/v1/partner/cases/{assessed_case}/takedown-status"
    assert client.post(path, json={"status": "removed"}, headers=tokens["ana"]
                       ).status_code == 403
    assert client.post(path, json={"status": "gone"}, headers=tokens["partner"]
                       ).status_code == 422
    response = client.post(path, json={"status": "removed"}, headers=tokens["partner"])
    assert response.status_code == 202 and response.json()["recorded"] is True
    with sqlite_runtime.session_factory() as session:
        watch = session.execute(select(TakedownWatch)).scalar_one()
    assert watch.claimed_by == "hotline:cz-stoponline" and watch.claim_status == "removed"
    assert watch.next_check_at == sqlite_runtime.clock.now()  # verified at the next run


def test_the_schema_is_served(client) -> None:
    assert client.get("/api/v1/stats/schema").json()["title"] == "StatsExport"
