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


def test_the_lease_is_short_by_default_and_comes_from_the_configuration(settings_factory):
    from pipeline.app.runtime import build_runtime

    assert settings_factory().scheduler.lease_seconds <= 10
    rt = build_runtime(settings_factory(scheduler={"lease_seconds": 3}))
    lease = SchedulerLease(rt)
    assert (lease.ttl_ms, lease.renew_every) == (3000, 0.6)
    rt.close()


def test_a_long_job_neither_lets_the_lease_lapse_nor_delays_the_recovery_job(
    settings_factory, redis_url, redis_namespace, monkeypatch
):
    """The lease is renewed by a thread of its own (a job longer than the lease keeps
    it), and the recovery job runs in a loop of its own (a long job never delays it)."""
    import threading

    from pipeline.app.runtime import build_runtime
    from pipeline.app.scheduler import run_forever

    settings = settings_factory(redis={"url": redis_url, "namespace": redis_namespace},
                                scheduler={"lease_seconds": 1})
    rt, other_rt = build_runtime(settings), build_runtime(settings)
    started, finish = threading.Event(), threading.Event()
    recovered: list[int] = []

    def slow(rt):
        started.set()
        finish.wait(30)

    monkeypatch.setattr("pipeline.app.scheduler.JOBS", [
        Job("slow", lambda rt: 3600, slow),
        Job("recover", lambda rt: 0.1, lambda rt: recovered.append(1), alone=True)])
    stop = threading.Event()
    scheduler = threading.Thread(target=run_forever, args=(rt, stop))
    scheduler.start()
    try:
        assert started.wait(30)
        other = SchedulerLease(other_rt)
        other.me += "-other"
        for _ in range(6):  # three times the lease, while the slow job runs
            assert other.acquire_or_renew() is False
            finish.wait(0.5)
        assert len(recovered) >= 2
    finally:
        finish.set()
        stop.set()
        scheduler.join(30)
    assert other.acquire_or_renew() is True  # given up on stopping
    other.release()
    rt.close()
    other_rt.close()


