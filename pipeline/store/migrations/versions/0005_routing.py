"""routing rules and notice dispatch

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import pipeline.store.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        # Which routing rules hit and missed, and what they decided (`rules explain`).
        batch_op.add_column(sa.Column("routing", sa.JSON(), nullable=True))
        # The police hold: its deadline and the police's last reason.
        batch_op.add_column(
            sa.Column("police_hold_until", pipeline.store.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("police_hold_reason", sa.Text(), nullable=True))
        batch_op.create_index("ix_cases_police_hold", ["state", "police_hold_until"], unique=False)
    with op.batch_alter_table("notices", schema=None) as batch_op:
        # The delivery claim of a worker (state "sending" until the lease runs out).
        batch_op.add_column(
            sa.Column("lease_until", pipeline.store.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_notices_state_due", ["state", "due_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.drop_index("ix_notices_state_due")
        batch_op.drop_column("lease_owner")
        batch_op.drop_column("lease_until")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_police_hold")
        batch_op.drop_column("police_hold_reason")
        batch_op.drop_column("police_hold_until")
        batch_op.drop_column("routing")
