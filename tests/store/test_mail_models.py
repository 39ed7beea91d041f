"""The mailbox's table: what the migrations make, the sender encrypted at rest, and
a message kept once however often it is delivered."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from pipeline.core import crypto
from pipeline.store import mail_models
from pipeline.store.mail_models import LOOK_AT, MailMessage
from tests.store.schema_support import schema_differences


def test_the_tables_are_what_the_migrations_make(migrated_url):
    assert schema_differences(migrated_url, mail_models) == []


def _message(at, **fields):
    values = dict(message_key="k" * 64, message_id="<m1@mail.example>", via="lmtp",
                  received_at=at, sender="reporter-7Zq@mail.example", state=LOOK_AT)
    values.update(fields)
    return MailMessage(**values)


def test_the_sender_is_encrypted_at_rest_and_the_defaults_set(runtime):
    with runtime.session_factory.begin() as session:
        message = _message(runtime.clock.now())
        session.add(message)
    with runtime.engine.connect() as conn:
        raw = conn.execute(text("SELECT sender FROM mail_messages WHERE id = :id"),
                           {"id": message.id}).scalar_one()
    assert raw.startswith(crypto.PREFIX) and "7Zq" not in raw
    with runtime.session_factory() as session:
        found = session.get(MailMessage, message.id)
        assert found.sender == "reporter-7Zq@mail.example"
        assert (found.ack_state, found.report_count, found.attachments) == ("none", 0, [])


def test_a_message_delivered_twice_is_kept_once(runtime):
    with runtime.session_factory.begin() as session:
        session.add(_message(runtime.clock.now()))
    with pytest.raises(IntegrityError), runtime.session_factory.begin() as session:
        session.add(_message(runtime.clock.now(), via="imap"))
