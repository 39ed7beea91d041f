"""helpline mail contact: a mail message turned into a helpline contact

A message in the mailbox's look-at queue (no URL in it) may be a call for help, not
a report: a counsellor turns it into a helpline contact. The message then leaves
the queue in the state `helpline`, and names the contact it became (its reference,
K-...), so that it is turned into a contact once. A contact that came in by itself
(mailbox, public form) waits for a counsellor until `taken_up_at` is set.

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import pipeline.store.db

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mail_messages") as batch:
        batch.add_column(sa.Column("helpline_contact_ref", sa.String(32), nullable=True))
    with op.batch_alter_table("helpline_contacts") as batch:
        batch.add_column(sa.Column("taken_up_at", pipeline.store.db.UTCDateTime(timezone=True),
                                   nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("helpline_contacts") as batch:
        batch.drop_column("taken_up_at")
    with op.batch_alter_table("mail_messages") as batch:
        batch.drop_column("helpline_contact_ref")
