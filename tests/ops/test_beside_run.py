"""`hotline submit`, `import`, `status` and `wait` beside a running `hotline run`
: the reports are handed to the running process, which queues and works
them; status shows its queues and circuit breakers; `wait --idle` returns once the
automatic stages are empty. Real processes on loopback ports, with loopback DNS and
RDAP servers standing in for the internet."""

from __future__ import annotations

import json

from pipeline.app.runtime import build_runtime
from pipeline.core.clock import SystemClock
from pipeline.core.config import load_settings
from pipeline.core.messaging import RecordingEnqueuer
from pipeline.stages.intake import accept_reports
from pipeline.store.migrate import upgrade
from schemas.intake import ReportIn
from tests.ops import fixtures as running
from tests.ops.support import hotline, operator_env

# A `hotline run` beside loopback DNS and RDAP (tests/ops/fixtures.py).
internet, system = running.internet, running.system


def test_submit_and_import_hand_reports_to_the_running_system(system, tmp_path):
    env, run = system
    submitted = hotline(env, "submit", "http://h0.example.com/a", "--category", "csam",
                        timeout=60)
    assert "Handed to the running hotline" in submitted.stderr
    assert json.loads(submitted.stdout)["reference"].startswith("R-")
    csv = tmp_path / "five.csv"
    csv.write_text("url,claimed_category\n" + "".join(
        f"http://h{i}.example.com/x,csam\n" for i in range(1, 6)))
    imported = hotline(env, "import", str(csv), timeout=60)
    assert "Imported 5 reports" in imported.stdout
    assert "5 reports queued there" in imported.stderr

    waited = hotline(env, "wait", "--idle", "--timeout", "60", timeout=90)
    assert waited.returncode == 0, waited.stderr
    status = json.loads(hotline(env, "status", "--json").stdout)
    assert status["running"]["pid"] == run.process.pid
    assert status["idle"] is True
    assert status["cases_by_state"] == {"awaiting_assessment": 6}
    assert set(status["queues"]) >= {"normalise", "trace"}  # the running process's
    assert all(s["waiting"] == 0 for s in status["stages"].values())
    assert status["circuits"] and all(c["state"] == "closed" for c in status["circuits"])
    assert status["dead_letters"] == 0 and status["unconfirmed_notices"] == 0
    text = hotline(env, "status").stdout
    assert f"pid {run.process.pid}" in text and "[idle]" in text
    assert "registries: all answering" in text


def test_the_internal_endpoints_need_the_run_file_s_key(system):
    import httpx

    _, run = system
    assert httpx.get(f"{run.base}/internal/v1/status").status_code == 403
    refused = httpx.post(f"{run.base}/internal/v1/enqueue", json={"stage": "normalise",
                         "ids": [1]}, headers={"X-Hotline-Run-Key": "guess"})
    assert refused.status_code == 403


def test_wait_idle_times_out_naming_what_is_left(tmp_path):
    env = operator_env(tmp_path)
    hotline(env, "migrate")
    settings = load_settings_from(env)
    upgrade(settings.database.url)
    runtime = build_runtime(settings, clock=SystemClock())
    try:  # stored, never queued (as if the message were lost)
        accept_reports(runtime.session_factory, [ReportIn(url="http://a.example/")],
                       clock=runtime.clock, limits=settings.intake,
                       enqueuer=RecordingEnqueuer())
    finally:
        runtime.close()
    waited = hotline(env, "wait", "--idle", "--timeout", "0.5", check=False)
    assert waited.returncode == 1
    assert "not idle after 0.5 s: normalise 1" in waited.stderr
    status = json.loads(hotline(env, "status", "--json", check=False).stdout)
    assert status["running"] is None and status["idle"] is False
    assert status["stages"]["normalise"]["waiting"] == 1


def load_settings_from(env):
    import os

    saved = os.environ.get("HOTLINE_CONFIG")
    os.environ["HOTLINE_CONFIG"] = env["HOTLINE_CONFIG"]
    try:
        return load_settings()
    finally:
        if saved is not None:
            os.environ["HOTLINE_CONFIG"] = saved
