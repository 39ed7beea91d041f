"""Re-encryption of contacts (pipeline.app.privacy): clear values and values under an
older key put under the first configured key, in batches that survive an interruption;
contacts under no configured key left and reported."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text

from pipeline.app import privacy
from pipeline.core import crypto
from pipeline.store.models import Report
from tests.ops_helpers import add_case

CONTACT = "jelena.canary@example.org"


def _raw_contacts(runtime) -> list[str]:
    with runtime.engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT reporter_contact FROM reports"))]


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
