"""Reading figures out of the database after (or while) the pipeline works.

Times come from the rows themselves: every state change stamps `<state>_at` with the
worker's clock, so throughput and latency need no instrumentation in the pipeline.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from pipeline.store.models import Case, Event, Report
from pipeline.store.states import CaseState, ReportState

SETTLED_REPORT_STATES = (ReportState.REJECTED, ReportState.DUPLICATE, ReportState.NEW_CASE)
WAITING_CASE_STATES = (CaseState.NORMALISED, CaseState.TRACED)


def progress(session: Session, min_report_id: int = 0) -> dict[str, int]:
    """Reports per state and cases per state (reports with id > `min_report_id`)."""
    reports = dict(session.execute(
        select(Report.state, func.count()).where(Report.id > min_report_id)
        .group_by(Report.state)
    ).all())
    cases = dict(session.execute(select(Case.state, func.count()).group_by(Case.state)).all())
    return {**{f"reports_{k}": v for k, v in reports.items()},
            **{f"cases_{k}": v for k, v in cases.items()}}


def is_settled(counts: dict[str, int], expected_reports: int) -> bool:
    settled = sum(counts.get(f"reports_{s.value}", 0) for s in SETTLED_REPORT_STATES)
    waiting = sum(counts.get(f"cases_{s.value}", 0) for s in WAITING_CASE_STATES)
    return settled >= expected_reports and waiting == 0


def wait_until_settled(
    session_factory: sessionmaker[Session], expected_reports: int, *, min_report_id: int = 0,
    stall_seconds: float = 180, poll: float = 1.0,
    on_poll: Callable[[dict[str, int]], None] | None = None,
) -> tuple[bool, dict[str, int]]:
    """Poll until every report settled and no case waits before the queue. Gives up
    (returns False) when nothing moved for `stall_seconds`."""
    last: dict[str, int] = {}
    last_change = time.monotonic()
    while True:
        with session_factory() as session:
            counts = progress(session, min_report_id)
        if on_poll:
            on_poll(counts)
        if is_settled(counts, expected_reports):
            return True, counts
        if counts != last:
            last, last_change = counts, time.monotonic()
        elif time.monotonic() - last_change > stall_seconds:
            return False, counts
        time.sleep(poll)


def max_report_id(session: Session) -> int:
    return int(session.execute(select(func.coalesce(func.max(Report.id), 0))).scalar_one())


def finish_time(session: Session, min_report_id: int) -> datetime | None:
    """When the last report of the run settled (its case queued, or it was set aside)."""
    case_end = session.execute(
        select(func.max(Case.awaiting_assessment_at))
        .join(Report, Report.case_id == Case.id)
        .where(Report.id > min_report_id, Report.state == ReportState.NEW_CASE)
    ).scalar_one()
    report_end = session.execute(
        select(func.max(func.coalesce(Report.duplicate_at, Report.rejected_at)))
        .where(Report.id > min_report_id,
               Report.state.in_([ReportState.DUPLICATE, ReportState.REJECTED]))
    ).scalar_one()
    ends = [e for e in (case_end, report_end) if e is not None]
    return max(ends) if ends else None


def settle_times(session: Session, min_report_id: int) -> list[datetime]:
    """When each report of the run settled, sorted (for "99% done by" figures)."""
    opened = session.execute(
        select(Case.awaiting_assessment_at).join(Report, Report.case_id == Case.id)
        .where(Report.id > min_report_id, Report.state == ReportState.NEW_CASE)
    ).scalars().all()
    others = session.execute(
        select(func.coalesce(Report.duplicate_at, Report.rejected_at))
        .where(Report.id > min_report_id,
               Report.state.in_([ReportState.DUPLICATE, ReportState.REJECTED]))
    ).scalars().all()
    return sorted(t for t in [*opened, *others] if t is not None)


class FirstVisible:
    """When a reader first sees a report after `min_report_id` stored, and one settled
    (polled every 2 ms on the harness's connection). The rows' own times are the
    clocks of their transactions, taken when each began: a report settled in its
    1,000-report intake transaction carries a time some 250 ms before anyone can see
    it (`intake.settle_up_to`), so the first report's figures are these."""

    def __init__(self, session_factory: sessionmaker[Session], min_report_id: int):
        self.session_factory = session_factory
        self.floor = min_report_id
        self.stored: datetime | None = None
        self.settled: datetime | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="first-visible")

    def start(self) -> FirstVisible:
        self._thread.start()
        return self

    def _run(self) -> None:
        settled = (
            select(Report.id).outerjoin(Case, Case.id == Report.case_id)
            .where(Report.id > self.floor,
                   (Report.state.in_([ReportState.DUPLICATE, ReportState.REJECTED]))
                   | ((Report.state == ReportState.NEW_CASE)
                      & Case.awaiting_assessment_at.is_not(None)))
            .limit(1))
        with self.session_factory() as session:
            while not self._stop.is_set() and self.settled is None:
                with session.begin():
                    if self.stored is None and session.execute(
                            select(Report.id).where(Report.id > self.floor).limit(1)
                    ).first() is not None:
                        self.stored = datetime.now(UTC)
                    if self.stored is not None and session.execute(settled).first():
                        self.settled = datetime.now(UTC)
                time.sleep(0.002)

    def stop(self) -> tuple[datetime | None, datetime | None]:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.stored, self.settled


