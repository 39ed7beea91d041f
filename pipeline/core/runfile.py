"""The run file: how a running hotline web process tells the other `hotline` commands
of the same machine where it is (`<app.data_dir>/run.json`: its process id, its
address on loopback and a random key; readable by its owner only).

Written by `pipeline.app.running.announce`, read here with the standard library only:
the fast `hotline import` (`pipeline.launcher`) reads it before it has loaded anything
else. A file whose process is gone means nothing is running.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

RUN_FILE = "run.json"
KEY_HEADER = "X-Hotline-Run-Key"
# The running process's import of a file streamed to it, and its `hotline submit`
# (`pipeline.web.ops`).
IMPORT_PATH = "/internal/v1/import"
SUBMIT_PATH = "/internal/v1/submit"


class RunningSystem:
    """What a run file says. (A plain class: `dataclasses` would double the time this
    module takes to load, and the fast `hotline import` loads it first.)"""

    __slots__ = ("pid", "url", "key")

    def __init__(self, pid: int, url: str, key: str):
        self.pid = pid
        self.url = url  # http://127.0.0.1:port, reachable from this machine
        self.key = key

    def _fields(self) -> tuple[int, str, str]:
        return (self.pid, self.url, self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunningSystem) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return f"RunningSystem(pid={self.pid}, url={self.url!r}, key='***')"


def write_run_file(path: Path, running: RunningSystem) -> None:
    """Write `path` readable by its owner only, whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"pid": running.pid, "url": running.url, "key": running.key}, out)
    os.replace(partial, path)


def read_run_file(path: Path) -> RunningSystem | None:
    """What `path` says, if its process is alive; None for no file, a file that does
    not parse, or a process that has died (its answer is the caller's to check)."""
    try:
        data = json.loads(path.read_text())
        running = RunningSystem(pid=int(data["pid"]), url=str(data["url"]),
                                key=str(data["key"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if running.pid <= 0:  # 0 and below name process groups, not a process
        return None
    try:
        os.kill(running.pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    except OverflowError:
        return None  # not a process id
    return running
