"""Recovery after crashes, with real processes: a standby scheduler takes
over a SIGKILLed one within its lease, and dispatch workers SIGKILLed at random and
inside SMTP transactions (once with the active scheduler) lose no notice and duplicate
none, their notices coming back within the recovery bound after each kill.

The bounds asserted are correctness bounds (a takeover or a release that waited for a
longer lease would break them), with a margin for a loaded machine; the times
themselves are what `make bench` prints (bench/recovery.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import recovery, services

LEASE = 2.0
# Startup, a loaded 2-core machine, one renewal period: the slack of the bounds.
MARGIN = 3.0


@pytest.fixture
def fresh_pg_url(pg_database_url: str) -> Iterator[str]:
    """A database of its own: the workers are other processes, outside any fixture's
    truncation."""
    from tests.conftest import PG_ADMIN_URL

    os.environ.setdefault("BENCH_PG", PG_ADMIN_URL)
    with services.fresh_pg_database("hotline_test_recovery") as url:
        yield url


def test_a_standby_scheduler_takes_over_within_the_lease_after_the_active_one_is_killed(
    redis_url: str, redis_namespace: str, tmp_path: Path
) -> None:
    from pipeline.store.migrate import upgrade

    db_url = f"sqlite:///{tmp_path}/hotline.db"
    upgrade(db_url)
    values: dict[str, Any] = {
        "app": {"data_dir": str(tmp_path / "var")},
        "database": {"url": db_url},
        "redis": {"url": redis_url, "namespace": redis_namespace},
        "scheduler": {"lease_seconds": LEASE},
        "logging": {"level": "INFO"},
    }
    config = services.write_config(tmp_path / "config.yaml", values)
    took = recovery.scheduler_takeover(config, redis_url, redis_namespace, tmp_path)
    # The dead scheduler's lease runs out at most LEASE after its last renewal; the
    # standby asks every fifth of it.
    assert took <= LEASE + LEASE / 5 + MARGIN, took


def test_killed_workers_and_scheduler_lose_and_duplicate_no_notice_and_work_comes_back(
    fresh_pg_url: str, redis_url: str, redis_namespace: str, tmp_path: Path
) -> None:
    run = recovery.kill_dispatch(tmp_path, redis_url, redis_namespace, fresh_pg_url,
                                 notices=36, kills=3)
    figures = run.as_dict()
    assert len(run.kills) == 3, figures
    # At least one kill caught a worker inside an SMTP transaction, holding notices.
    assert any(k["how"].startswith("smtp-") for k in run.kills), figures
    assert run.held_at_death > 0, figures
    # Exactly once: nothing arrived twice, every notice settled, every `sent` arrived.
    assert run.duplicates == 0, figures
    assert run.lost == 0, figures
    assert set(run.states) <= {"sent", "unconfirmed"}, figures
    # Only a death between the final "." and its answer leaves a notice unconfirmed:
    # at most one per thread of each killed worker (2).
    assert run.unconfirmed <= 2 * len(run.kills), figures
    # Deaths are crashes, audited, never attempts: the server refused nothing.
    assert run.max_attempts == 0, figures
    assert run.crashes >= 1 and run.claims_lost_audited == run.crashes, figures
    # After every kill, the notices the dead worker held came back within the recovery
    # bound (its heartbeat stopping, plus one look of the scheduler; plus the standby's
    # takeover when the active scheduler was killed with it), not after
    # dispatch.lease_seconds (600).
    assert any(k["scheduler_killed"] for k in run.kills), figures
    for kill in run.kills:
        assert kill["back_s"] <= kill["bound_s"] + MARGIN, figures
    assert run.settled_s is not None, figures
    assert run.audit_problems == [], figures
