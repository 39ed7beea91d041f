"""The servers and processes a benchmark run starts, and what it reads from them.

- a fresh PostgreSQL database per run (dropped afterwards),
- a private `redis-server` (AOF on, `noeviction`) when the binary is installed, so that
  `INFO commandstats` counts only this run; otherwise the shared Redis with a fresh
  namespace (then the command counts include other clients),
- `hotline worker` OS processes, with their CPU time and peak memory read from /proc.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PG_ADMIN_URL = os.environ.get(
    "BENCH_PG", os.environ.get("HOTLINE_TEST_PG",
                               "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
)
SHARED_REDIS_URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def fresh_pg_database(prefix: str = "hotline_bench") -> Iterator[str]:
    """A new, empty PostgreSQL database; its URL; dropped on exit."""
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        if os.environ.get("BENCH_KEEP_DB"):  # for a look at the rows afterwards
            print(f"kept database {name}", file=sys.stderr)
        else:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class RedisServer:
    url: str
    private: bool
    process: subprocess.Popen[bytes] | None = None


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[RedisServer]:
    """A private redis-server configured as docs/operators/deployment.md asks for production (AOF,
    noeviction), or the shared one when `BENCH_REDIS` is set or no binary exists."""
    binary = shutil.which("redis-server")
    if "BENCH_REDIS" in os.environ or binary is None:
        yield RedisServer(SHARED_REDIS_URL, private=False)
        return
    port = free_port()
    data = workdir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(  # noqa: S603 - redis-server, fixed arguments
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
         "--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy",
         "noeviction", "--save", "", "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_for_redis(url)
        yield RedisServer(url, private=True, process=process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_for_redis(url: str, timeout: float = 10) -> None:
    import redis

    deadline = time.monotonic() + timeout
    while True:
        try:
            redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def redis_command_calls(url: str) -> int:
    """Commands Redis has executed so far (sum over INFO commandstats)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    # Leave out the INFO/CONFIG calls this module makes itself.
    return sum(int(v["calls"]) for k, v in stats.items()
               if k not in ("cmdstat_info", "cmdstat_config|get", "cmdstat_ping"))


@dataclass
class ProcessStats:
    cpu_seconds: float
    peak_rss_bytes: int
    rss_bytes: int


def process_stats(pid: int) -> ProcessStats:
    """CPU seconds (user + system) and peak/current resident memory of a live process."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    peak = rss = 0
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) * 1024
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    return ProcessStats(cpu, peak, rss)


def own_cpu_seconds() -> float:
    usage = os.times()
    return usage.user + usage.system


def write_config(path: Path, values: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def clean_env(config_file: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child process: no stray HOTLINE_* overrides, our config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env["HOTLINE_CONFIG"] = str(config_file)
    env.update(extra or {})
    return env


def hotline_command() -> list[str]:
    script = Path(sys.executable).with_name("hotline")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from pipeline.launcher import main; main()"]


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stats(self) -> ProcessStats:
        return process_stats(self.pid)

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = 20) -> None:
        if not self.alive():
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


def start_process(config_file: Path, log: Path, *args: str,
                  extra_env: dict[str, str] | None = None) -> WorkerProcess:
    """`hotline ARGS...` as a child process with its output in `log`."""
    handle = log.open("ab")
    process = subprocess.Popen([*hotline_command(), *args],  # noqa: S603 - hotline CLI
                               env=clean_env(config_file, extra_env), cwd=ROOT,
                               stdout=handle, stderr=subprocess.STDOUT)
    handle.close()
    return WorkerProcess(process, log)


def start_worker(config_file: Path, log: Path, *, threads: int | None = None,
                 extra_env: dict[str, str] | None = None) -> WorkerProcess:
    args = ["worker", *(["--threads", str(threads)] if threads else [])]
    return start_process(config_file, log, *args, extra_env=extra_env)


def wait_for_consumers(redis_url: str, namespace: str, count: int, timeout: float = 60,
                       workers: list[WorkerProcess] | None = None) -> None:
    """Wait until `count` dramatiq workers have announced themselves (heartbeats)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            beating = {key for key in client.scan_iter(match=f"{namespace}:__heartbeats__*")}
            seen = sum(client.zcard(key) for key in beating)
            if seen >= count:
                return
            for worker in workers or []:
                if not worker.alive():
                    raise RuntimeError(f"worker exited at start: {worker.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {seen} of {count} workers started")
            time.sleep(0.1)
    finally:
        client.close()
