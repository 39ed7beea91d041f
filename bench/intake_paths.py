"""The intake paths a hotline really uses, each against its own scaled-out deployment
(fresh PostgreSQL database, Redis namespace, two `hotline worker` processes and a
`hotline scheduler`, from `bench.harness.scaled_out`):

- `import`: the workload written to a CSV file (a `url` header and the workload's
  other fields), then `hotline import FILE` run as an OS process, the real CLI, beside
  the deployment's web app (`hotline serve`, started before the clock starts, as in a
  scaled-out hotline): the command streams the file to it (`pipeline.launcher`) and
  `import_path` says whether it did; `BENCH_IMPORT_BESIDE_WEB=0` runs it without a web
  app (the command imports the file itself, its own start-up included);
- `api`: the web app (`hotline serve`, uvicorn) as an OS process, the workload POSTed
  to /api/v1/reports in batches of 1,000 (`intake.max_batch`) one after the other,
  with an API token.

Each prints reports per second from the start of the import (the CLI launched) or the
first request to the last report settled, the time to the first report stored and to
the first report settled from that same start, the CPU milliseconds per report of
every process over the phase (the intake process, the workers, the scheduler, the
PostgreSQL backends of the phase's database, Redis, the loopback DNS/RDAP servers),
audit events and write-ahead-log bytes per report, and the accounting
(`bench.measure.accounting`).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select

from bench import measure, services
from pipeline.store.models import Report

log = logging.getLogger("bench")

PATHS = ("import", "api")
CSV_COLUMNS = ("url", "channel", "claimed_category", "description", "urgent")


def write_csv(reports: Sequence[dict[str, Any]], path: Path) -> Path:
    """The workload as `hotline import` reads it: a header naming `url` first."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for report in reports:
            writer.writerow(["" if report.get(c) is None else
                             ("yes" if report[c] is True else "" if report[c] is False
                              else report[c]) for c in CSV_COLUMNS])
    return path


