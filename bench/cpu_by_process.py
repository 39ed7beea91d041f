"""`python -m bench.cpu_by_process`: the scaled-out throughput phase alone, with the CPU
of every process per report and the write-ahead log of the run's database.

The measurement behind the 2026-12-07 entry of docs/dev/performance-log.md. It wraps
`bench.harness` (same workload, same deployment; the latency phase is skipped) and
prints one JSON line:

- CPU ms per report of the workers, of the PostgreSQL backends serving the run's
  database (`pg_stat_activity`, CPU from `/proc`), of the private Redis and of the
  harness (its intake), over the throughput phase;
- the same less each process's idle work ("busy_ms_*"): dramatiq's consumers poll
  their queues and heartbeat while nothing arrives, and on a machine that runs the
  phase slowly (shared cores) that idle work weighs more per report. It is measured
  over `IDLE_SECONDS` (default 10) before the phase;
- audit events per report, rows per report by table (`pg_stat_user_tables`);
- WAL records and bytes per report of the run's database, by kind: `pg_waldump` over
  the phase, with a physical replication slot holding the segments meanwhile (so the
  process must run where the server's `pg_wal` is readable; otherwise null).

Knobs: those of `bench.harness` (`BENCH_N`, `BENCH_SEED`, `BENCH_WORKERS`...),
`IDLE_SECONDS`, `PROFILE=<file>` (py-spy `--gil` raw samples of the first worker
over the phase), `PG_WAL_DIR`, `PG_WALDUMP`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from bench import harness, services

WAL_DIR = os.environ.get("PG_WAL_DIR", "/var/lib/postgresql/15/main/pg_wal")
WALDUMP = os.environ.get("PG_WALDUMP", "/usr/lib/postgresql/15/bin/pg_waldump")
SLOT = "hotline_bench_cpu"
TICK = os.sysconf("SC_CLK_TCK")

_admin = create_engine(services.PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
_state: dict[str, Any] = {}


def _cpu(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def _snapshot(dep: harness.Deployment) -> dict[str, Any]:
    db = dep.runtime.settings.database.url.rsplit("/", 1)[1]
    with _admin.connect() as conn:
        backends = [r[0] for r in conn.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname = :d"), {"d": db})]
        lsn = conn.execute(text("SELECT pg_current_wal_insert_lsn()::text")).scalar_one()
        oid = conn.execute(text("SELECT oid FROM pg_database WHERE datname = :d"),
                           {"d": db}).scalar_one()
    with dep.runtime.session_factory() as session:
        tables = {r[0]: list(r[1:]) for r in session.execute(text(
            "SELECT relname, seq_tup_read, idx_tup_fetch, n_tup_ins, n_tup_upd, "
            "n_tup_hot_upd FROM pg_stat_user_tables"))}
    redis = _state["redis"].process
    return {
        "t": time.monotonic(), "lsn": lsn, "oid": oid, "tables": tables,
        "cpu": {
            "workers": {p: _cpu(p) for p in dep.measured_pids()},
            "postgresql": {p: _cpu(p) for p in backends},
            "redis": {redis.pid: _cpu(redis.pid)} if redis else {},
            "harness": {0: services.own_cpu_seconds()},
        },
    }


def _seconds(before: dict[str, Any], after: dict[str, Any], group: str) -> float:
    return sum(v - (before["cpu"][group].get(pid) or 0.0)
               for pid, v in after["cpu"][group].items() if v is not None)


@contextlib.contextmanager
def _redis_server(workdir: Path) -> Iterator[services.RedisServer]:
    with _ORIGINAL_REDIS(workdir) as server:
        _state["redis"] = server
        yield server


def _run_phases(dep: harness.Deployment, workload: Any, opts: harness.Options,
                net: Any) -> dict[str, Any]:
    time.sleep(3)
    _state["idle"] = _snapshot(dep)
    time.sleep(float(os.environ.get("IDLE_SECONDS", 10)))
    with contextlib.suppress(Exception), _admin.connect() as conn:
        conn.execute(text(f"SELECT pg_create_physical_replication_slot('{SLOT}', true)"))
        _state["slot"] = True
    _state["before"] = _snapshot(dep)
    if os.environ.get("PROFILE"):
        _state["spy"] = subprocess.Popen(  # noqa: S603 - py-spy, fixed arguments
            [str(Path(sys.executable).with_name("py-spy")), "record", "--pid",
             str(dep.measured_pids()[0]), "--gil", "--nonblocking", "-r", "200",
             "--format", "raw", "-o", os.environ["PROFILE"]],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return _ORIGINAL_RUN_PHASES(dep, workload, opts, net)


def _after_throughput(dep: harness.Deployment, *_: Any) -> None:
    """In place of the latency phase: the snapshot after the throughput phase."""
    time.sleep(1)  # the last commits
    _state["after"] = _snapshot(dep)
    with dep.runtime.session_factory() as session:
        _state["events"] = session.execute(text("SELECT count(*) FROM events")).scalar_one()
    if "spy" in _state:
        _state["spy"].send_signal(signal.SIGINT)
        _state["spy"].wait()
    _state["wal"] = _wal(_state["before"], _state["after"])
    _drop_slot()


def _drop_slot() -> None:
    if _state.pop("slot", None):
        with _admin.connect() as conn:
            conn.execute(text(f"SELECT pg_drop_replication_slot('{SLOT}')"))


def _wal(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any] | None:
    if not _state.get("slot") or not os.access(WAL_DIR, os.R_OK):
        return None
    with tempfile.TemporaryFile("w+") as out:
        subprocess.run([WALDUMP, "-p", WAL_DIR, "-s", before["lsn"], "-e", after["lsn"]],  # noqa: S603
                       stdout=out, stderr=subprocess.DEVNULL, check=False)
        out.seek(0)
        mine = f"/{before['oid']}/"
        kinds: dict[str, list[int]] = {}
        for line in out:
            if not line.startswith("rmgr:") or (mine not in line and "COMMIT" not in line):
                continue
            size = int(line.split("len (rec/tot):")[1].split(",")[0].split("/")[1])
            kind = line.split()[1] + " " + line.split("desc:")[1].split()[0]
            counts = kinds.setdefault(kind, [0, 0])
            counts[0] += 1
            counts[1] += size
    return kinds


def summary(n: int) -> dict[str, Any]:
    idle, before, after = _state["idle"], _state["before"], _state["after"]
    idle_seconds, phase_seconds = before["t"] - idle["t"], after["t"] - before["t"]
    out: dict[str, Any] = {"reports": n, "phase_seconds": round(phase_seconds, 1)}
    total = busy = 0.0
    for group in before["cpu"]:
        spent = _seconds(before, after, group)
        idle_rate = 0.0 if group == "harness" else _seconds(idle, before, group) / idle_seconds
        out[f"cpu_ms_{group}"] = round(spent * 1000 / n, 3)
        out[f"idle_ms_per_s_{group}"] = round(idle_rate * 1000, 1)
        out[f"busy_ms_{group}"] = round((spent - idle_rate * phase_seconds) * 1000 / n, 3)
        total += spent
        busy += spent - idle_rate * phase_seconds
    out["cpu_ms_all"] = round(total * 1000 / n, 3)
    out["busy_ms_all"] = round(busy * 1000 / n, 3)
    out["events_per_report"] = round(_state["events"] / n, 2)
    out["rows_per_report"] = {  # seq read, index fetched, inserted, updated, HOT updated
        table: [round((a - b) / n, 2) for a, b in zip(
            values, before["tables"].get(table, [0] * len(values)), strict=True)]
        for table, values in after["tables"].items()
        if values != before["tables"].get(table)}
    kinds = _state.get("wal")
    if kinds is not None:
        out["wal_records_per_report"] = round(sum(c for c, _ in kinds.values()) / n, 1)
        out["wal_bytes_per_report"] = round(sum(b for _, b in kinds.values()) / n)
        out["wal_by_kind"] = {k: [round(c / n, 2), round(b / n)] for k, (c, b) in sorted(
            kinds.items(), key=lambda item: -item[1][1])[:12]}
    return out


_ORIGINAL_REDIS = services.redis_server
_ORIGINAL_RUN_PHASES = harness.run_phases


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    harness.services.redis_server = _redis_server  # type: ignore[assignment]
    harness.run_phases = _run_phases  # type: ignore[assignment]
    harness.run_latency = _after_throughput  # type: ignore[assignment]
    opts = harness.Options.from_env(stages=False, embedded=False, recovery=False)
    try:
        result = harness.run(opts)
    finally:
        _drop_slot()
    out = summary(opts.n)
    out["reports_per_second"] = result["scaled_out"]["throughput"]["reports_per_second"]
    out["accounted"] = result["accounted"]
    print(json.dumps(out))
    return 0 if result["accounted"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