class SettleWatcher:
    """How long each report takes from the call that hands it in to settled (a case
    awaiting assessment opened, a case joined, or rejected) as a reader sees it: the
    reports handed in and not yet seen settled are polled every 5 ms on the harness's
    connection. The rows' own times cannot say it: each is the clock of its
    transaction taken when it began, before the work and the commit (a worker's, or
    the intake's own when it settles the reports: `intake.settle_up_to`)."""

    def __init__(self, session_factory: sessionmaker[Session], *, every: float = 0.005):
        self.session_factory = session_factory
        self.every = every
        self.opened_case: list[float] = []
        self.all_reports: list[float] = []
        self._pending: dict[int, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="settle-watcher")

    def start(self) -> SettleWatcher:
        self._thread.start()
        return self

    def handed_in(self, ids: list[int], at: float) -> None:
        """`ids` were handed in by a call that began at `at` (time.monotonic())."""
        with self._lock:
            self._pending.update(dict.fromkeys(ids, at))

    def _run(self) -> None:
        with self.session_factory() as session:
            while not self._stop.is_set():
                with self._lock:
                    pending = list(self._pending)
                if pending:
                    with session.begin():
                        found = session.execute(
                            select(Report.id, Report.state)
                            .outerjoin(Case, Case.id == Report.case_id)
                            .where(Report.id.in_(pending),
                                   Report.state.in_([ReportState.DUPLICATE,
                                                     ReportState.REJECTED])
                                   | ((Report.state == ReportState.NEW_CASE)
                                      & Case.awaiting_assessment_at.is_not(None)))).all()
                    seen = time.monotonic()
                    with self._lock:
                        for report_id, state in found:
                            took = seen - self._pending.pop(report_id)
                            self.all_reports.append(took)
                            if state == ReportState.NEW_CASE:
                                self.opened_case.append(took)
                time.sleep(self.every)

    def stop(self, timeout: float = 60.0) -> int:
        """Wait until every report handed in was seen settled (at most `timeout`
        seconds); the number still unseen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._pending:
                    break
            time.sleep(0.05)
        self._stop.set()
        self._thread.join(timeout=5)
        with self._lock:
            return len(self._pending)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def latency_summary(values: list[float]) -> dict[str, Any]:
    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 1)

    return {"count": len(values), "p50_ms": ms(percentile(values, 50)),
            "p99_ms": ms(percentile(values, 99)), "max_ms": ms(max(values) if values else None)}


def accounting(session: Session, submitted: int, min_report_id: int = 0) -> dict[str, Any]:
    """Every report accounted for: settled exactly once, every new case queued once."""
    if session.get_bind().dialect.name == "postgresql":
        # Fresh statistics first: autovacuum may not have analysed the tables the
        # phase just filled, and the join below then ran as a nested loop over
        # 100,000 reports for minutes (seen at BENCH_N=100000).
        session.execute(text("ANALYZE reports, cases"))
    counts = progress(session, min_report_id)
    reports = sum(v for k, v in counts.items() if k.startswith("reports_"))
    rejected = counts.get("reports_rejected", 0)
    duplicate = counts.get("reports_duplicate", 0)
    new_case = counts.get("reports_new_case", 0)
    # Each case is opened by exactly one report; each report that opened or joined a case
    # is counted once on it.
    cases = session.execute(
        select(func.count(), func.coalesce(func.sum(Case.report_count), 0))
        .where(Case.id.in_(select(Report.case_id).where(Report.id > min_report_id)))
    ).one()
    case_count, report_count_sum = int(cases[0]), int(cases[1])
    opened_queued = session.execute(
        select(func.count()).select_from(Report).join(Case, Case.id == Report.case_id)
        .where(Report.id > min_report_id, Report.state == ReportState.NEW_CASE,
               Case.state == CaseState.AWAITING_ASSESSMENT)
    ).scalar_one()
    attached = session.execute(
        select(func.count()).select_from(Report)
        .where(Report.id > min_report_id, Report.case_id.is_not(None))
    ).scalar_one()
    open_per_key = session.execute(
        select(func.count()).select_from(
            select(Case.dedup_key).where(Case.open_key.is_not(None))
            .group_by(Case.dedup_key).having(func.count() > 1).subquery()
        )
    ).scalar_one()
    checks = {
        "every_report_stored": reports == submitted,
        "every_report_settled": rejected + duplicate + new_case == submitted,
        "every_new_case_queued": opened_queued == new_case,
        "one_opening_report_per_case": case_count == new_case,
        "report_counts_add_up": report_count_sum == attached == duplicate + new_case,
        "one_open_case_per_url": open_per_key == 0,
    }
    return {
        "submitted": submitted, "stored": reports, "rejected": rejected,
        "duplicate": duplicate, "new_case": new_case, "cases": case_count,
        "cases_awaiting_assessment": int(opened_queued), "checks": checks,
        "ok": all(checks.values()),
    }


# -- CPU of every process, audit events and write-ahead log over a phase ----------------


def _proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a live process (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class CpuSampler:
    """CPU seconds of groups of processes (workers, PostgreSQL backends, Redis, the
    intake process...) over a phase, read from /proc.

    `groups()` names the processes of each group; it is called again every `interval`
    seconds from a thread, because PostgreSQL backends come and go: a process first
    seen during the phase counts from zero (its whole life is in the phase), one seen
    at the start from its reading then, and one that exits keeps its last reading (so
    up to `interval` of a short-lived process's last work may be missed; a child
    whose exact total is known is given with `set_total`)."""

    def __init__(self, groups: Callable[[], dict[str, list[int]]], interval: float = 0.2):
        self.groups = groups
        self.interval = interval
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._group_of: dict[int, str] = {}
        self._totals: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="cpu-sampler")

    def _read(self, baseline: bool) -> None:
        for group, pids in self.groups().items():
            for pid in pids:
                seconds = _proc_cpu_seconds(pid)
                if seconds is None:
                    continue
                if pid not in self._first:
                    self._first[pid] = seconds if baseline else 0.0
                    self._group_of[pid] = group
                self._last[pid] = seconds

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._read(baseline=False)

    def start(self) -> CpuSampler:
        self._read(baseline=True)
        self._thread.start()
        return self

    def set_total(self, group: str, seconds: float) -> None:
        """The exact CPU seconds of a group (a child process reaped with os.wait4)."""
        self._totals[group] = seconds

    def stop(self) -> dict[str, float]:
        """CPU seconds per group over the phase."""
        self._stop.set()
        self._thread.join()
        self._read(baseline=False)
        out: dict[str, float] = {}
        for pid, first in self._first.items():
            group = self._group_of[pid]
            out[group] = out.get(group, 0.0) + self._last[pid] - first
        out.update(self._totals)
        return out


# Groups that stand in for the world outside: the loopback DNS resolver and RDAP
# servers answer what the internet's would. A deployment does not run them.
TEST_WORLD = frozenset({"loopback_dns_rdap"})


def cpu_ms_per_report(seconds: dict[str, float], reports: int) -> dict[str, float | None]:
    """CPU milliseconds per report of each group, of all of them ("every_process") and
    of those a deployment runs ("hotline_processes": all but `TEST_WORLD`)."""
    if not reports:
        return {}
    out: dict[str, float | None] = {
        name: round(value * 1000 / reports, 3) for name, value in sorted(seconds.items())}
    out["every_process"] = round(sum(seconds.values()) * 1000 / reports, 3)
    out["hotline_processes"] = round(
        sum(v for name, v in seconds.items() if name not in TEST_WORLD) * 1000 / reports, 3)
    return out


def postgres_backend_pids(session: Session, exclude: set[int]) -> list[int]:
    """Backends connected to this session's database, except `exclude` (the
    harness's own connections) and this one."""
    rows = session.execute(text(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND backend_type = 'client backend'")).scalars()
    return [int(pid) for pid in rows if int(pid) not in exclude]


def wal_position(session: Session) -> tuple[int, int] | None:
    """(write-ahead log bytes, records) so far, from `pg_stat_wal` (PostgreSQL 14 or
    later; the whole server's, so other clients of a shared server count too), or
    None on SQLite."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    row = session.execute(text("SELECT wal_bytes, wal_records FROM pg_stat_wal")).one()
    return int(row[0]), int(row[1])


def audit_event_count(session: Session) -> int:
    return int(session.execute(select(func.count()).select_from(Event)).scalar_one())
