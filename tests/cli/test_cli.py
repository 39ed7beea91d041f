"""The `hotline` command as an operator uses it, in a separate process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(f"app:\n  data_dir: {tmp_path}/var\n"
                      f"database:\n  url: sqlite:///{tmp_path}/var/h.db\n")
    return {"HOTLINE_CONFIG": str(config), "PATH": os.environ["PATH"],
            "PYTHONPATH": str(ROOT)}


def hotline(env, *args, check=True):
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], env=env,
                            capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"hotline {' '.join(args)} failed: {result.stderr}")
    return result


def test_migrate_submit_and_audit_verify_work_from_the_command_line(env):
    assert "latest schema" in hotline(env, "migrate").stdout
    out = hotline(env, "submit", "http://a.example/x", "http://a.example/x", "mailto:x@y",
                  "--category", "csam").stdout
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 3 and all(line["reference"].startswith("R-") for line in lines)
    assert "Audit trail intact." in hotline(env, "audit", "verify").stdout
    assert "No dead letters." in hotline(env, "deadletters").stdout


def test_submit_refuses_a_bad_category_with_a_clear_message(env):
    hotline(env, "migrate")
    result = hotline(env, "submit", "http://a.example/", "--category", "spam", check=False)
    assert result.returncode == 1
    assert "hotline: Choose “--category” from the options offered." in result.stderr
    assert "Error" not in result.stderr and "claimed_category" not in result.stderr


def test_import_names_bad_lines_and_exits_non_zero(env, tmp_path):
    hotline(env, "migrate")
    path = tmp_path / "r.jsonl"
    path.write_text('{"url": "http://a.example/"}\n{"url": 3}\n')
    result = hotline(env, "import", str(path), check=False)
    assert result.returncode == 1
    assert f"{path}:2: url" in result.stderr
    assert "Imported 1 reports" in result.stdout


def test_audit_verify_names_a_tampered_event(env, tmp_path):
    import sqlite3

    hotline(env, "migrate")
    hotline(env, "submit", "http://a.example/")
    db = sqlite3.connect(tmp_path / "var" / "h.db")
    event_id = db.execute("SELECT id FROM events ORDER BY id LIMIT 1").fetchone()[0]
    db.execute("UPDATE events SET actor = 'mallory' WHERE id = ?", (event_id,))
    db.commit()
    db.close()
    result = hotline(env, "audit", "verify", check=False)
    assert result.returncode == 1
    assert f"TAMPERED event {event_id}" in result.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_hotline_run_starts_the_whole_system_in_one_process(env):
    port = _free_port()
    env = {**env, "HOTLINE_WEB__PORT": str(port)}
    process = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "run"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.post(f"{base}/api/v1/reports",
                                      json={"url": "http://a.example/"}, timeout=5)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stdout.read()
                assert time.monotonic() < deadline, "hotline run did not start"
                time.sleep(0.2)
        assert response.status_code == 201
        ref = response.json()["reports"][0]["reference"]
        while True:
            status = httpx.get(f"{base}/api/v1/reports/{ref}").json()["status"]
            if status == "in_progress":
                break
            assert time.monotonic() < deadline, f"report stuck in {status}"
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}/" in output


def test_config_check_prints_urls_without_their_passwords(env):
    env = {**env, "HOTLINE_DATABASE__URL": "postgresql://hotline:s3cret-pw@db.example/h",
           "HOTLINE_BROKER__URL": "redis://:other-s3cret@redis.example:6379/0"}
    out = hotline(env, "config", "check").stdout
    assert "s3cret" not in out
    assert "db.example" in out and "redis.example" in out
