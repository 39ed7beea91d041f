"""The scheduler: one process (or thread, embedded) that runs periodic jobs.

Jobs are registered in `JOBS`; each is a plain function of the runtime. One scheduler
runs the jobs at a time: it holds a lease in Redis (`scheduler.lease_seconds`, renewed
every fifth of it by a thread of its own); others wait as standbys and take over within
the lease after it died. The recovery job (`recover`) runs in a loop of its
own, so no long job delays the release of a dead worker's notices.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.adapters.tracing.breaker import BREAKERS
from pipeline.app.health import beat
from pipeline.app.runtime import Runtime
from pipeline.core.messaging import DISPATCH, TRACE
from pipeline.stages import helpline
from pipeline.stages.assessment import expire_leases
from pipeline.stages.escalation import run_escalation
from pipeline.stages.monitoring import run_monitoring
from pipeline.stages.police import release_expired_holds
from pipeline.stages.reconciler import reconcile, release_dead_holders
from pipeline.stages.retention import scheduled_purge
from pipeline.stages.trace import send_back_unreachable

log = logging.getLogger(__name__)


@dataclass
class Job:
    name: str
    every_seconds: Callable[[Runtime], float]
    run: Callable[[Runtime], object]
    # Runs in a loop of its own, so a long job (a purge, monitoring) never delays it.
    alone: bool = False


def _reconcile(rt: Runtime) -> object:
    with rt.session_factory() as session:
        return reconcile(
            session,
            rt.enqueuer,
            now=rt.clock.now(),
            deadline_seconds=rt.settings.reconciler.stage_deadline_seconds,
            limit=rt.settings.reconciler.max_ids_per_run,
        )


def _recover(rt: Runtime) -> object:
    return release_dead_holders(
        rt.session_factory, rt.enqueuer, now=rt.clock.now(),
        dead_after_seconds=rt.settings.recovery.dead_after_seconds,
        lease_seconds=rt.settings.dispatch.lease_seconds)


def _heartbeat(rt: Runtime) -> object:

    return beat(rt, "scheduler")


def _retention(rt: Runtime) -> object:

    return scheduled_purge(rt)


def _expire_leases(rt: Runtime) -> object:

    with rt.session_factory.begin() as session:
        return expire_leases(session, now=rt.clock.now())


def _release_police_holds(rt: Runtime) -> object:

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

    if not rt.settings.monitoring.enabled:
        return None
    return run_monitoring(rt.session_factory, rt.enqueuer, rt.settings.monitoring,
                          clock=rt.clock)


def _escalation(rt: Runtime) -> object:

    if not rt.settings.escalation.enabled:
        return None
    return run_escalation(rt.session_factory, rt.enqueuer, rt.settings, clock=rt.clock)


def _helpline_reminders(rt: Runtime) -> object:
    if not rt.settings.escalation.enabled:
        return None
    return {"reminders": len(helpline.plan_reminders(
        rt.session_factory, settings=rt.settings, clock=rt.clock, enqueuer=rt.enqueuer))}


def _helpline_retention(rt: Runtime) -> object:
    if not rt.settings.retention.enabled:
        return None
    return helpline.purge_personal_data(rt.session_factory, settings=rt.settings,
                                        now=rt.clock.now())


JOBS: list[Job] = [
    # The work of worker processes that stopped beating comes back at once.
    Job("recover", lambda rt: rt.settings.recovery.check_interval_seconds, _recover,
        alone=True),
    Job("reconcile", lambda rt: rt.settings.reconciler.interval_seconds, _reconcile),
    # Claimed cases whose lease ran out go back to the analysts' queue.
    Job("assessment-leases", lambda rt: rt.settings.assessment.lease_check_interval_seconds,
        _expire_leases),
    # The heartbeat /readyz looks for, and the retention purge.
    Job("heartbeat", lambda rt: min(30.0, rt.settings.metrics.scheduler_max_silence_seconds / 3),
        _heartbeat),
    Job("retention", lambda rt: rt.settings.retention.interval_seconds, _retention),
    # Cases traced while the registries were unreachable, traced again.
    Job("retrace-unreachable", lambda rt: rt.settings.trace.unreachable_retry_seconds,
        _retrace_unreachable),
    # Police holds past their deadline end by themselves (when configured).
    Job("police-holds", lambda rt: rt.settings.routing.police_hold_check_seconds,
        _release_police_holds),
    # Checks after notice, then reminders and the escalation ladder.
    Job("monitoring", lambda rt: rt.settings.monitoring.interval_seconds, _monitoring),
    Job("escalation", lambda rt: rt.settings.escalation.interval_seconds, _escalation),
    # Reminders to institutions silent about a helpline referral (working time), and
    # the purge of callers' and children's data (unless held).
    Job("helpline-reminders", lambda rt: rt.settings.escalation.interval_seconds,
        _helpline_reminders),
    Job("helpline-retention", lambda rt: rt.settings.retention.interval_seconds,
        _helpline_retention),
]


def run_due(rt: Runtime, last_run: dict[str, float], now: float,
            jobs: list[Job] | None = None) -> None:
    for job in JOBS if jobs is None else jobs:
        last = last_run.get(job.name)  # never run: due (even on a machine up < interval)
        if last is not None and now - last < job.every_seconds(rt):
            continue
        last_run[job.name] = now
        try:
            job.run(rt)
        except Exception:
            log.exception("Scheduled job %s failed; it will run again next time.", job.name)


# Renew only a lease this scheduler still holds (compare and extend, atomically).
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


class SchedulerLease:
    """Makes sure only one scheduler runs jobs when several run (a standby is allowed,
    and is how a deployment survives a dead scheduler): a lease in Redis of
    `scheduler.lease_seconds`, renewed every fifth of it by a thread of its own, so a
    long job never lets it lapse. A standby tries to take it as often, so it takes over
    within the lease (plus one renewal period) after the holder died. Without Redis
    (embedded) there is only one scheduler."""

    RENEWALS_PER_LEASE = 5

    def __init__(self, rt: Runtime, ttl_seconds: float | None = None):

        ttl = rt.settings.scheduler.lease_seconds if ttl_seconds is None else ttl_seconds
        self.rt, self.ttl_ms = rt, int(ttl * 1000)
        self.renew_every = ttl / self.RENEWALS_PER_LEASE
        self.key = rt.key("scheduler", "lease")
        self.me = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        self._valid_until = 0.0  # monotonic: held until then, counted from the request
        self._thread: threading.Thread | None = None

    @property
    def held(self) -> bool:
        return self.rt.redis is None or time.monotonic() < self._valid_until

    def acquire_or_renew(self) -> bool:
        client = self.rt.redis
        if client is None:
            return True
        asked = time.monotonic()
        was_held = self.held
        try:
            got = bool(client.set(self.key, self.me, nx=True, px=self.ttl_ms)) or bool(
                client.eval(_RENEW, 1, self.key, self.me, self.ttl_ms))
        except Exception:  # Redis away: held only until the lease asked for last runs out
            log.warning("Scheduler %s could not reach Redis for its lease.", self.me,
                        exc_info=True)
            return self.held
        if got:
            if not was_held:
                log.info("Scheduler %s took the scheduler lease.", self.me)
            self._valid_until = asked + self.ttl_ms / 1000
        else:
            if was_held:
                log.warning("Scheduler %s lost the scheduler lease.", self.me)
            self._valid_until = 0.0
        return got

    def keep(self, stop: threading.Event) -> None:
        """Take or renew the lease every `renew_every` seconds until `stop`, in a thread."""
        def run() -> None:
            while not stop.wait(self.renew_every):
                self.acquire_or_renew()

        self._thread = threading.Thread(target=run, name="scheduler-lease", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Give the lease up (after the `keep` thread was told to stop)."""
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.renew_every + 5)
        client = self.rt.redis
        if client is not None and self.held and (
            (client.get(self.key) or b"").decode() == self.me
        ):
            client.delete(self.key)
        self._valid_until = 0.0


