"""stage speed: the claim index of the assessment queue

`ix_cases_claim` holds only the cases awaiting a first assessment, in the exact order
a claim takes them (priority first, then oldest, then id), so that
`ORDER BY priority DESC, received_at, id LIMIT 1 FOR UPDATE SKIP LOCKED` reads the
first free entry of the index and stops (`pipeline.stages.assessment`).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

WAITING = sa.text("state = 'awaiting_assessment'")


def upgrade() -> None:
    op.create_index(
        "ix_cases_claim", "cases", [sa.text("priority DESC"), "received_at", "id"],
        postgresql_where=WAITING, sqlite_where=WAITING,
    )


def downgrade() -> None:
    op.drop_index("ix_cases_claim", table_name="cases")
