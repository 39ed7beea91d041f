"""The scheduler runs due jobs, survives a failing job, and only one runs at a time."""

from __future__ import annotations

from pipeline.app.scheduler import JOBS, Job, SchedulerLease, run_due


def test_a_failing_job_does_not_stop_the_others(sqlite_runtime, monkeypatch):
    ran = []

    def boom(rt):
        raise RuntimeError("boom")

    monkeypatch.setattr("pipeline.app.scheduler.JOBS", [
        Job("boom", lambda rt: 1, boom), Job("ok", lambda rt: 1, lambda rt: ran.append(1))])
    last: dict[str, float] = {}
    run_due(sqlite_runtime, last, 100.0)
    run_due(sqlite_runtime, last, 100.5)  # not due again yet
    run_due(sqlite_runtime, last, 101.5)
    assert ran == [1, 1]


def test_the_reconciler_is_a_scheduled_job():
    assert "reconcile" in [job.name for job in JOBS]


def test_only_one_of_two_schedulers_holds_the_lease(settings_factory, redis_url,
                                                    redis_namespace):
    from pipeline.app.runtime import build_runtime

    settings = settings_factory(redis={"url": redis_url, "namespace": redis_namespace})
    first, second = build_runtime(settings), build_runtime(settings)
    a, b = SchedulerLease(first, ttl_seconds=5), SchedulerLease(second, ttl_seconds=5)
    b.me = a.me + "-other"
    assert a.acquire_or_renew() is True
    assert b.acquire_or_renew() is False
    assert a.acquire_or_renew() is True  # renewal
    a.release()
    assert b.acquire_or_renew() is True
    b.release()
    first.close()
    second.close()
