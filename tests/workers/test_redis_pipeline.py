"""The pipeline end to end through the real Redis broker and worker threads; lost
messages are recovered by the reconciler; failures end up as dead letters."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from pipeline.app.deadletters import list_dead_letters, retry_dead_letters
from pipeline.core.errors import PermanentError
from pipeline.stages.intake import accept_reports
from pipeline.stages.reconciler import reconcile
from pipeline.store.models import Case, Report
from schemas.intake import ReportIn
from tests.workers.conftest import report_states, run_worker, wait_for

URLS = ["http://a.example/1", "http://a.example/1", "http://b.example/", "ftp://c.example/",
        "https://d.example/x?y=1"]


def _submit(runtime, urls=URLS):
    return accept_reports(runtime.session_factory, [ReportIn(url=u) for u in urls],
                          clock=runtime.clock, limits=runtime.settings.intake,
                          enqueuer=runtime.enqueuer)


def _cases_waiting(runtime) -> int:
    with runtime.session_factory() as session:
        return session.execute(select(func.count()).select_from(Case).where(
            Case.state == "awaiting_assessment")).scalar_one()


def _redis_sections(redis_url, namespace, pg_url=None):
    sections = {"broker": {"url": redis_url, "namespace": namespace},
                "redis": {"namespace": namespace}}
    if pg_url:
        sections["database"] = {"url": pg_url}
    return sections


def test_reports_flow_to_the_assessment_queue_through_redis_and_postgresql(
    broker_runtime_factory, redis_url, redis_namespace, pg_runtime
):
    runtime = broker_runtime_factory(**_redis_sections(
        redis_url, redis_namespace, pg_runtime.settings.database.url))
    run_worker(runtime)
    _submit(runtime)
    wait_for(lambda: _cases_waiting(runtime) == 3, what="three cases in the queue")
    assert report_states(runtime) == {"new_case": 3, "duplicate": 1, "rejected": 1}
    with runtime.session_factory() as session:
        counts = sorted(session.execute(select(Case.report_count)).scalars())
    assert counts == [1, 1, 2]


def test_deleted_queue_messages_are_recovered_by_the_reconciler(
    broker_runtime_factory, redis_url, redis_namespace, redis_client
):
    runtime = broker_runtime_factory(**_redis_sections(redis_url, redis_namespace))
    _submit(runtime)  # no worker running: the messages wait in Redis
    lost = list(redis_client.scan_iter(match=f"{redis_namespace}:*"))
    assert lost, "the broker should have queued messages in Redis"
    for key in lost:
        redis_client.delete(key)
    run_worker(runtime)
    with runtime.session_factory() as session:
        assert session.execute(select(func.count()).select_from(Report).where(
            Report.state == "received")).scalar_one() == 5
    # Nothing arrives: the messages are gone. The reconciler sends them again.
    with runtime.session_factory() as session:
        sent = reconcile(session, runtime.enqueuer, now=runtime.clock.now(),
                         deadline_seconds=0, limit=1000)
    assert sent == {"normalise": 5}
    wait_for(lambda: _cases_waiting(runtime) == 3, what="three cases in the queue")


def test_the_reconciler_leaves_items_alone_before_their_deadline(sqlite_runtime):
    _submit(sqlite_runtime)
    with sqlite_runtime.session_factory() as session:
        assert reconcile(session, sqlite_runtime.enqueuer, now=sqlite_runtime.clock.now(),
                         deadline_seconds=60, limit=100) == {}
        sqlite_runtime.clock.advance(seconds=61)
        assert reconcile(session, sqlite_runtime.enqueuer, now=sqlite_runtime.clock.now(),
                         deadline_seconds=60, limit=100) == {"normalise": 5}


@pytest.mark.parametrize("broker_url", ["memory", "redis"])
def test_a_message_that_keeps_failing_becomes_a_dead_letter_that_can_be_retried(
    broker_runtime_factory, redis_url, redis_namespace, monkeypatch, broker_url
):
    sections = {"worker": {"max_retries": 1, "min_backoff_ms": 10, "max_backoff_ms": 100}}
    if broker_url == "redis":
        sections.update(_redis_sections(redis_url, redis_namespace))
    runtime = broker_runtime_factory(**sections)

    def broken(session, ids, *, clock, **options):
        raise RuntimeError("resolver exploded")

    monkeypatch.setattr("workers.actors.normalise_and_dedupe", broken)
    run_worker(runtime)
    _submit(runtime, ["http://a.example/"])

    def dead():
        with runtime.session_factory() as session:
            return list_dead_letters(session)

    wait_for(lambda: len(dead()) == 1, what="a dead letter")
    letter = dead()[0]
    assert letter.actor == "normalise" and "resolver exploded" in letter.error
    assert letter.retries >= 1
    monkeypatch.undo()
    assert retry_dead_letters(runtime) == 1
    wait_for(lambda: _cases_waiting(runtime) == 1, what="the retried report's case")
    assert dead() == []


def test_a_permanent_error_is_dead_lettered_without_retrying(
    broker_runtime_factory, monkeypatch
):
    runtime = broker_runtime_factory(worker={"max_retries": 5, "min_backoff_ms": 10_000})
    calls = []

    def bad(session, ids, *, clock, **options):
        calls.append(ids)
        raise PermanentError("this can never work")

    monkeypatch.setattr("workers.actors.normalise_and_dedupe", bad)
    run_worker(runtime)
    _submit(runtime, ["http://a.example/"])
    def dead():
        with runtime.session_factory() as session:
            return list_dead_letters(session)

    wait_for(lambda: len(dead()) == 1, what="a dead letter")
    assert len(calls) == 1