def run_forever(rt: Runtime, stop: threading.Event, tick: float = 1.0) -> None:
    log.info("Scheduler started with jobs: %s.", ", ".join(j.name for j in JOBS))
    lease = SchedulerLease(rt)
    lease.acquire_or_renew()
    renewing = threading.Event()
    lease.keep(renewing)
    tick = min(tick, lease.renew_every)
    alone = [job for job in JOBS if job.alone]
    loops = [threading.Thread(target=_run_alone, args=(rt, job, lease, stop), daemon=True,
                              name=f"scheduler-{job.name}") for job in alone]
    for loop in loops:
        loop.start()
    together = [job for job in JOBS if not job.alone]
    last_run: dict[str, float] = {}
    waiting_logged = False
    try:
        while not stop.is_set():
            if lease.held:
                if waiting_logged:  # took over from another scheduler: everything is due
                    last_run.clear()
                run_due(rt, last_run, time.monotonic(), together)
                waiting_logged = False
            elif not waiting_logged:
                log.warning("Another scheduler holds the lease; this one waits as a standby.")
                waiting_logged = True
            stop.wait(tick)
    finally:
        for loop in loops:
            loop.join(timeout=10)
        renewing.set()
        lease.release()
    log.info("Scheduler stopped.")


def _run_alone(rt: Runtime, job: Job, lease: SchedulerLease, stop: threading.Event) -> None:
    """One job's own loop: every `job.every_seconds` while this scheduler holds the lease."""
    last_run: dict[str, float] = {}
    while not stop.is_set():
        if lease.held:
            run_due(rt, last_run, time.monotonic(), [job])
        stop.wait(min(job.every_seconds(rt), lease.renew_every))
