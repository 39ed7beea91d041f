"""`hotline users` and `hotline tokens` (pipeline.cli.users): the secret alone on
standard output, stored only hashed; unknown names and prefixes refused."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from pipeline.app import auth, users
from pipeline.app.runtime import build_runtime
from pipeline.cli import main
from pipeline.store.migrate import upgrade


@pytest.fixture
def runtime(settings_factory, monkeypatch):
    """A migrated SQLite database the commands are pointed at through the environment."""
    settings = settings_factory()
    upgrade(settings.database.url)
    monkeypatch.setenv("HOTLINE_DATABASE__URL", settings.database.url)
    monkeypatch.setenv("HOTLINE_APP__DATA_DIR", settings.app.data_dir)
    runtime = build_runtime(settings)
    yield runtime
    runtime.close()


def hotline(*args: str):
    return CliRunner().invoke(main, list(args))


def test_users_add_prints_only_the_one_time_password_on_standard_output(runtime):
    added = hotline("users", "add", "ana", "--role", "analyst")
    assert added.exit_code == 0, added.output
    password = added.stdout.strip()
    assert "Added analyst ana." in added.stderr and password not in added.stderr
    with runtime.session_factory() as session:
        ana = users.get_user(session, "ana")
        assert ana.must_change_password and ana.password_hash != password
        assert auth.verify_password(ana.password_hash, password)


def test_users_add_with_token_prints_a_token_acting_as_the_user(runtime):
    added = hotline("users", "add", "sue", "--role", "supervisor", "--token")
    assert added.exit_code == 0, added.output
    token = added.stdout.strip()
    with runtime.session_factory() as session:
        principal = auth.authenticate_token(session, token, at=runtime.clock.now())
    assert principal is not None and principal.role == "supervisor"


def test_users_add_refuses_an_unknown_role_and_a_taken_name(runtime):
    assert hotline("users", "add", "ana", "--role", "root").exit_code == 2
    assert hotline("users", "add", "ana", "--role", "analyst").exit_code == 0
    again = hotline("users", "add", "ana", "--role", "admin")
    assert again.exit_code == 1 and "exists already" in again.output


def test_users_list_password_and_deactivate(runtime):
    first = hotline("users", "add", "mira", "--role", "admin").stdout.strip()
    hotline("users", "add", "ana", "--role", "analyst")
    listed = hotline("users", "list")
    assert [line.split("\t")[:3] for line in listed.stdout.splitlines()] == [
        ["ana", "analyst", "active"], ["mira", "admin", "active"]]
    reset = hotline("users", "password", "mira")
    assert reset.exit_code == 0, reset.output
    new = reset.stdout.strip()
    assert new and new != first
    with runtime.session_factory() as session:
        hashed = users.get_user(session, "mira").password_hash
    assert auth.verify_password(hashed, new) and not auth.verify_password(hashed, first)
    assert hotline("users", "deactivate", "ana").exit_code == 0
    assert "ana\tanalyst\tinactive" in hotline("users", "list").stdout
    missing = hotline("users", "password", "nobody")
    assert missing.exit_code == 1 and "no user named nobody" in missing.output
    assert hotline("users", "deactivate", "nobody").exit_code == 1


def test_tokens_add_and_revoke(runtime):
    added = hotline("tokens", "add", "Stoponline", "--scope", "partner", "--expires-days", "30")
    assert added.exit_code == 0, added.output
    token = added.stdout.strip()
    prefix = added.stderr.split("Token ", 1)[1].split("...", 1)[0]
    with runtime.session_factory() as session:
        assert auth.authenticate_token(session, token, at=runtime.clock.now()) is not None
    revoked = hotline("tokens", "revoke", prefix)
    assert revoked.exit_code == 0 and "Revoked 1 token(s)." in revoked.stdout
    with runtime.session_factory() as session:
        assert auth.authenticate_token(session, token, at=runtime.clock.now()) is None
    again = hotline("tokens", "revoke", prefix)
    assert again.exit_code == 1 and f"no live token with prefix {prefix}" in again.output
