"""Health: /healthz, /readyz naming what is not reachable, and `hotline status`."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from pipeline.app.health import beat
from pipeline.app.runtime import build_runtime
from pipeline.core.clock import FrozenClock
from pipeline.store.migrate import upgrade
from pipeline.store.states import CaseState
from pipeline.web.app import create_app
from tests.ops_helpers import add_case


def _client(runtime) -> TestClient:
    return TestClient(create_app(runtime))


def test_healthz_says_the_process_is_alive(sqlite_runtime):
    response = _client(sqlite_runtime).get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_names_the_scheduler_until_its_heartbeat_is_seen(runtime):
    client = _client(runtime)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["not_reachable"] == ["scheduler"]
    beat(runtime, "scheduler")
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["database"]["ok"] is True


def test_readyz_names_a_scheduler_that_fell_silent(sqlite_runtime):
    beat(sqlite_runtime, "scheduler")
    assert isinstance(sqlite_runtime.clock, FrozenClock)
    sqlite_runtime.clock.advance(
        seconds=sqlite_runtime.settings.metrics.scheduler_max_silence_seconds + 1)
    body = _client(sqlite_runtime).get("/readyz").json()
    assert body["not_reachable"] == ["scheduler"]
    assert "silent for" in body["checks"]["scheduler"]["detail"]


def test_readyz_names_a_broker_that_cannot_be_reached(settings_factory):
    settings = settings_factory(broker={"url": "redis://127.0.0.1:1/0"})
    upgrade(settings.database.url)
    runtime = build_runtime(settings, clock=FrozenClock())
    beat(runtime, "scheduler")
    response = _client(runtime).get("/readyz")
    assert response.status_code == 503
    assert response.json()["not_reachable"] == ["broker"]
    runtime.close()


def test_readyz_names_a_database_that_cannot_be_reached(settings_factory):
    settings = settings_factory(database={"url": "postgresql://postgres@127.0.0.1:1/none"})
    runtime = build_runtime(settings, clock=FrozenClock())
    response = _client(runtime).get("/readyz")
    assert response.status_code == 503
    assert response.json()["not_reachable"] == ["database", "scheduler"]
    runtime.close()


@pytest.fixture
def cli_env(settings_factory, monkeypatch, tmp_path):
    settings = settings_factory()
    upgrade(settings.database.url)
    monkeypatch.setenv("HOTLINE_DATABASE__URL", settings.database.url)
    monkeypatch.setenv("HOTLINE_APP__DATA_DIR", settings.app.data_dir)
    return settings


def test_status_prints_reachability_backlogs_and_dead_letters(cli_env):
    from pipeline.cli import main

    runtime = build_runtime(cli_env)
    with runtime.session_factory.begin() as session:
        add_case(session, at=runtime.clock.now() - timedelta(hours=3),
                 until=CaseState.AWAITING_ASSESSMENT)
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 1  # no scheduler yet
    assert "scheduler  DOWN" in result.output
    assert "assessment backlog: 1 cases, oldest waiting" in result.output
    assert "dead letters: 0" in result.output
    beat(runtime, "scheduler")
    result = CliRunner().invoke(main, ["status", "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["ready"] is True
    assert status["assessment_backlog"] == 1
    assert status["cases_by_state"] == {"awaiting_assessment": 1}
    # Queued an hour after it came in (the helper moves one state per hour).
    assert 3000 < status["assessment_oldest_age_seconds"] < 4200
    runtime.close()
