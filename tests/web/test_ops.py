"""The operations endpoints (pipeline.web.ops): /healthz, /metrics when disabled, and
the internal endpoints of `hotline run`, which need the key of its run file."""

from __future__ import annotations

from pipeline.app.running import KEY_HEADER
from pipeline.app.runtime import build_runtime
from pipeline.core.clock import FrozenClock
from pipeline.core.messaging import RecordingEnqueuer
from pipeline.store.migrate import upgrade
from tests.web.internal import KEY, internal_client


def test_the_internal_endpoints_are_not_there_outside_hotline_run(sqlite_runtime):
    client = internal_client(sqlite_runtime, run_key=None)
    assert client.get("/internal/v1/status", headers={KEY_HEADER: KEY}).status_code == 404
    response = client.post("/internal/v1/enqueue", headers={KEY_HEADER: KEY},
                           json={"stage": "normalise", "ids": [1]})
    assert response.status_code == 404
    assert sqlite_runtime.enqueuer.ids("normalise") == []


def test_the_internal_endpoints_need_the_key_of_the_run_file(sqlite_runtime):
    client = internal_client(sqlite_runtime)
    for headers in ({}, {KEY_HEADER: "a-guess"}, {KEY_HEADER: KEY + "x"}):
        assert client.get("/internal/v1/status", headers=headers).status_code == 403
        response = client.post("/internal/v1/enqueue", headers=headers,
                               json={"stage": "normalise", "ids": [1]})
        assert response.status_code == 403
    assert sqlite_runtime.enqueuer.ids("normalise") == []


def test_with_the_key_ids_are_queued_and_the_queues_shown(sqlite_runtime):
    assert isinstance(sqlite_runtime.enqueuer, RecordingEnqueuer)
    client = internal_client(sqlite_runtime)
    response = client.post("/internal/v1/enqueue", headers={KEY_HEADER: KEY},
                           json={"stage": "trace", "ids": [3, 5, 8]})
    assert response.status_code == 200 and response.json() == {"queued": 3}
    assert sqlite_runtime.enqueuer.ids("trace") == [3, 5, 8]
    status = client.get("/internal/v1/status", headers={KEY_HEADER: KEY})
    assert status.status_code == 200
    assert set(status.json()) == {"queues", "circuits"}
    unknown = client.post("/internal/v1/enqueue", headers={KEY_HEADER: KEY},
                          json={"stage": "nowhere", "ids": [1]})
    assert unknown.status_code == 422


def test_metrics_can_be_turned_off(settings_factory):
    settings = settings_factory(metrics={"enabled": False})
    upgrade(settings.database.url)
    runtime = build_runtime(settings, clock=FrozenClock())
    try:
        client = internal_client(runtime, run_key=None)
        assert client.get("/metrics").status_code == 404
        assert client.get("/healthz").status_code == 200
    finally:
        runtime.close()
