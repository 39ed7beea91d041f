"""Who this process is, for claims that must be traceable to a living process.

`process_id()` is 24 hex characters, new in every process (a forked child gets its
own). Work a process claims is stamped with it (a notice's `lease_owner` starts with
it), and the process beats under `heartbeat_name()` in the `heartbeats` table, so
the scheduler can tell a claim whose holder died from one that is merely slow
(docs/operators/recovery.md).
"""

from __future__ import annotations

import os
import uuid

PROCESS_ID_LENGTH = 24
HEARTBEAT_PREFIX = "worker:"

_pid: int | None = None
_process_id = ""


def process_id() -> str:
    global _pid, _process_id
    if _pid != os.getpid():
        _pid, _process_id = os.getpid(), uuid.uuid4().hex[:PROCESS_ID_LENGTH]
    return _process_id


def heartbeat_name(pid_token: str | None = None) -> str:
    """The `heartbeats` row of a worker process (this one by default)."""
    return HEARTBEAT_PREFIX + (pid_token or process_id())


def holder_of(lease_owner: str | None) -> str | None:
    """The process id a claim was stamped with (None for a claim without one)."""
    if not lease_owner or len(lease_owner) <= PROCESS_ID_LENGTH or (
            lease_owner[PROCESS_ID_LENGTH] != "."):
        return None
    return lease_owner[:PROCESS_ID_LENGTH]


def new_claim_owner() -> str:
    """A claim's owner: this process's id, a dot, and 16 hex characters of its own."""
    return f"{process_id()}.{uuid.uuid4().hex[:16]}"
