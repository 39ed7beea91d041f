"""Two `hotline worker` processes on Redis and PostgreSQL; one is SIGKILLed in the middle
of its batches, again and again. Every report still reaches its end exactly once: no
case lost, none opened twice, no state change recorded twice.

Deadlines are short here (heartbeat 1 s, reconciler 2 s) so the dead worker's messages
come back quickly; nothing about time is asserted.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bench import services
from bench.measure import accounting, wait_until_settled
from bench.netfakes import loopback_net
from bench.workload import generate
from pipeline.app.runtime import Runtime
from pipeline.stages.intake import accept_reports
from pipeline.store.audit import verify
from pipeline.store.models import Case, Event, Report
from schemas.intake import ReportIn

REPORTS = 1_200
KILLS = 4


@pytest.fixture
def fresh_pg_url(pg_database_url: str) -> Iterator[str]:
    """A database of its own: the workers are other processes, outside any fixture's
    truncation."""
    from pipeline.store.migrate import upgrade
    from tests.conftest import PG_ADMIN_URL

    os.environ.setdefault("BENCH_PG", PG_ADMIN_URL)
    with services.fresh_pg_database("hotline_test_kill") as url:
        upgrade(url)
        yield url


class Workers:
    """Worker processes, each known by the dramatiq worker id it beats with in Redis."""

    def __init__(self, client: Any, namespace: str, config: Path, logs: Path, own_id: str):
        self.client, self.namespace, self.config, self.logs = client, namespace, config, logs
        self.known = {own_id}
        self.running: list[tuple[services.WorkerProcess, str]] = []
        self.every: list[services.WorkerProcess] = []
        self.started = 0

    def _beating(self) -> set[str]:
        return {m.decode() for m in self.client.zrange(f"{self.namespace}:__heartbeats__", 0, -1)}

    def start(self) -> None:
        self.started += 1
        process = services.start_worker(self.config, self.logs / f"worker-{self.started}.log",
                                        threads=2)
        self.every.append(process)
        deadline = time.monotonic() + 60
        while True:
            new = self._beating() - self.known
            if new:
                worker_id = new.pop()
                self.known.add(worker_id)
                self.running.append((process, worker_id))
                return
            assert process.alive(), process.log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.05)

    def unacked(self, worker_id: str) -> int:
        keys = self.client.keys(f"{self.namespace}:__acks__.{worker_id}.*")
        return sum(self.client.scard(k) for k in keys)

    def stop_all(self) -> None:
        for process in self.every:
            process.stop()


def test_killing_workers_mid_batch_loses_no_case_and_duplicates_none(
    broker_runtime_factory: Callable[..., Runtime], fresh_pg_url: str, redis_url: str,
    redis_namespace: str, redis_client: Any, tmp_path: Path,
) -> None:
    workload = generate(REPORTS, seed=11)
    with loopback_net(workload, tmp_path) as net:
        key_file = tmp_path / "encryption.key"
        from cryptography.fernet import Fernet

        key_file.write_text(Fernet.generate_key().decode())
        values: dict[str, Any] = {
            "app": {"mode": "production", "data_dir": str(tmp_path / "var")},
            "database": {"url": fresh_pg_url},
            "broker": {"url": redis_url, "namespace": redis_namespace,
                       "heartbeat_timeout_ms": 1_000},
            "redis": {"url": redis_url, "namespace": redis_namespace},
            "worker": {"batch_size": 20, "min_backoff_ms": 100, "max_backoff_ms": 1_000},
            "reconciler": {"interval_seconds": 1, "stage_deadline_seconds": 2},
            "privacy": {"encryption_key_file": str(key_file)},
            "logging": {"level": "WARNING"},
        }
        if net is not None:
            values["trace"] = net.trace_settings()
        config = services.write_config(tmp_path / "config.yaml", values)
        runtime = broker_runtime_factory(**values)
        workers = Workers(redis_client, redis_namespace, config, tmp_path,
                          runtime.broker.broker_id)  # type: ignore[attr-defined]
        scheduler = services.start_process(config, tmp_path / "scheduler.log", "scheduler")
        try:
            workers.start()
            workers.start()
            items = [ReportIn.model_validate(r) for r in workload.reports]
            part = len(items) // KILLS
            kills = []
            for round_ in range(KILLS):
                # New work each round, so the victim is busy when it dies.
                chunk = items[round_ * part:] if round_ == KILLS - 1 else items[
                    round_ * part:(round_ + 1) * part]
                for start in range(0, len(chunk), 100):
                    accept_reports(runtime.session_factory, chunk[start:start + 100],
                                   clock=runtime.clock, limits=runtime.settings.intake,
                                   enqueuer=runtime.enqueuer)
                deadline = time.monotonic() + 30
                while True:
                    busy = [(w, workers.unacked(w[1])) for w in workers.running]
                    busy = [(w, held) for w, held in busy if held]
                    if busy:
                        (process, worker_id), held = busy[0]
                        break
                    assert time.monotonic() < deadline, counts_now(runtime)
                    time.sleep(0.002)
                workers.running.remove((process, worker_id))
                time.sleep(0.05)  # let it get into the batch
                process.process.send_signal(signal.SIGKILL)
                process.process.wait()
                kills.append(held)
                workers.start()  # a replacement, as systemd would restart it

            settled, counts = wait_until_settled(runtime.session_factory, REPORTS,
                                                 stall_seconds=60)
        finally:
            workers.stop_all()
            scheduler.stop()

    assert len(kills) == KILLS and all(held > 0 for held in kills)
    assert settled, counts
    with runtime.session_factory() as session:
        books = accounting(session, REPORTS)
        assert books["ok"], books
        # Exactly one settling transition per report, one queueing per case.
        per_report = session.execute(
            select(Event.report_id, func.count())
            .where(Event.to_state.in_(["rejected", "duplicate", "new_case"]),
                   Event.stream.like("report:%"))
            .group_by(Event.report_id)
        ).all()
        assert len(per_report) == REPORTS
        assert {n for _, n in per_report} == {1}
        per_case = session.execute(
            select(Event.case_id, func.count())
            .where(Event.to_state == "awaiting_assessment", Event.stream.like("case:%"))
            .group_by(Event.case_id)
        ).all()
        cases = session.execute(select(func.count()).select_from(Case)).scalar_one()
        assert len(per_case) == cases == books["new_case"]
        assert {n for _, n in per_case} == {1}
        opened = session.execute(
            select(func.count()).select_from(Event).where(Event.action == "case_opened")
        ).scalar_one()
        assert opened == cases
        assert session.execute(select(func.count()).select_from(Report)).scalar_one() == REPORTS
        assert verify(session) == []


def counts_now(runtime: Runtime) -> dict[str, int]:
    from bench.measure import progress

    with runtime.session_factory() as session:
        return progress(session)
