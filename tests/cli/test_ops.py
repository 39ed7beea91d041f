"""The operations commands (pipeline.cli.ops): `hotline status` and `hotline privacy
reencrypt`."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet

from pipeline.app.health import beat
from pipeline.app.runtime import build_runtime
from pipeline.core import crypto
from pipeline.store.migrate import upgrade
from pipeline.store.states import CaseState
from tests.app.test_privacy import CONTACT, _raw_contacts
from tests.ops_helpers import add_case


def test_the_cli_reencrypts_after_a_rotation(settings_factory, monkeypatch):
    from click.testing import CliRunner

    from pipeline.cli import main

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings = settings_factory(privacy={"encryption_key": old})
    upgrade(settings.database.url)
    runtime = build_runtime(settings)
    with runtime.session_factory.begin() as session:
        add_case(session, at=runtime.clock.now(), contact=CONTACT)
    monkeypatch.setenv("HOTLINE_DATABASE__URL", settings.database.url)
    monkeypatch.setenv("HOTLINE_APP__DATA_DIR", settings.app.data_dir)
    monkeypatch.setenv("HOTLINE_PRIVACY__ENCRYPTION_KEY", f"{new},{old}")
    result = CliRunner().invoke(main, ["privacy", "reencrypt", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "1 under an older key would be re-encrypted" in result.output
    assert Fernet(old).decrypt(_raw_contacts(runtime)[0][len(crypto.PREFIX):].encode())
    result = CliRunner().invoke(main, ["privacy", "reencrypt", "--by", "mira"])
    assert result.exit_code == 0, result.output
    assert "1 under an older key were re-encrypted" in result.output
    raw = _raw_contacts(runtime)[0][len(crypto.PREFIX):].encode()
    assert Fernet(new).decrypt(raw).decode() == CONTACT
    runtime.close()


@pytest.fixture
def cli_env(settings_factory, monkeypatch, tmp_path):
    settings = settings_factory()
    upgrade(settings.database.url)
    monkeypatch.setenv("HOTLINE_DATABASE__URL", settings.database.url)
    monkeypatch.setenv("HOTLINE_APP__DATA_DIR", settings.app.data_dir)
    return settings


def test_status_prints_reachability_backlogs_and_dead_letters(cli_env):
    from pipeline.cli import main

    runtime = build_runtime(cli_env)
    with runtime.session_factory.begin() as session:
        add_case(session, at=runtime.clock.now() - timedelta(hours=3),
                 until=CaseState.AWAITING_ASSESSMENT)
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 1  # no scheduler yet
    assert "scheduler  DOWN" in result.output
    assert "assessment backlog: 1 cases, oldest waiting" in result.output
    assert "dead letters: 0" in result.output
    beat(runtime, "scheduler")
    result = CliRunner().invoke(main, ["status", "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["ready"] is True
    assert status["assessment_backlog"] == 1
    assert status["cases_by_state"] == {"awaiting_assessment": 1}
    # Queued an hour after it came in (the helper moves one state per hour).
    assert 3000 < status["assessment_oldest_age_seconds"] < 4200
    runtime.close()
