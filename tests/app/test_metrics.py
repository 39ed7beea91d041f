"""Metrics: GET /metrics in Prometheus format, counted across worker processes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dramatiq
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from pipeline.core import counters as metrics
from pipeline.store.models import DeadLetter, Notice
from pipeline.store.states import CaseState
from pipeline.web.app import create_app
from tests.ops_helpers import add_case

REPO = Path(__file__).resolve().parents[2]


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _value(registry_text: str, name: str, **labels: str) -> float:
    return _samples(registry_text).get((name, tuple(sorted(labels.items()))), 0.0)


def _scrape(runtime) -> str:
    runtime.settings.metrics.refresh_seconds = 0
    response = TestClient(create_app(runtime)).get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def test_reports_taken_in_are_counted_per_channel(sqlite_runtime):
    before = _scrape(sqlite_runtime)
    client = TestClient(create_app(sqlite_runtime))
    client.post("/api/v1/reports", json={"reports": [
        {"url": "http://a.example/1", "channel": "email"},
        {"url": "http://a.example/2", "channel": "email"},
        {"url": "http://a.example/3", "channel": "phone"}]})
    after = _scrape(sqlite_runtime)
    for channel, n in (("email", 2), ("phone", 1)):
        assert _value(after, "hotline_reports_received_total", channel=channel) - _value(
            before, "hotline_reports_received_total", channel=channel) == n
        assert _value(after, "hotline_reports_stored", channel=channel) == n


def test_backlog_oldest_case_notices_and_dead_letters_are_read_from_the_database(runtime):
    now = runtime.clock.now()
    with runtime.session_factory.begin() as session:
        add_case(session, at=now - timedelta(hours=5), url="http://a.example/old",
                 until=CaseState.AWAITING_ASSESSMENT)
        add_case(session, at=now - timedelta(hours=1), url="http://a.example/new",
                 until=CaseState.AWAITING_ASSESSMENT, step=timedelta(minutes=1))
        add_case(session, at=now - timedelta(days=3), url="http://a.example/sent",
                 until=CaseState.NOTIFIED)
        session.add(DeadLetter(message_id="m1", actor="trace", queue="trace", args=[[1]],
                               kwargs={}, error="boom", failed_at=now))
    text = _scrape(runtime)
    assert _value(text, "hotline_assessment_backlog") == 2
    # The old case entered the queue 2 hours after it came in: 3 hours ago.
    assert _value(text, "hotline_assessment_oldest_age_seconds") == 3 * 3600
    assert _value(text, "hotline_cases", state="awaiting_assessment") == 2
    assert _value(text, "hotline_notices", state="sent", destination_kind="provider") == 1
    assert _value(text, "hotline_dead_letters") == 1
    assert _value(text, "hotline_database_up") == 1
    with runtime.session_factory() as session:
        assert session.query(Notice).count() == 1


def test_takedown_times_are_observed_when_a_removal_commits(sqlite_runtime):
    before = _scrape(sqlite_runtime)
    now = sqlite_runtime.clock.now()
    with sqlite_runtime.session_factory.begin() as session:
        add_case(session, at=now - timedelta(days=2), until=CaseState.REMOVED)
    after = _scrape(sqlite_runtime)
    count = "hotline_takedown_seconds_count"
    assert _value(after, count, since="report") - _value(before, count, since="report") == 1
    assert _value(after, count, since="notice") - _value(before, count, since="notice") == 1
    # Received -> removed took 8 steps of an hour: inside the 12-hour bucket, not the 6.
    bucket = "hotline_takedown_seconds_bucket"
    assert _value(after, bucket, since="report", le="43200.0") - _value(
        before, bucket, since="report", le="43200.0") == 1
    assert _value(after, bucket, since="report", le="21600.0") == _value(
        before, bucket, since="report", le="21600.0")


def test_a_rolled_back_change_is_not_counted(sqlite_runtime):
    before = _scrape(sqlite_runtime)
    session = sqlite_runtime.session_factory()
    add_case(session, at=sqlite_runtime.clock.now(), until=CaseState.REMOVED)
    session.rollback()
    session.close()
    after = _scrape(sqlite_runtime)
    assert _value(after, "hotline_transitions_total", kind="case", action="case_removed") == (
        _value(before, "hotline_transitions_total", kind="case", action="case_removed"))


def test_the_counters_the_tracer_increments_are_exposed(sqlite_runtime):
    metrics.RDAP_CACHE.labels("hit").inc()
    metrics.RDAP_RATE_LIMIT_WAITS.labels("ripe").inc()
    text = _scrape(sqlite_runtime)
    assert _value(text, "hotline_rdap_cache_total", result="hit") >= 1
    assert _value(text, "hotline_rdap_rate_limit_waits_total", registry="ripe") >= 1


def test_the_broker_queue_depth_is_shown_per_stage(sqlite_runtime):
    from workers import context
    from workers.actors import ACTORS
    from workers.broker import install
    from workers.context import placeholder_broker

    broker = install(sqlite_runtime)
    try:
        sqlite_runtime.enqueuer.send("trace", [1, 2])
        text = _scrape(sqlite_runtime)
        assert _value(text, "hotline_broker_queue_depth", queue="trace") == 1
        assert _value(text, "hotline_broker_queue_depth", queue="normalise") == 0
    finally:
        broker.flush_all()
        broker.close()
        for actor in ACTORS.values():
            actor.broker = placeholder_broker
        dramatiq.set_broker(placeholder_broker)
        context.set_runtime(None)


def test_the_redis_broker_queue_depth_is_read_from_redis(settings_factory, redis_url,
                                                         redis_namespace):
    from pipeline.app.health import check_broker, queue_depths
    from pipeline.app.runtime import build_runtime
    from pipeline.core.clock import FrozenClock
    from pipeline.store.migrate import upgrade
    from workers import context
    from workers.actors import ACTORS
    from workers.broker import install
    from workers.context import placeholder_broker

    settings = settings_factory(broker={"url": redis_url, "namespace": redis_namespace})
    upgrade(settings.database.url)
    runtime = build_runtime(settings, clock=FrozenClock())
    broker = install(runtime)
    try:
        runtime.enqueuer.send("dedupe", [1, 2, 3])
        runtime.enqueuer.send("dedupe", [4])
        depths = queue_depths(runtime)
        assert depths["dedupe"] == 2 and depths["trace"] == 0
        assert check_broker(runtime).ok
        runtime.settings.metrics.refresh_seconds = 0
        text = TestClient(create_app(runtime)).get("/metrics").text
        assert _value(text, "hotline_broker_queue_depth", queue="dedupe") == 2
    finally:
        broker.flush_all()
        broker.close()
        for actor in ACTORS.values():
            actor.broker = placeholder_broker
        dramatiq.set_broker(placeholder_broker)
        context.set_runtime(None)
        runtime.close()
