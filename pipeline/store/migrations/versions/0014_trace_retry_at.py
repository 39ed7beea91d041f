"""cases.retry_at: a case whose TRACE message waits for its retry

When a registry fails in passing, the tracing stage asks for its message to be
retried later (RetryLater). The reconciler saw the case still `normalised` past its
deadline and sent it again: with the registries down, each of those copies retried
and failed again, and dead letters piled up. The stage now notes when the retry is
due; the reconciler leaves the case alone until then (plus its deadline).

Revision ID: 0014
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import pipeline.store.db

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("retry_at", pipeline.store.db.UTCDateTime(timezone=True),
                                   nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("retry_at")