def _harness_backends(dep: Any) -> set[int]:
    """The PostgreSQL backends of the harness's own connections (its progress polls are
    not the pipeline's work): every connection its engine opens says its pid."""
    pids: set[int] = set()

    def remember(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT pg_backend_pid()")
        pids.add(int(cursor.fetchone()[0]))
        cursor.close()

    event.listen(dep.runtime.engine, "connect", remember)
    dep.runtime.engine.dispose()  # connections opened before now reconnect, and say it
    return pids


def _api_token(dep: Any) -> str:
    from pipeline.app.users import add_token, add_user

    rt = dep.runtime
    with rt.session_factory.begin() as session:
        user, _ = add_user(session, "bench-intake", "analyst", at=rt.clock.now())
        token, _ = add_token(session, scope="analyst", label="bench-intake",
                             user_name=user.name, at=rt.clock.now())
    return token


def _wait_for_http(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the web app exited at start ({process.returncode})")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout} s")
        time.sleep(0.1)


def run(path: str, dep: Any, reports: Sequence[dict[str, Any]], tmp: Path) -> dict[str, Any]:
    """One intake path over `reports` on the fresh deployment `dep`; its figures."""
    rt = dep.runtime
    excluded = _harness_backends(dep)
    web: subprocess.Popen[bytes] | None = None
    token = base = None
    beside_web = path == "api" or os.environ.get("BENCH_IMPORT_BESIDE_WEB", "1") != "0"
    if path == "api":
        token = _api_token(dep)
    if beside_web:
        port = services.free_port()
        base = f"http://127.0.0.1:{port}"
        log_file = (tmp / "web-app.log").open("ab")
        web = subprocess.Popen(  # noqa: S603 - the hotline CLI, fixed arguments
            [*services.hotline_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=services.clean_env(dep.config), cwd=services.ROOT, stdout=log_file,
            stderr=subprocess.STDOUT)
        log_file.close()
        _wait_for_http(f"{base}/healthz", web)
    if path == "import":
        csv_file = write_csv(reports, tmp / "bench-import.csv")
    intake_pids: list[int] = [web.pid] if web else []

    def groups() -> dict[str, list[int]]:
        with rt.session_factory() as session:
            backends = measure.postgres_backend_pids(session, excluded)
        return {"intake": intake_pids, "workers": dep.measured_pids(),
                "postgresql": backends, **dep.other_pids}

    client = None
    if path == "api":
        import httpx

        assert base and token
        # Made before the clock starts: a client's construction (its TLS context, even
        # for http) took 50-100 ms here, the harness's own time, which the first report
        # was charged with until 2026-12-07.
        client = httpx.Client(base_url=base, timeout=120,
                              headers={"Authorization": f"Bearer {token}"})
    with rt.session_factory() as session:
        floor = measure.max_report_id(session)
        events_before = measure.audit_event_count(session)
        wal_before = measure.wal_position(session)
    sampler = measure.CpuSampler(groups).start()
    first = measure.FirstVisible(rt.session_factory, floor)
    log.info("%s: %d reports through %s.", dep.name, len(reports),
             "`hotline import`" if path == "import" else "the HTTP API")
    started = datetime.now(UTC)
    first.start()
    t0 = time.monotonic()
    problems: list[str] = []
    command_cpu = 0.0  # the import command's, exact (os.wait4)
    import_path = None
    if path == "import":
        log_path = tmp / "import.log"
        with log_path.open("wb") as handle:
            child = subprocess.Popen(  # noqa: S603 - the hotline CLI, fixed arguments
                [*services.hotline_command(), "import", str(csv_file), "--source", "bench"],
                env=services.clean_env(dep.config), cwd=services.ROOT, stdout=handle,
                stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(child.pid, 0)
            child.returncode = os.waitstatus_to_exitcode(status)
        command_cpu = usage.ru_utime + usage.ru_stime
        said = log_path.read_text()
        import_path = ("handed to the running web app (hotline serve)"
                       if "Handed to the running hotline" in said
                       else "imported by the command itself")
        if child.returncode != 0:
            problems.append(f"hotline import exited {child.returncode}: {said[-2000:]}")
    else:
        assert client is not None
        size = rt.settings.intake.max_batch
        with client:
            for start in range(0, len(reports), size):
                body = json.dumps({"reports": list(reports[start:start + size])})
                answer = client.post("/api/v1/reports", content=body,
                                     headers={"Content-Type": "application/json"})
                if answer.status_code != 201:
                    problems.append(f"batch at {start}: {answer.status_code} {answer.text[:300]}")
    intake_seconds = time.monotonic() - t0
    settled, counts = measure.wait_until_settled(rt.session_factory, len(reports),
                                                 min_report_id=floor)
    cpu = sampler.stop()
    first_seen_stored, first_seen_settled = first.stop()
    if path == "import":  # the web app's, sampled, and the command's own
        cpu["intake"] = cpu.get("intake", 0.0) + command_cpu
    with rt.session_factory() as session:
        finished = measure.finish_time(session, floor)
        times = measure.settle_times(session, floor)
        first_stored = session.execute(
            select(func.min(Report.received_at)).where(Report.id > floor)).scalar_one()
        events = measure.audit_event_count(session) - events_before
        wal_after = measure.wal_position(session)
        books = measure.accounting(session, len(reports), floor)
    if web is not None:
        web.terminate()
        try:
            web.wait(20)
        except subprocess.TimeoutExpired:
            web.kill()
    seconds = (finished - started).total_seconds() if finished else None

    def ms_since_start(at: datetime | None) -> float | None:
        return round((at - started).total_seconds() * 1000, 1) if at else None

    out: dict[str, Any] = {
        "intake": ("hotline import (CSV, OS process" + (", beside hotline serve)"
                                                         if beside_web else ")"))
        if path == "import"
        else f"HTTP API (hotline serve, uvicorn; batches of {rt.settings.intake.max_batch})",
        **({"import_path": import_path} if path == "import" else {}),
        "reports": len(reports),
        "settled": settled,
        "intake_seconds": round(intake_seconds, 2),
        "reports_per_second": round(len(reports) / seconds, 1) if seconds and settled else None,
        "seconds_to_settled": round(seconds, 2) if seconds else None,
        "first_report_stored_ms": ms_since_start(first_seen_stored),
        "first_report_settled_ms": ms_since_start(first_seen_settled),
        "first_report_times_carried_ms": [ms_since_start(first_stored),
                                          ms_since_start(times[0] if times else None)],
        "cpu_ms_per_report": measure.cpu_ms_per_report(cpu, len(reports)),
        "audit_events_per_report": round(events / len(reports), 2) if reports else None,
        "wal_bytes_per_report": round((wal_after[0] - wal_before[0]) / len(reports))
        if wal_after and wal_before else None,
        "wal_records_per_report": round((wal_after[1] - wal_before[1]) / len(reports), 1)
        if wal_after and wal_before else None,
        "accounting": books,
        "notes": [
            "times from the start of the import (the CLI launched) or the first request",
            "first report stored and settled: when a reader first saw them (polled every "
            "2 ms), not the times their rows carry (first_report_times_carried_ms: the "
            "clocks of their transactions, taken when each began)",
            "intake CPU: the web app's (sampled) and the import command's (exact)",
            "write-ahead log from pg_stat_wal: the whole server's, other clients included",
            "PostgreSQL: the backends of this database (not the harness's own polls, "
            "not the server's background writers)",
        ],
    }
    if problems:
        out["problems"] = problems
        out["accounting"]["ok"] = False
    if not settled:
        out["stalled_at"] = counts
    return out
