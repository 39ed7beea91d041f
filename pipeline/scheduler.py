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

from pipeline.reconciler import reconcile
from pipeline.runtime import Runtime

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


JOBS: list[Job] = [
    Job("reconcile", lambda rt: rt.settings.reconciler.interval_seconds, _reconcile),
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


def run_forever(rt: Runtime, stop: threading.Event, tick: float = 1.0) -> None:
    log.info("Scheduler started with jobs: %s.", ", ".join(j.name for j in JOBS))
    last_run: dict[str, float] = {}
    while not stop.is_set():
        run_due(rt, last_run, time.monotonic())
        stop.wait(tick)
    log.info("Scheduler stopped.")
