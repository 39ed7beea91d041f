"""Health: /healthz, /readyz naming what is not reachable, and `hotline status`."""

from __future__ import annotations

from fastapi.testclient import TestClient

from pipeline.app.health import beat
from pipeline.app.runtime import build_runtime
from pipeline.core.clock import FrozenClock
from pipeline.store.migrate import upgrade
from pipeline.web.app import create_app


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
