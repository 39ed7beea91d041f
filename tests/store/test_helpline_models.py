"""The helpline's tables: contacts, cases, tasks, referrals, reports."""

from __future__ import annotations

from sqlalchemy import text

from pipeline.core import crypto
from pipeline.store import helpline_models
from pipeline.store.helpline_models import HelplineContact
from tests.store.schema_support import schema_differences


def test_the_tables_are_what_the_migrations_make(migrated_url):
    assert schema_differences(migrated_url, helpline_models) == []


def test_the_callers_data_are_encrypted_at_rest(runtime):
    now = runtime.clock.now()
    with runtime.session_factory.begin() as session:
        contact = HelplineContact(
            ref="K-TEST-0000-0000-0001", channel="phone", received_at=now,
            caller_type="child", topic="sextortion", anonymous=False,
            caller_contact="+381 64 555 0199", summary="Canary summary 4QX", counsellor="co",
            created_at=now)
        session.add(contact)
    with runtime.engine.connect() as conn:
        raw_contact, raw_summary = conn.execute(
            text("SELECT caller_contact, summary FROM helpline_contacts WHERE id = :id"),
            {"id": contact.id}).one()
    assert raw_contact.startswith(crypto.PREFIX) and "555 0199" not in raw_contact
    assert raw_summary.startswith(crypto.PREFIX) and "4QX" not in raw_summary
    with runtime.session_factory() as session:
        found = session.get(HelplineContact, contact.id)
        assert (found.caller_contact, found.summary) == ("+381 64 555 0199",
                                                         "Canary summary 4QX")
        assert found.source == "console" and found.audit_seq == 0
