"""`hotline notices` (pipeline.cli.notices): an operator lists unconfirmed notices and
resolves them (send again, or mark sent), in a separate process."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from pipeline.store.models import Notice
from tests.dispatch_support import add_notices, notice
from tests.stages.test_dispatch import events

ROOT = Path(__file__).resolve().parents[2]


def test_an_operator_lists_and_resolves_unconfirmed_notices_from_the_command_line(
    sqlite_runtime, tmp_path
):
    rt = sqlite_runtime
    (notice_id,) = add_notices(rt, 1, address=None, destination="rs-mup-vtk")
    (other_id,) = add_notices(rt, 1, address=None, destination="rs-mup-vtk")
    with rt.session_factory.begin() as session:
        for n in session.execute(select(Notice)).scalars():
            n.state, n.last_error = "unconfirmed", "check with the receiver"
    config = tmp_path / "cli-config.yaml"
    config.write_text(f"app:\n  data_dir: {rt.settings.data_path}\n"
                      f"database:\n  url: {rt.settings.database.url}\n")
    env = {"HOTLINE_CONFIG": str(config), "PATH": os.environ["PATH"],
           "PYTHONPATH": str(ROOT)}

    def hotline(*args):
        return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    assert "UNCONFIRMED notices: 2" in hotline("status").stdout
    listed = hotline("notices", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [
        notice_id, other_id]
    refused = hotline("notices", "resolve", str(notice_id), "--send-again")
    assert refused.returncode != 0 and "--reason" in refused.stderr
    again = hotline("notices", "resolve", str(notice_id), "--send-again", "--by", "ana",
                    "--reason", "the police unit has no trace of it")
    assert again.returncode == 0, again.stderr
    sent = hotline("notices", "resolve", str(other_id), "--sent", "--by", "ana",
                   "--reason", "the unit confirmed it", "--sent-at", "2026-01-05T10:00:00")
    assert sent.returncode == 0, sent.stderr
    assert "marked sent" in sent.stdout
    twice = hotline("notices", "resolve", str(other_id), "--sent", "--reason", "x")
    assert twice.returncode == 1 and "is sent, not unconfirmed" in twice.stderr
    first, other = notice(rt, notice_id), notice(rt, other_id)
    assert first.state == "sent"  # sent again through the embedded outbox
    assert [p.name for p in (rt.settings.data_path / "outbox").iterdir()] == [
        f"notice-{notice_id}-{first.token}.txt"]
    assert (other.state, other.sent_at.replace(tzinfo=dt.UTC)) == (
        "sent", dt.datetime(2026, 1, 5, 10, tzinfo=dt.UTC))
    assert "No notices in state unconfirmed." in hotline("notices", "list").stdout
    actors = [(e.actor, e.data["notice"]) for e in events(rt, "notice_send_again")
              + events(rt, "notice_confirmed_sent")]
    assert actors == [("operator:ana", notice_id), ("operator:ana", other_id)]
