"""Reporter contacts are encrypted at rest with a key from the environment."""

from __future__ import annotations

import os
import stat

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text

from pipeline.app.runtime import build_runtime
from pipeline.core import crypto
from pipeline.core.config import Settings, load_settings
from pipeline.core.errors import ConfigError, PermanentError
from pipeline.store.migrate import upgrade
from pipeline.store.models import Report
from tests.ops_helpers import add_case

CONTACT = "jelena.canary@example.org"


def _raw_contacts(runtime) -> list[str]:
    with runtime.engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT reporter_contact FROM reports"))]


def test_the_contact_is_stored_encrypted_and_read_back_in_clear(runtime):
    with runtime.session_factory.begin() as session:
        case = add_case(session, at=runtime.clock.now(), contact=CONTACT)
    stored = _raw_contacts(runtime)
    assert len(stored) == 1
    assert CONTACT not in stored[0] and stored[0].startswith(crypto.PREFIX)
    with runtime.session_factory() as session:
        report = session.execute(select(Report).where(Report.case_id == case.id)).scalar_one()
        assert report.reporter_contact == CONTACT


def test_production_mode_refuses_to_start_without_a_key(monkeypatch):
    monkeypatch.setenv("HOTLINE_APP__MODE", "production")
    with pytest.raises(ConfigError, match="privacy.encryption_key: production mode needs"):
        load_settings()


def test_the_cli_refuses_production_mode_without_a_key_naming_the_setting(monkeypatch):
    from click.testing import CliRunner

    from pipeline.cli import main

    monkeypatch.setenv("HOTLINE_APP__MODE", "production")
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 2
    assert "privacy.encryption_key: production mode needs a key" in result.output


def test_install_keys_refuses_production_mode_without_a_key(settings_factory):
    settings = settings_factory()
    settings.app.mode = "production"  # as if the model check had been bypassed
    with pytest.raises(ConfigError, match="privacy.encryption_key"):
        crypto.install_keys(settings)


def test_production_mode_takes_the_key_from_the_environment(settings_factory, monkeypatch):
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("HOTLINE_PRIVACY__ENCRYPTION_KEY", key)
    monkeypatch.setenv("HOTLINE_APP__MODE", "production")
    settings = load_settings()
    assert settings.privacy.encryption_key is not None
    assert key not in repr(settings) and key not in settings.model_dump_json()
    crypto.install_keys(settings)
    assert Fernet(key).decrypt(crypto.encrypt(CONTACT)[len(crypto.PREFIX):]).decode() == CONTACT


def test_a_key_file_outside_the_repository_is_read(settings_factory, tmp_path):
    key = Fernet.generate_key().decode()
    path = tmp_path / "hotline.key"
    path.write_text(key + "\n")
    settings = settings_factory(app={"mode": "production"},
                                privacy={"encryption_key_file": str(path)})
    crypto.install_keys(settings)
    assert crypto.decrypt(crypto.encrypt(CONTACT)) == CONTACT
    assert Fernet(key).decrypt(crypto.encrypt(CONTACT)[len(crypto.PREFIX):]).decode() == CONTACT


def test_a_bad_key_is_refused_naming_the_setting(settings_factory):
    settings = settings_factory(privacy={"encryption_key": "not-a-key"})
    with pytest.raises(ConfigError, match="privacy.encryption_key: not a Fernet key"):
        crypto.install_keys(settings)


def test_embedded_mode_creates_a_private_key_file_once(settings_factory):
    settings: Settings = settings_factory()
    crypto.install_keys(settings)
    path = settings.data_path / crypto.KEY_FILE
    first = path.read_text()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    crypto.install_keys(settings)
    assert path.read_text() == first


def test_an_old_key_still_decrypts_after_rotation(settings_factory):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    crypto.install_keys(settings_factory(privacy={"encryption_key": old}))
    stored = crypto.encrypt(CONTACT)
    crypto.install_keys(settings_factory(privacy={"encryption_key": f"{new},{old}"}))
    assert crypto.decrypt(stored) == CONTACT
    assert Fernet(new).decrypt(crypto.encrypt(CONTACT)[len(crypto.PREFIX):]).decode() == CONTACT


def test_a_contact_under_an_unknown_key_fails_loudly(settings_factory):
    crypto.install_keys(settings_factory(privacy={"encryption_key":
                                                  Fernet.generate_key().decode()}))
    stored = crypto.encrypt(CONTACT)
    crypto.install_keys(settings_factory(privacy={"encryption_key":
                                                  Fernet.generate_key().decode()}))
    with pytest.raises(PermanentError, match="cannot be decrypted"):
        crypto.decrypt(stored)


def test_a_contact_written_before_encryption_is_still_read(settings_factory):
    settings = settings_factory()
    upgrade(settings.database.url)
    runtime = build_runtime(settings)
    with runtime.session_factory.begin() as session:
        add_case(session, at=runtime.clock.now(), contact=CONTACT)
    with runtime.engine.begin() as conn:
        conn.execute(text("UPDATE reports SET reporter_contact = :c"), {"c": "legacy@example.org"})
    with runtime.session_factory() as session:
        assert session.execute(select(Report.reporter_contact)).scalar_one() == (
            "legacy@example.org")
    runtime.close()
