"""Reporter contacts are encrypted at rest with a key from the environment."""

from __future__ import annotations

import os
import stat

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text

from pipeline.app import privacy
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


# --- re-encryption: clear values and values under an older key --------------------------


def _use_keys(settings_factory, *keys: str) -> None:
    crypto.install_keys(settings_factory(privacy={"encryption_key": ",".join(keys)}))


def _contacts_by_id(runtime) -> dict[int, str]:
    with runtime.engine.connect() as conn:
        return dict(conn.execute(text(
            "SELECT id, reporter_contact FROM reports WHERE reporter_contact IS NOT NULL")).all())


def _three_contacts(runtime, settings_factory, old: str) -> list[str]:
    """Three reports: two contacts under `old`, one written in clear; one without any."""
    _use_keys(settings_factory, old)
    contacts = [f"reporter{i}@example.org" for i in range(3)]
    with runtime.session_factory.begin() as session:
        for contact in [*contacts, None]:
            add_case(session, at=runtime.clock.now(), contact=contact)
    first = min(_contacts_by_id(runtime))
    with runtime.engine.begin() as conn:
        conn.execute(text("UPDATE reports SET reporter_contact = :c WHERE id = :id"),
                     {"c": contacts[0], "id": first})
    return contacts


def test_reencrypt_puts_clear_and_old_key_contacts_under_the_first_key(runtime,
                                                                     settings_factory):
    from pipeline.store.models import Event

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    contacts = _three_contacts(runtime, settings_factory, old)
    _use_keys(settings_factory, new, old)
    before = _contacts_by_id(runtime)

    dry = privacy.reencrypt(runtime.session_factory, at=runtime.clock.now(), actor="user:ops",
                           dry_run=True)
    assert (dry.clear, dry.rotated, dry.current) == (1, 2, 0)
    assert _contacts_by_id(runtime) == before  # a dry run changes nothing

    done = privacy.reencrypt(runtime.session_factory, at=runtime.clock.now(), actor="user:ops",
                            batch_size=2)
    assert (done.clear, done.rotated, done.current, done.batches) == (1, 2, 0, 2)
    stored = _contacts_by_id(runtime)
    assert sorted(stored) == sorted(before)
    only_new = Fernet(new)
    assert sorted(only_new.decrypt(v[len(crypto.PREFIX):].encode()).decode()
                  for v in stored.values()) == contacts
    with runtime.session_factory() as session:
        assert sorted(session.execute(select(Report.reporter_contact).where(
            Report.reporter_contact.is_not(None))).scalars()) == contacts
        events = session.execute(select(Event).where(Event.action == "contacts_reencrypted")
                                 ).scalars().all()
        assert len(events) == 1 and events[0].data["clear"] == 1
        assert events[0].data["rotated"] == 2 and events[0].actor == "user:ops"
        assert not any(c in str(events[0].data) for c in contacts)

    again = privacy.reencrypt(runtime.session_factory, at=runtime.clock.now(), actor="user:ops")
    assert (again.clear, again.rotated, again.current) == (0, 0, 3)
    assert _contacts_by_id(runtime) == stored  # values under the first key are left alone


def test_an_interrupted_reencryption_keeps_its_finished_batches_and_resumes(
        sqlite_runtime, settings_factory, monkeypatch):
    runtime = sqlite_runtime
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    _three_contacts(runtime, settings_factory, old)
    _use_keys(settings_factory, new, old)
    real, calls = privacy._renewed, []

    def failing_on_the_second_batch(keys, stored, done):
        calls.append(stored)
        if len(calls) == 2:
            raise RuntimeError("killed")
        return real(keys, stored, done)

    monkeypatch.setattr(privacy, "_renewed", failing_on_the_second_batch)
    with pytest.raises(RuntimeError):
        privacy.reencrypt(runtime.session_factory, at=runtime.clock.now(), actor="user:ops",
                         batch_size=1)
    monkeypatch.setattr(privacy, "_renewed", real)
    done = privacy.reencrypt(runtime.session_factory, at=runtime.clock.now(), actor="user:ops",
                            batch_size=1)
    assert (done.clear, done.rotated, done.current) == (0, 2, 1)  # the first batch held


def test_a_contact_under_no_configured_key_is_left_and_reported(sqlite_runtime,
                                                                settings_factory):
    from click.testing import CliRunner

    from pipeline.cli import main

    runtime = sqlite_runtime
    lost, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    _three_contacts(runtime, settings_factory, lost)
    before = _contacts_by_id(runtime)
    _use_keys(settings_factory, new)
    done = privacy.reencrypt(runtime.session_factory, at=runtime.clock.now(), actor="user:ops")
    assert (done.clear, done.undecryptable) == (1, 2)
    after = _contacts_by_id(runtime)
    assert [after[i] for i in sorted(after)][1:] == [before[i] for i in sorted(before)][1:]
    result = CliRunner().invoke(main, ["privacy", "reencrypt", "--dry-run"], env={
        "HOTLINE_DATABASE__URL": runtime.settings.database.url,
        "HOTLINE_APP__DATA_DIR": runtime.settings.app.data_dir,
        "HOTLINE_PRIVACY__ENCRYPTION_KEY": new})
    assert result.exit_code == 1 and "2 contacts are under none of the configured keys" in (
        result.output)


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
