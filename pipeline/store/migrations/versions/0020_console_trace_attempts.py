"""cases.trace_attempts, cases.trace_wait_reason: tracing failures in view

A case whose registries fail in passing waits for its TRACE message's retry
(`cases.retry_at`). The console's "still tracing" list shows, besides when the next
retry is due, how many attempts failed so far and why the last one did; the stage
rolls its own transaction back on such a failure, so the actor notes both beside
`retry_at` in a transaction of its own.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("trace_attempts", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("trace_wait_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("trace_wait_reason")
        batch.drop_column("trace_attempts")
