"""URL normalisation and deduplication

Cases remember whether they are a re-upload (reported again after the previous case
for the URL closed as removed) and whether their host is mixed-script or confusable.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import pipeline.store.db  # noqa: F401

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("reupload", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("host_confusable", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.create_index("ix_cases_reupload", ["reupload"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_index("ix_cases_reupload")
        batch.drop_column("host_confusable")
        batch.drop_column("reupload")
