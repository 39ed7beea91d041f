"""Per-case truth: the API's case view and `hotline case show --json` carry
the case's notices (destination, kind, state, planned/sent/confirmed times) and its
takedown timeline by INHOPE stage."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from pipeline.app import users
from pipeline.cli import main
from pipeline.store.models import Notice
from pipeline.web.app import create_app
from tests.factories import make_case


@pytest.fixture
def notified(sqlite_runtime):
    rt = sqlite_runtime
    t0 = rt.clock.now()
    with rt.session_factory.begin() as session:
        case = make_case(session, at=t0, url="http://example.com/n", state="monitoring",
                         assessed_at=t0 + timedelta(hours=1),
                         notified_at=t0 + timedelta(hours=2),
                         routed_at=t0 + timedelta(hours=1))
        common = dict(case_id=case.id, kind="notice", round=1, language="en",
                      subject="s", body="b", payload={}, address="abuse@hoster.example")
        session.add(Notice(destination="hoster", destination_kind="provider",
                           channel="smtp", state="sent", token="tok-provider-secret",
                           attempts=1, created_at=t0 + timedelta(hours=1),
                           sent_at=t0 + timedelta(hours=2),
                           confirmed_at=t0 + timedelta(hours=5), **common))
        session.add(Notice(destination="rs-police", destination_kind="police",
                           channel="file", state="planned", token="tok-police-secret",
                           attempts=0, created_at=t0 + timedelta(hours=1, minutes=1),
                           **common))
        ref = case.ref
        users.add_user(session, "sue", "supervisor", at=t0)
        token, _ = users.add_token(session, scope="analyst", label="sue", at=t0,
                                   user_name="sue")
    return rt, ref, {"Authorization": f"Bearer {token}"}


def _check(view):
    notices = view["notices"]
    assert [(n["destination"], n["destination_kind"], n["kind"], n["state"])
            for n in notices] == [("hoster", "provider", "notice", "sent"),
                                  ("rs-police", "police", "notice", "planned")]
    provider, police = notices
    assert provider["planned_at"] and provider["sent_at"] and provider["confirmed_at"]
    assert police["sent_at"] is None and police["confirmed_at"] is None
    assert "token" not in provider and "body" not in provider
    timeline = {s["stage"]: s for s in view["takedown"]}
    assert list(timeline) == ["received", "assessed", "police_notified", "police_cleared",
                              "provider_notified", "hotline_notified", "removed", "closed"]
    assert timeline["received"]["after_received_seconds"] == 0
    assert timeline["assessed"]["after_received_seconds"] == 3600
    assert timeline["provider_notified"]["after_received_seconds"] == 7200
    assert timeline["police_notified"]["at"] is None
    assert timeline["removed"]["at"] is None


def test_the_api_case_view_has_the_notices_and_the_takedown_timeline(notified):
    rt, ref, headers = notified
    with TestClient(create_app(rt)) as client:
        response = client.get(f"/api/v1/cases/{ref}", headers=headers)
    assert response.status_code == 200, response.text
    _check(response.json())


def test_case_show_json_has_them_too(notified, tmp_path, monkeypatch):
    rt, ref, _ = notified
    config = tmp_path / "cli.yaml"
    config.write_text(f"app:\n  data_dir: {rt.settings.app.data_dir}\n"
                      f"database:\n  url: {rt.settings.database.url}\n")
    monkeypatch.setenv("HOTLINE_CONFIG", str(config))
    result = CliRunner().invoke(main, ["case", "show", ref, "--json", "--as", "sue"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    _check(json.loads(result.stdout))
