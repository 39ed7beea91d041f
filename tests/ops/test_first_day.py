"""The operator's first day: the first login from a fresh database in one
step, and secrets printed alone on standard output."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from pipeline.store.models import Notice
from tests.factories import make_case
from tests.loopback import free_port
from tests.ops.support import ROOT, Running, hotline, operator_env


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the login page has no CSRF field"
    return match.group(1)


def test_the_first_start_creates_an_admin_whose_printed_password_logs_in(tmp_path):
    env = operator_env(tmp_path)
    # The venv's console script, as `make run` starts it.
    script = Path(sys.executable).parent / "hotline"
    run = Running(env, free_port(), [str(script)] if script.exists() else None)
    try:
        run.wait_until_serving()
        output = "\n".join(run.seen)
        name = re.search(r"user name:\s+(\S+)", output)
        password = re.search(r"one-time password:\s+(\S+)", output)
        assert name and password, output
        assert "/console/login" in output
        assert "--help" in output  # how to reach the other commands
        if script.exists():
            assert f"{os.path.relpath(script, ROOT)} --help" in output
        with httpx.Client(base_url=run.base) as client:
            form = client.get("/console/login")
            wrong = client.post("/console/login", data={
                "name": name.group(1), "password": "not-it", "csrf": _csrf(form.text)})
            assert wrong.status_code == 401
            form = client.get("/console/login")
            response = client.post("/console/login", data={
                "name": name.group(1), "password": password.group(1),
                "csrf": _csrf(form.text)})
            assert response.status_code == 303, response.text
            # Logged in; the one-time password must now be replaced.
            page = client.get("/console/", follow_redirects=True)
            assert page.status_code == 200 and "password" in page.url.path
    finally:
        run.stop()
    # Never again once a user exists.
    again = Running(env, free_port())
    try:
        again.wait_until_serving()
    finally:
        output = again.stop()
    assert "one-time password" not in output and "FIRST START" not in output
    listing = hotline(env, "users", "list").stdout.splitlines()
    assert len(listing) == 1 and listing[0].startswith("admin\tadmin\tactive")


def test_a_token_can_be_captured_by_the_shell(tmp_path):
    env = operator_env(tmp_path)
    hotline(env, "migrate")
    command = subprocess.list2cmdline([sys.executable, "-m", "pipeline.cli"])
    script = (f"cd {ROOT} && TOKEN=$({command}"
              " tokens add partner-cz --scope partner) && printf '[%s]' \"$TOKEN\"")
    shell = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True,
                           timeout=120)
    assert shell.returncode == 0, shell.stderr
    assert re.fullmatch(r"\[hl_\S+\]", shell.stdout), shell.stdout
    assert "shown once" in shell.stderr  # the explanation went to standard error


def test_users_add_and_password_print_the_secret_alone(tmp_path):
    env = operator_env(tmp_path)
    hotline(env, "migrate")
    added = hotline(env, "users", "add", "ana", "--role", "analyst")
    assert re.fullmatch(r"\S+\n", added.stdout) and "One-time password" in added.stderr
    token = hotline(env, "users", "add", "sue", "--role", "supervisor", "--token")
    assert re.fullmatch(r"hl_\S+\n", token.stdout)
    reset = hotline(env, "users", "password", "ana")
    assert re.fullmatch(r"\S+\n", reset.stdout) and reset.stdout != added.stdout


@pytest.fixture
def notices_env(sqlite_runtime, tmp_path):
    rt = sqlite_runtime
    with rt.session_factory.begin() as session:
        case = make_case(session, at=rt.clock.now(), url="http://example.com/n",
                         state="notified")
        session.add(Notice(
            case_id=case.id, destination="hosting-provider", destination_kind="provider",
            kind="notice", round=1, channel="file", address=None, language="en",
            state="unconfirmed", token="tok-secret-1234", subject="s", body="b",
            payload={}, attempts=1, created_at=rt.clock.now(), sent_at=rt.clock.now()))
    config = tmp_path / "cli.yaml"
    config.write_text(f"app:\n  data_dir: {rt.settings.data_path}\n"
                      f"database:\n  url: {rt.settings.database.url}\n")
    return {**operator_env(tmp_path), "HOTLINE_CONFIG": str(config)}, rt


def test_notices_list_leaves_tokens_out_unless_asked(notices_env):
    import json

    env, rt = notices_env
    plain = hotline(env, "notices", "list")
    assert "tok-secret-1234" not in plain.stdout and "hosting-provider" in plain.stdout
    listed = json.loads(hotline(env, "notices", "list", "--json").stdout)
    assert "token" not in listed and listed["sent_at"] and listed["planned_at"]
    shown = hotline(env, "notices", "list", "--json", "--show-tokens").stdout
    assert json.loads(shown)["token"] == "tok-secret-1234"
    assert "tok-secret-1234" in hotline(env, "notices", "list", "--show-tokens").stdout
    with rt.session_factory() as session:
        assert session.execute(select(Notice.state)).scalar_one() == "unconfirmed"
