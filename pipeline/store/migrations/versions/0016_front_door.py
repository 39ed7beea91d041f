"""front door: where a reporter found the content, and the mailbox's messages

- reports.found_on: where the reporter came across the content (the public form
  asks; the API accepts it), nullable, so adding it rewrites no row;
- mail_messages: one row per message the mailbox took in, unique by its hashed
  Message-ID (a message delivered twice makes its reports once); messages that made
  no report wait there for a person (partial index on the look-at state); the row
  is also the outbox entry of the message's one acknowledgement (ack_* columns).

Revision ID: 0016
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import pipeline.store.db

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LOOK_AT = sa.text("state = 'look_at'")
ACKS_WAITING = sa.text("ack_state IN ('queued', 'sending', 'failed')")


def upgrade() -> None:
    op.add_column("reports", sa.Column("found_on", sa.String(20), nullable=True))
    op.create_table(
        "mail_messages",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("message_key", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(500), nullable=True),
        sa.Column("via", sa.String(10), nullable=False),
        sa.Column("received_at", pipeline.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sender", sa.Text(), nullable=True),
        sa.Column("subject", sa.String(500), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(35), nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("submission_ref", sa.String(32), nullable=True),
        sa.Column("report_count", sa.Integer(), nullable=False),
        sa.Column("attachments", sa.JSON(), nullable=False),
        sa.Column("ack_state", sa.String(20), nullable=False),
        sa.Column("ack_token", sa.String(64), nullable=True),
        sa.Column("ack_note", sa.String(200), nullable=True),
        sa.Column("ack_attempts", sa.Integer(), nullable=False),
        sa.Column("ack_due_at", pipeline.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ack_lease_until", pipeline.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ack_sent_at", pipeline.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("looked_at_by", sa.String(120), nullable=True),
        sa.Column("looked_at_at", pipeline.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("message_key", name="uq_mail_messages_message_key"),
        sa.UniqueConstraint("ack_token", name="uq_mail_messages_ack_token"),
    )
    op.create_index("ix_mail_messages_look_at", "mail_messages", ["received_at"],
                    postgresql_where=LOOK_AT, sqlite_where=LOOK_AT)
    op.create_index("ix_mail_messages_acks", "mail_messages", ["ack_due_at"],
                    postgresql_where=ACKS_WAITING, sqlite_where=ACKS_WAITING)


def downgrade() -> None:
    op.drop_index("ix_mail_messages_acks", table_name="mail_messages")
    op.drop_index("ix_mail_messages_look_at", table_name="mail_messages")
    op.drop_table("mail_messages")
    op.drop_column("reports", "found_on")
