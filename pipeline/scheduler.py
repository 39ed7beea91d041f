"""The scheduler: one process (or thread, embedded) that runs periodic jobs.

Jobs are registered in `JOBS`; each is a plain function of the runtime. Run exactly
one scheduler per deployment.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.adapters.tracing.breaker import BREAKERS
from pipeline.messaging import TRACE
from pipeline.reconciler import reconcile
from pipeline.runtime import Runtime
from pipeline.trace import send_back_unreachable

log = logging.getLogger(__name__)


@dataclass
class Job:
    name: str
    every_seconds: Callable[[Runtime], float]
    run: Callable[[Runtime], object]


def _reconcile(rt: Runtime) -> object:
    with rt.session_factory() as session:
        return reconcile(
            session,
            rt.enqueuer,
            now=rt.clock.now(),
            deadline_seconds=rt.settings.reconciler.stage_deadline_seconds,
            limit=rt.settings.reconciler.max_ids_per_run,
        )


def _heartbeat(rt: Runtime) -> object:
    from pipeline.health import beat

    return beat(rt, "scheduler")


def _retention(rt: Runtime) -> object:
    from pipeline.retention import scheduled_purge

    return scheduled_purge(rt)


def _expire_leases(rt: Runtime) -> object:
    from pipeline.assessment import expire_leases

    with rt.session_factory.begin() as session:
        return expire_leases(session, now=rt.clock.now())


def _release_police_holds(rt: Runtime) -> object:
    from pipeline.messaging import DISPATCH
    from pipeline.police import release_expired_holds

    with rt.session_factory.begin() as session:
        released = release_expired_holds(session, clock=rt.clock, settings=rt.settings)
    rt.enqueuer.send(DISPATCH, released)
    return {"released_notices": len(released)}


def _retrace_unreachable(rt: Runtime) -> object:
    blocked = BREAKERS.blocked()
    if blocked:  # this process knows they still do not answer: wait
        return {"waiting_for": blocked}
    with rt.session_factory.begin() as session:
        ids = send_back_unreachable(session, now=rt.clock.now(),
                                    limit=rt.settings.trace.unreachable_retrace_batch)
    rt.enqueuer.send(TRACE, ids)
    return {"retraced": len(ids)}


def _monitoring(rt: Runtime) -> object:
    from pipeline.monitoring import run_monitoring

    if not rt.settings.monitoring.enabled:
        return None
    return run_monitoring(rt.session_factory, rt.enqueuer, rt.settings.monitoring,
                          clock=rt.clock)


def _escalation(rt: Runtime) -> object:
    from pipeline.escalation import run_escalation

    if not rt.settings.escalation.enabled:
        return None
    return run_escalation(rt.session_factory, rt.enqueuer, rt.settings, clock=rt.clock)


JOBS: list[Job] = [
    Job("reconcile", lambda rt: rt.settings.reconciler.interval_seconds, _reconcile),
    # Issue 5: claimed cases whose lease ran out go back to the analysts' queue.
    Job("assessment-leases", lambda rt: rt.settings.assessment.lease_check_interval_seconds,
        _expire_leases),
    # Issue 10: the heartbeat /readyz looks for, and the retention purge.
    Job("heartbeat", lambda rt: min(30.0, rt.settings.metrics.scheduler_max_silence_seconds / 3),
        _heartbeat),
    Job("retention", lambda rt: rt.settings.retention.interval_seconds, _retention),
    # Issue 19: cases traced while the registries were unreachable, traced again.
    Job("retrace-unreachable", lambda rt: rt.settings.trace.unreachable_retry_seconds,
        _retrace_unreachable),
    # Issue 6: police holds past their deadline end by themselves (when configured).
    Job("police-holds", lambda rt: rt.settings.routing.police_hold_check_seconds,
        _release_police_holds),
    # Issue 7: checks after notice, then reminders and the escalation ladder.
    Job("monitoring", lambda rt: rt.settings.monitoring.interval_seconds, _monitoring),
    Job("escalation", lambda rt: rt.settings.escalation.interval_seconds, _escalation),
]


def run_due(rt: Runtime, last_run: dict[str, float], now: float) -> None:
    for job in JOBS:
        if now - last_run.get(job.name, 0.0) < job.every_seconds(rt):
            continue
        last_run[job.name] = now
        try:
            job.run(rt)
        except Exception:
            log.exception("Scheduled job %s failed; it will run again next time.", job.name)


class SchedulerLease:
    """Makes sure only one scheduler runs jobs when several were started by mistake:
    a lease in Redis, renewed while held. Without Redis (embedded) there is only one."""

    def __init__(self, rt: Runtime, ttl_seconds: float = 30.0):
        import os
        import socket

        self.rt, self.ttl_ms = rt, int(ttl_seconds * 1000)
        self.key = rt.key("scheduler", "lease")
        self.me = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        self.held = False

    def acquire_or_renew(self) -> bool:
        client = self.rt.redis
        if client is None:
            return True
        if client.set(self.key, self.me, nx=True, px=self.ttl_ms):
            log.info("Scheduler %s took the scheduler lease.", self.me)
            self.held = True
        elif (client.get(self.key) or b"").decode() == self.me:
            client.pexpire(self.key, self.ttl_ms)
            self.held = True
        else:
            if self.held:
                log.warning("Scheduler %s lost the scheduler lease.", self.me)
            self.held = False
        return self.held

    def release(self) -> None:
        client = self.rt.redis
        if client is not None and self.held and (
            (client.get(self.key) or b"").decode() == self.me
        ):
            client.delete(self.key)


def run_forever(rt: Runtime, stop: threading.Event, tick: float = 1.0) -> None:
    log.info("Scheduler started with jobs: %s.", ", ".join(j.name for j in JOBS))
    lease = SchedulerLease(rt)
    last_run: dict[str, float] = {}
    waiting_logged = False
    try:
        while not stop.is_set():
            if lease.acquire_or_renew():
                run_due(rt, last_run, time.monotonic())
                waiting_logged = False
            elif not waiting_logged:
                log.warning("Another scheduler holds the lease; this one waits as a standby.")
                waiting_logged = True
            stop.wait(tick)
    finally:
        lease.release()
    log.info("Scheduler stopped.")
