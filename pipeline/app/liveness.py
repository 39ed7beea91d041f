"""A worker process's heartbeat: a row in `heartbeats` renewed every
`recovery.heartbeat_seconds` by a thread of its own, so that the scheduler can release
the work of a process that died (SIGKILL, OOM, power) within
`recovery.dead_after_seconds` instead of a full claim lease
(docs/operators/recovery.md)."""

from __future__ import annotations

import logging
import threading

from sqlalchemy import delete

from pipeline.app.health import beat
from pipeline.app.runtime import Runtime
from pipeline.core.process import heartbeat_name
from pipeline.store.ops_models import Heartbeat

log = logging.getLogger(__name__)


class ProcessHeartbeat:
    """Beats at once on `start()`, then every `recovery.heartbeat_seconds` until
    `stop()`, which removes the row (a process that stopped cleanly holds nothing)."""

    def __init__(self, rt: Runtime):
        self.rt = rt
        self.name = heartbeat_name()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="process-heartbeat",
                                        daemon=True)

    def beat(self) -> None:
        try:
            beat(self.rt, self.name)
        except Exception:  # the database is away: the next beat tries again
            log.warning("Could not record this process's heartbeat.", exc_info=True)

    def _run(self) -> None:
        every = self.rt.settings.recovery.heartbeat_seconds
        while not self._stop.wait(every):
            self.beat()

    def start(self) -> ProcessHeartbeat:
        self.beat()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        try:
            with self.rt.session_factory.begin() as session:
                session.execute(delete(Heartbeat).where(Heartbeat.name == self.name))
        except Exception:
            log.warning("Could not remove this process's heartbeat.", exc_info=True)
