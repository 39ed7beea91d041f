"""Running `hotline` as an operator does: commands and a `hotline run` in separate
processes on a fresh database in a temporary folder, on loopback ports."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def operator_env(tmp_path: Path, extra_yaml: str = "", **env: str) -> dict[str, str]:
    config = tmp_path / "config.yaml"
    config.write_text(f"app:\n  data_dir: {tmp_path}/var\n"
                      f"database:\n  url: sqlite:///{tmp_path}/var/h.db\n" + extra_yaml)
    return {"HOTLINE_CONFIG": str(config), "PATH": os.environ["PATH"],
            "PYTHONPATH": str(ROOT), **env}


def hotline(env: dict[str, str], *args: str, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], env=env,
                            capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if check and result.returncode != 0:
        raise AssertionError(f"hotline {' '.join(args)} failed: {result.stderr}")
    return result


class Running:
    """A `hotline run` subprocess whose output lines are collected as they come."""

    def __init__(self, env: dict[str, str], port: int, command: list[str] | None = None):
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [*(command or [sys.executable, "-m", "pipeline.cli"]), "run"],
            env={**env, "HOTLINE_WEB__PORT": str(port)}, cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 60) -> list[str]:
        """The output up to the first line containing `text`."""
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.seen):
            left = deadline - time.monotonic()
            assert left > 0 and self.process.poll() is None, "\n".join(self.seen)
            try:
                self.seen.append(self.lines.get(timeout=min(left, 1.0)))
            except queue.Empty:
                continue
        return self.seen

    def wait_until_serving(self, timeout: float = 60) -> None:
        import httpx

        self.wait_for("Press Ctrl-C", timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                httpx.get(f"{self.base}/healthz", timeout=5)
                return
            except httpx.TransportError:
                assert self.process.poll() is None, "\n".join(self.seen)
                assert time.monotonic() < deadline, "hotline run did not start"
                time.sleep(0.2)

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "\n".join(self.seen)
