"""`hotline run` starts the LMTP listener when `mail.lmtp_enabled`; `hotline mail
look-at` lists what waits for a person (separate processes, as an operator runs them)."""

from __future__ import annotations

import json
import signal
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.cli.test_cli import env, hotline  # noqa: F401 - the fixture and the runner

CORPUS = Path(__file__).resolve().parents[1] / "data" / "mail"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_hotline_run_takes_mail_over_lmtp_when_configured(env, tmp_path):  # noqa: F811
    lmtp_port, web_port = _free_port(), _free_port()
    env = {**env, "HOTLINE_WEB__PORT": str(web_port), "HOTLINE_MAIL__LMTP_ENABLED": "true",
           "HOTLINE_MAIL__LMTP_PORT": str(lmtp_port)}
    process = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "run"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                client = smtplib.LMTP("127.0.0.1", lmtp_port)
                break
            except OSError:
                assert process.poll() is None, process.stdout.read()
                assert time.monotonic() < deadline, "the LMTP listener did not start"
                time.sleep(0.2)
        with client:
            for name in ("16-list-with-duplicates.eml", "21-no-url-question.eml"):
                assert client.sendmail("x@example.org", ["prijava@hotline.example"],
                                       (CORPUS / name).read_bytes()) == {}
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert f"mailbox (LMTP): 127.0.0.1:{lmtp_port}" in output
    engine = create_engine(f"sqlite:///{tmp_path}/var/h.db")
    with engine.connect() as connection:
        channels = connection.execute(text("SELECT channel FROM reports")).scalars().all()
    engine.dispose()
    assert channels == ["email"] * 4
    listed = hotline(env, "mail", "look-at", "--json").stdout.splitlines()
    assert [json.loads(line)["subject"] for line in listed] == ["Pitanje"]
