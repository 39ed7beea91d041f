"""The mailbox's own table: every message taken in, once.

A row per message, keyed by its Message-ID (hashed), so that a message delivered
twice (LMTP retried after a lost answer, IMAP read again after a crash before the
move) makes its reports once. A message that made no report (no URL, unreadable,
too large) waits here in state `look_at` for a person: the look-at queue.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from pipeline.core.crypto import EncryptedText
from pipeline.store.db import Base, BigId
from pipeline.store.states import WAITING_ACK_STATES, AckState

# The states of a message: it made reports, it waits for a person, a person saw it,
# a counsellor turned it into a helpline contact (a call for help, not a report).
REPORTED = "reported"
LOOK_AT = "look_at"
LOOKED_AT = "looked_at"
HELPLINE = "helpline"
# The states of a message's acknowledgement: `pipeline.store.states.AckState`.

LOOK_AT_ONLY = text("state = 'look_at'")
ACKS_WAITING = text("ack_state IN ({})".format(  # noqa: S608 - the enum's own values
    ", ".join(f"'{state.value}'" for state in WAITING_ACK_STATES)))


class MailMessage(Base):
    """One message received by the mailbox (LMTP or IMAP)."""

    __tablename__ = "mail_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # SHA-256 of the normalised Message-ID (or of the whole message when it has none).
    message_key: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[str | None] = mapped_column(String(500))
    via: Mapped[str] = mapped_column(String(10))  # lmtp or imap
    received_at: Mapped[datetime]
    # The sender is the reporter: encrypted at rest like every reporter contact.
    sender: Mapped[str | None] = mapped_column(EncryptedText())
    subject: Mapped[str | None] = mapped_column(String(500))
    size: Mapped[int] = mapped_column(default=0)
    language: Mapped[str | None] = mapped_column(String(35))
    state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)  # why a person should look at it
    submission_ref: Mapped[str | None] = mapped_column(String(32))
    report_count: Mapped[int] = mapped_column(default=0)
    # Attachments by name, type, size and SHA-256: never their content.
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # The acknowledgement, one per message at most (this row is its outbox entry):
    # its state (`AckState`), its token (the Message-ID of the answer), why none is
    # sent, and the delivery bookkeeping of the dispatch channels.
    ack_state: Mapped[str] = mapped_column(String(20), default=AckState.NONE.value)
    ack_token: Mapped[str | None] = mapped_column(String(64), unique=True)
    ack_note: Mapped[str | None] = mapped_column(String(200))
    ack_attempts: Mapped[int] = mapped_column(default=0)
    ack_due_at: Mapped[datetime | None]
    ack_lease_until: Mapped[datetime | None]
    ack_sent_at: Mapped[datetime | None]
    looked_at_by: Mapped[str | None] = mapped_column(String(120))
    looked_at_at: Mapped[datetime | None]
    # The helpline contact (K-...) the message became, when a counsellor turned it
    # into one (state `helpline`); at most one.
    helpline_contact_ref: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        Index("ix_mail_messages_look_at", "received_at", postgresql_where=LOOK_AT_ONLY,
              sqlite_where=LOOK_AT_ONLY),
        Index("ix_mail_messages_acks", "ack_due_at", postgresql_where=ACKS_WAITING,
              sqlite_where=ACKS_WAITING),
    )
