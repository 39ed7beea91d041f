"""The running embedded system, as seen by the other `hotline` commands.

`hotline run` keeps its broker in its own process: a `hotline submit` or `hotline
import` beside it cannot put messages on it, and used to run the whole pipeline
itself (minutes with registries that did not answer) while `hotline status` showed
its own, empty, broker. Now:

1. `hotline run` writes `<data_dir>/run.json` (its process id, its address on
   loopback and a random key; readable by its owner only; `pipeline.core.runfile`)
   and removes it on exit; so does `hotline serve` with a Redis broker (the web
   process of a scaled-out deployment), for the fast `hotline import`
   (`pipeline.launcher`), which streams the file to it (POST /internal/v1/import);
2. another command finds it with `find_running(settings)` (the file, a live process,
   an answer from its /healthz);
3. `submit`/`import` store the reports (the database first, as always) and hand the
   ids to the running process (`hand_over`: POST /internal/v1/enqueue with the key),
   which queues them on its broker: the command returns at once. Should the hand-over
   fail, the reports are stored and the running system's reconciler finds them;
4. `status` asks the running process for its queues and circuit breakers
   (`remote_status`: GET /internal/v1/status).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from pipeline.core.config import Settings
from pipeline.core.runfile import (
    KEY_HEADER,
    RUN_FILE,
    RunningSystem,
    read_run_file,
    write_run_file,
)

__all__ = ["KEY_HEADER", "RUN_FILE", "HandOver", "KeepAnnounced", "RunningSystem", "announce",
           "claim_if_vacant", "find_running", "hand_over", "remote_status", "run_file",
           "withdraw"]


def run_file(settings: Settings) -> Path:
    return settings.data_path / RUN_FILE


def announce(settings: Settings, *, host: str | None = None,
             port: int | None = None) -> RunningSystem:
    """Write the run file of this process (`hotline run`, or `hotline serve` listening
    on `host`:`port`, web.host and web.port by default); return what it says. The
    last process started is the one named; with several web processes on one machine
    another claims the file once it is vacant (`KeepAnnounced`)."""
    host = settings.web.host if host is None else host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - listening everywhere: use loopback
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    running = RunningSystem(pid=os.getpid(),
                            url=f"http://{host}:{port or settings.web.port}",
                            key=secrets.token_urlsafe(32))
    write_run_file(run_file(settings), running)
    return running


def withdraw(settings: Settings, running: RunningSystem) -> None:
    """Remove the run file, if it is still this process's."""
    path = run_file(settings)
    try:
        if json.loads(path.read_text()).get("pid") == running.pid:
            path.unlink()
    except (OSError, ValueError):
        pass


def claim_if_vacant(settings: Settings, running: RunningSystem) -> bool:
    """Name `running` in the run file if no live process is named there (the one that
    was stopped or died): so several web processes on one machine (`hotline serve`)
    take turns, and the file names one of them while any runs."""
    path = run_file(settings)
    if read_run_file(path) is not None:
        return False
    write_run_file(path, running)
    return True


class KeepAnnounced:
    """A thread that claims the run file for this process whenever it is vacant, every
    `every` seconds, until stopped."""

    def __init__(self, settings: Settings, running: RunningSystem, every: float = 5.0):
        self.settings, self.running, self.every = settings, running, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="run-file")

    def start(self) -> KeepAnnounced:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            # A data folder gone away: the commands import files themselves meanwhile.
            with contextlib.suppress(OSError):
                claim_if_vacant(self.settings, self.running)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def find_running(settings: Settings, *, timeout: float = 2.0) -> RunningSystem | None:
    """The `hotline run` of this configuration's data folder, if one is running and
    answers; None otherwise (a run file left by a process that died is ignored)."""
    running = read_run_file(run_file(settings))
    if running is None:
        return None
    try:
        httpx.get(f"{running.url}/healthz", timeout=timeout).raise_for_status()
    except httpx.HTTPError:
        return None
    return running


class HandOver:
    """An enqueuer that gives the ids to the running system. A failed hand-over is
    reported (`failed`), not raised: the reports are stored, and the running system's
    reconciler queues them after its deadline."""

    def __init__(self, running: RunningSystem):
        self.running = running
        self.handed = 0
        self.failed: list[str] = []

    def send(self, stage: str, ids: Sequence[int]) -> None:
        try:
            hand_over(self.running, stage, list(ids))
            self.handed += len(ids)
        except httpx.HTTPError as exc:
            self.failed.append(f"{stage}: {type(exc).__name__}: {exc}")


def hand_over(running: RunningSystem, stage: str, ids: list[int], *,
              timeout: float = 10.0) -> None:
    """Ask the running system to queue `ids` for `stage`. Raises `httpx.HTTPError`."""
    if not ids:
        return
    response = httpx.post(f"{running.url}/internal/v1/enqueue",
                          json={"stage": stage, "ids": ids},
                          headers={KEY_HEADER: running.key}, timeout=timeout)
    response.raise_for_status()


def remote_status(running: RunningSystem, *, timeout: float = 5.0) -> dict[str, Any]:
    """The running system's queue depths and circuit breakers."""
    response = httpx.get(f"{running.url}/internal/v1/status",
                         headers={KEY_HEADER: running.key}, timeout=timeout)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body
