"""Helpers for tests that interleave PostgreSQL transactions."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import text


def wait_for_a_lock_wait(runtime: Any, what: str, timeout: float = 10) -> None:
    """Return once a backend of the runtime's database waits for a lock (another
    thread's statement is blocked); fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    with runtime.session_factory() as probe:
        while not probe.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'")).scalar_one():
            assert time.monotonic() < deadline, f"{what} never waited"
            probe.rollback()
            time.sleep(0.01)
