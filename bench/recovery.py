"""Recovery after crashes, with real processes on Redis and PostgreSQL.

Two measurements, used by the tests (tests/workers/test_recovery_kills.py, which
assert the bounds) and by `make bench` (which prints the times):

- `scheduler_takeover`: two `hotline scheduler` processes; the one holding the Redis
  lease is SIGKILLed; seconds until the standby holds it.
- `kill_dispatch`: `notices` notices to a slow loopback SMTP server (aiosmtpd), two
  `hotline worker` processes and two `hotline scheduler`s; workers are SIGKILLed, some at
  a random moment, some inside an SMTP transaction (the server waiting before its
  answer to RCPT, or to the final "."), and each is replaced as systemd would; once,
  the active scheduler is SIGKILLed with the worker (a standby takes over). Returns
  what arrived and how long after the last kill the dead workers' notices were back
  (`recovered_s`: every notice a killed worker held is released or resolved) and
  everything was delivered (`settled_s`).

Run alone: `python -m bench.recovery` (Redis at BENCH_REDIS or 127.0.0.1:6379,
PostgreSQL at BENCH_PG or 127.0.0.1:5432, user postgres).
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import functools
import hashlib
import json
import os
import random
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from pathlib import Path
from typing import Any

import redis
from aiosmtpd.controller import Controller
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from bench import services
from pipeline.app.runtime import build_runtime
from pipeline.core.clock import SystemClock
from pipeline.core.config import Settings
from pipeline.core.messaging import DISPATCH
from pipeline.core.process import PROCESS_ID_LENGTH
from pipeline.stages.intake import new_reference
from pipeline.store.audit import verify
from pipeline.store.migrate import upgrade
from pipeline.store.models import Case, Event, Notice
from pipeline.store.ops_models import Heartbeat
from workers.broker import install

DEAD_STATES = ("sending", "handing_over")
FINAL_STATES = ("sent", "unconfirmed")


# ------------------------------------------------------------------ the SMTP server


class SlowSmtp:
    """aiosmtpd on loopback, plain SMTP (no TLS, no login): waits `rcpt_delay` before
    answering RCPT and `data_delay` before answering the final "."; `busy` maps the
    client's port to "rcpt" or "data" while it waits. A message counts as received
    (`ids`, by Message-ID) when its DATA handler ends, answered or not: a client that
    died meanwhile may have handed it over."""

    def __init__(self, rcpt_delay: float, data_delay: float):

        self.ids: list[str] = []
        self.busy: dict[int, str] = {}
        self.lock = threading.Lock()
        self.port = services.free_port()
        server = self

        class Handler:
            async def handle_RCPT(self, _server: Any, session: Any, envelope: Any,  # noqa: N802
                                  address: str, _options: Any) -> str:
                server._wait(session.peer[1], "rcpt")
                await asyncio.sleep(rcpt_delay)
                server._done(session.peer[1])
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, _server: Any, session: Any,  # noqa: N802
                                  envelope: Any) -> str:
                server._wait(session.peer[1], "data")
                await asyncio.sleep(data_delay)
                message = email.message_from_bytes(envelope.content, policy=policy.default)
                with server.lock:
                    server.ids.append(str(message["Message-ID"]))
                server._done(session.peer[1])
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def _wait(self, port: int, step: str) -> None:
        with self.lock:
            self.busy[port] = step

    def _done(self, port: int) -> None:
        with self.lock:
            self.busy.pop(port, None)

    def waiting(self, step: str) -> list[int]:
        with self.lock:
            return [port for port, at in self.busy.items() if at == step]

    def received(self) -> Counter[str]:
        with self.lock:
            return Counter(self.ids)

    def stop(self) -> None:
        self.controller.stop()


def pid_of_client(port: int, pids: list[int]) -> int | None:
    """Which of `pids` owns the loopback TCP socket with local port `port` (/proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                        return pid
    return None


# ------------------------------------------------------------------------- helpers


def wait_for(predicate: Callable[[], bool], what: str, limit: float = 60.0,
             poll: float = 0.02) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(poll)


def lease_holder_pid(client: Any, key: str) -> int | None:
    value = client.get(key)
    if not value:
        return None
    parts = value.decode().split(":")
    return int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else None


# ---------------------------------------------------------- scheduler takeover


def scheduler_takeover(config: Path, redis_url: str, namespace: str, logs: Path,
                       limit: float = 60.0) -> float:
    """Seconds from the SIGKILL of the scheduler holding the lease until the standby
    holds it."""

    client = redis.Redis.from_url(redis_url)
    key = f"{namespace}:scheduler:lease"
    first = services.start_process(config, logs / "scheduler-active.log", "scheduler")
    second: services.WorkerProcess | None = None
    try:
        wait_for(lambda: lease_holder_pid(client, key) == first.pid or not first.alive(),
                 "the first scheduler to take the lease", limit)
        assert first.alive(), first.log.read_text()[-3000:]
        second = services.start_process(config, logs / "scheduler-standby.log", "scheduler")
        standby = second
        wait_for(lambda: "standby" in standby.log.read_text() or not standby.alive(),
                 "the second scheduler to wait as a standby", limit)
        assert second.alive(), second.log.read_text()[-3000:]
        assert lease_holder_pid(client, key) == first.pid
        first.kill()
        killed = time.monotonic()
        wait_for(lambda: lease_holder_pid(client, key) == standby.pid,
                 "the standby to take over", limit, poll=0.01)
        return time.monotonic() - killed
    finally:
        first.stop()
        if second is not None:
            second.stop()
        client.close()


# ----------------------------------------------------------------- killed workers


@dataclass
class KillRun:
    notices: int
    kills: list[dict[str, Any]] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0  # messages that arrived more than once
    lost: int = 0  # notices sent that never arrived, or not settled at all
    unconfirmed: int = 0
    unconfirmed_arrived: int = 0
    max_attempts: int = 0
    crashes: int = 0
    claims_lost_audited: int = 0
    # The longest wait, after the kill of a worker alone, for its notices to come back.
    recovered_s: float | None = None
    settled_s: float | None = None
    audit_problems: list[str] = field(default_factory=list)
    held_at_death: int = 0  # notices the killed workers held (claimed) when they died
    bound_s: float = 0.0  # recovery.dead_after_seconds + recovery.check_interval_seconds

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def kill_values(tmp: Path, redis_url: str, namespace: str, db_url: str, smtp_port: int,
                *, shipped: bool = False) -> dict[str, Any]:
    """The configuration of a run: recovery settings shortened for the tests, or
    (`shipped`) those config.yaml ships, for the figures of `make bench`."""

    key_file = tmp / "encryption.key"
    key_file.write_text(Fernet.generate_key().decode())
    values: dict[str, Any] = {
        "app": {"mode": "production", "data_dir": str(tmp / "var")},
        "database": {"url": db_url},
        "broker": {"url": redis_url, "namespace": namespace, "heartbeat_timeout_ms": 2_000,
                   "maintenance_per_million": 100_000},
        "redis": {"url": redis_url, "namespace": namespace},
        "worker": {"batch_size": 4, "threads": 2, "min_backoff_ms": 100,
                   "max_backoff_ms": 1_000},
        # The reconciler would send planned notices again after stage_deadline_seconds:
        # kept long here, so what comes back early is the recovery's doing.
        "reconciler": {"interval_seconds": 1, "stage_deadline_seconds": 60},
        "scheduler": {"lease_seconds": 2},
        "recovery": {"heartbeat_seconds": 0.5, "dead_after_seconds": 2,
                     "check_interval_seconds": 0.5},
        "dispatch": {"deliver": "live", "smtp_host": "127.0.0.1", "smtp_port": smtp_port,
                     "smtp_starttls": False, "sender_address": "notices@hotline.example.rs",
                     "smtp_timeout_seconds": 10,
                     # Far longer than the run: nothing comes back by its lease running out.
                     "lease_seconds": 600},
        "privacy": {"encryption_key_file": str(key_file)},
        "logging": {"level": "WARNING"},
    }
    if shipped:
        del values["scheduler"], values["recovery"]
        for key in ("heartbeat_timeout_ms", "maintenance_per_million"):
            del values["broker"][key]
    return values


def add_notices(session_factory: Any, count: int, at: datetime) -> list[int]:


    ids = []
    with session_factory.begin() as session:
        for i in range(count):
            url = f"http://example.com/recovery/{i}/{uuid.uuid4().hex}"
            key = hashlib.sha256(url.encode()).hexdigest()
            case = Case(ref=new_reference("C"), canonical_url=url, dedup_key=key,
                        open_key=key, host="example.com", received_at=at, state="notified",
                        state_changed_at=at, audit_seq=0)
            session.add(case)
            session.flush()
            notice = Notice(
                case_id=case.id, destination="hosting-provider", destination_kind="provider",
                kind="notice", round=1, channel="smtp", address=f"abuse{i}@host.example",
                language="en", state="planned", token=f"rec-{i}-{uuid.uuid4().hex}",
                subject=f"Notice {i}", body=f"Please remove case {case.ref}.\n",
                payload={"case_ref": case.ref, "url": url}, attempts=0, created_at=at,
                due_at=at)
            session.add(notice)
            session.flush()
            ids.append(notice.id)
    return ids


class Workers:
    """`hotline worker` processes; each known by its pid and its heartbeat row."""

    def __init__(self, config: Path, logs: Path, session_factory: Any):
        self.config, self.logs, self.session_factory = config, logs, session_factory
        self.running: list[services.WorkerProcess] = []
        self.starting: list[services.WorkerProcess] = []
        self.every: list[services.WorkerProcess] = []

    def process_id(self, pid: int) -> str | None:
        """The worker's process id (pipeline.core.process) from its heartbeat row."""

        with self.session_factory() as session:
            name = session.execute(select(Heartbeat.name).where(Heartbeat.pid == pid,
                                                                Heartbeat.name.startswith(
                                                                    "worker:"))
                                   ).scalar()
        return name.removeprefix("worker:") if name else None

    def start(self) -> services.WorkerProcess:
        """Start one (it counts as running once it beats: `refresh`)."""
        process = services.start_worker(self.config,
                                        self.logs / f"worker-{len(self.every) + 1}.log",
                                        threads=2)
        self.every.append(process)
        self.starting.append(process)
        return process

    def refresh(self) -> None:
        for process in list(self.starting):
            assert process.alive(), process.log.read_text()[-3000:]
            if self.process_id(process.pid) is not None:
                self.starting.remove(process)
                self.running.append(process)

    def wait_running(self, count: int) -> None:
        def enough() -> bool:
            self.refresh()
            return len(self.running) >= count

        wait_for(enough, f"{count} workers to beat", poll=0.1)

    def kill_all(self) -> None:
        """The run is over (or failed): no need for a graceful stop."""
        for process in self.every:
            process.kill()


def _arrived(server: SlowSmtp, count: int) -> bool:
    return sum(server.received().values()) >= count


def _released(session_factory: Any, holder: str | None) -> bool:
    return not held_by(session_factory, {holder} if holder else set())


def scheduler_beats(session_factory: Any) -> bool:

    with session_factory() as session:
        return session.get(Heartbeat, "scheduler") is not None


def held_by(session_factory: Any, holders: set[str]) -> set[int]:

    if not holders:
        return set()
    with session_factory() as session:
        return set(session.execute(
            select(Notice.id).where(
                Notice.state.in_(DEAD_STATES),
                func.substr(Notice.lease_owner, 1, PROCESS_ID_LENGTH).in_(sorted(holders)))
        ).scalars())


def states(session_factory: Any) -> dict[str, int]:

    with session_factory() as session:
        rows = session.execute(select(Notice.state, func.count()).group_by(Notice.state))
        return {state: count for state, count in rows}


def kill_dispatch(tmp: Path, redis_url: str, namespace: str, db_url: str, *,
                  notices: int = 48, kills: int = 3, seed: int = 24,
                  rcpt_delay: float = 0.12, data_delay: float = 0.08,
                  settle_limit: float = 60.0, shipped: bool = False,
                  scheduler_dies_at: int | None = 1) -> KillRun:
    """See the module docstring. Kills alternate: inside an SMTP transaction (before the
    final ".", then after it), then at a random moment. Two schedulers run (one a
    standby); at kill number `scheduler_dies_at` the active one is SIGKILLed with the
    worker, so the worker's notices wait for the standby's takeover too."""

    rng = random.Random(seed)
    server = SlowSmtp(rcpt_delay, data_delay)
    values = kill_values(tmp, redis_url, namespace, db_url, server.port, shipped=shipped)
    config = services.write_config(tmp / "recovery-config.yaml", values)
    upgrade(db_url)
    settings = Settings(**values)
    runtime = build_runtime(settings, clock=SystemClock())
    broker = install(runtime)
    run = KillRun(notices=notices, bound_s=settings.recovery.dead_after_seconds
                  + settings.recovery.check_interval_seconds)
    workers = Workers(config, tmp, runtime.session_factory)
    client = redis.Redis.from_url(redis_url)
    lease_key = f"{namespace}:scheduler:lease"
    takeover_s = settings.scheduler.lease_seconds * (1 + 1 / 5)
    schedulers = [services.start_process(config, tmp / f"scheduler-{n}.log", "scheduler")
                  for n in (1, 2)]
    try:
        ids = add_notices(runtime.session_factory, notices, runtime.clock.now())
        workers.start()
        workers.start()
        wait_for(lambda: scheduler_beats(runtime.session_factory)
                 or not all(s.alive() for s in schedulers), "the scheduler to run its jobs",
                 poll=0.1)
        for scheduler in schedulers:
            assert scheduler.alive(), scheduler.log.read_text()[-3000:]
        workers.wait_running(2)
        runtime.enqueuer.send(DISPATCH, ids)
        dead: set[str] = set()
        held_at_death: set[int] = set()
        last_kill = time.monotonic()
        for number in range(kills):
            workers.wait_running(1)
            # Spread the kills over the run: wait for a share of the notices to arrive.
            share = notices * (number + 1) // (kills + 2)
            wait_for(functools.partial(_arrived, server, share), f"{share} deliveries")
            how = ("smtp-rcpt", "smtp-data", "random")[number % 3]
            victim: services.WorkerProcess | None = None
            if how == "random":
                time.sleep(rng.uniform(0.0, 0.5))
                victim = rng.choice(workers.running)
            else:
                step = how.removeprefix("smtp-")
                pids = [w.pid for w in workers.running]
                deadline = time.monotonic() + 20
                while victim is None and time.monotonic() < deadline:
                    for port in server.waiting(step):
                        pid = pid_of_client(port, pids)
                        if pid is not None:
                            victim = next(w for w in workers.running if w.pid == pid)
                            break
                    else:
                        time.sleep(0.005)
                if victim is None:  # no transaction caught in that step: any worker
                    how, victim = "random", rng.choice(workers.running)
            holder = workers.process_id(victim.pid)
            victim.kill()
            last_kill = time.monotonic()
            bound = run.bound_s
            active = lease_holder_pid(client, lease_key)
            if number == scheduler_dies_at and active is not None:
                dying = next(s for s in schedulers if s.pid == active)
                dying.kill()
                schedulers.remove(dying)
                schedulers.append(services.start_process(
                    config, tmp / f"scheduler-{number + 3}.log", "scheduler"))
                bound += takeover_s
            workers.running.remove(victim)
            workers.start()  # a replacement, as systemd would start it
            held = held_by(runtime.session_factory, {holder}) if holder else set()
            if holder:
                dead.add(holder)
                held_at_death |= held
            # Until nothing the dead worker held is still claimed in its name.
            wait_for(functools.partial(_released, runtime.session_factory, holder),
                     "the killed worker's notices to come back", settle_limit)
            back = round(time.monotonic() - last_kill, 3)
            run.kills.append({"how": how, "pid": victim.pid, "held": len(held),
                              "back_s": back, "bound_s": bound,
                              "scheduler_killed": bound > run.bound_s})
            if held and bound == run.bound_s:
                run.recovered_s = max(run.recovered_s or 0.0, back)

        def settled() -> bool:
            return set(states(runtime.session_factory)) <= set(FINAL_STATES)

        with contextlib.suppress(TimeoutError):
            wait_for(settled, "every notice to be sent or unconfirmed", settle_limit, 0.1)
            run.settled_s = round(time.monotonic() - last_kill, 3)
        time.sleep(data_delay * 3)  # messages handed over by killed workers finish
    finally:
        workers.kill_all()
        for scheduler in schedulers:
            scheduler.kill()
        server.stop()
        client.close()
    run.states = states(runtime.session_factory)
    received = server.received()
    with runtime.session_factory() as session:
        rows = session.execute(select(Notice.token, Notice.state, Notice.attempts,
                                      Notice.crashes)).all()
        run.claims_lost_audited = session.execute(
            select(func.count()).select_from(Event)
            .where(Event.action == "notice_claim_lost")).scalar_one()
        run.audit_problems = [str(p) for p in verify(session)]
    ids_of = {f"<{token}@hotline.example.rs>": state for token, state, _, _ in rows}
    run.duplicates = sum(1 for count in received.values() if count > 1)
    run.lost = sum(1 for message_id, state in ids_of.items()
                   if state not in FINAL_STATES or (state == "sent" and not received[message_id]))
    run.lost += sum(1 for message_id in received if message_id not in ids_of)  # strangers
    run.unconfirmed = sum(1 for state in ids_of.values() if state == "unconfirmed")
    run.unconfirmed_arrived = sum(1 for message_id, state in ids_of.items()
                                  if state == "unconfirmed" and received[message_id])
    run.max_attempts = max((attempts for _, _, attempts, _ in rows), default=0)
    run.crashes = sum(crashes for _, _, _, crashes in rows)
    run.held_at_death = len(held_at_death)
    broker.close()
    runtime.close()
    return run


# --------------------------------------------------------------------------- bench


def run(redis_url: str, pg_url: str, tmp: Path) -> dict[str, Any]:
    """Both measurements with the shipped recovery settings, for `make bench`
    (`pg_url`: an empty database)."""

    namespace = f"hotline-bench-recovery-{uuid.uuid4().hex[:8]}"

    upgrade(pg_url)

    values = kill_values(tmp, redis_url, namespace, pg_url, services.free_port(),
                         shipped=True)
    config = services.write_config(tmp / "takeover-config.yaml", values)
    takeover = scheduler_takeover(config, redis_url, namespace, tmp)
    result = kill_dispatch(tmp, redis_url, namespace + "-k", pg_url, shipped=True).as_dict()
    return {
        "settings": "as config.yaml ships them",
        "scheduler_lease_s": Settings(**values).scheduler.lease_seconds,
        "scheduler_takeover_s": round(takeover, 3),
        "dead_worker_recovery_s": result["recovered_s"],
        "dead_worker_recovery_per_kill_s": [k["back_s"] for k in result["kills"]],
        "all_notices_settled_after_last_kill_s": result["settled_s"],
        "recovery_bound_s": result["bound_s"],
        "kill_run": {k: result[k] for k in ("notices", "kills", "states", "duplicates",
                                            "lost", "unconfirmed", "max_attempts",
                                            "crashes")},
    }


def main() -> int:
    redis_url = os.environ.get("BENCH_REDIS", services.SHARED_REDIS_URL)
    os.environ.setdefault("BENCH_PG", services.PG_ADMIN_URL)
    with tempfile.TemporaryDirectory(prefix="hotline-recovery-") as name, \
            services.fresh_pg_database("hotline_bench_recovery") as url:
        os.environ["HOTLINE_CONFIG"] = str(services.write_config(Path(name) / "empty.yaml",
                                                                 {}))
        figures = run(redis_url, url, Path(name))
    figures["at"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(json.dumps(figures, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

