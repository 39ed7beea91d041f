"""The mailbox's own table (issue 21): every message taken in, once.

A row per message, keyed by its Message-ID (hashed), so that a message delivered
twice (LMTP retried after a lost answer, IMAP read again after a crash before the
move) makes its reports once. A message that made no report (no URL, unreadable,
too large) waits here in state `look_at` for a person: the look-at queue.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pipeline.crypto import EncryptedText
from pipeline.db import Base, BigId

# The states of a message: it made reports, it waits for a person, a person saw it.
REPORTED = "reported"
LOOK_AT = "look_at"
LOOKED_AT = "looked_at"


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
    # The acknowledgement: queued (its outbox key), or why none was sent.
    ack: Mapped[str | None] = mapped_column(String(120))
    looked_at_by: Mapped[str | None] = mapped_column(String(120))
    looked_at_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_mail_messages_look_at", "received_at",
                            postgresql_where="state = 'look_at'",
                            sqlite_where="state = 'look_at'"),)
