"""operations and data protection: legal holds, heartbeats, purge markers

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import pipeline.store.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "legal_holds",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("case_id", BigId, nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("set_by", sa.String(length=80), nullable=False),
        sa.Column("set_at", pipeline.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lifted_by", sa.String(length=80), nullable=True),
        sa.Column("lifted_at", pipeline.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lift_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("legal_holds") as batch_op:
        batch_op.create_index("ix_legal_holds_case_id", ["case_id"], unique=False)
        batch_op.create_index("ix_legal_holds_active", ["case_id", "lifted_at"], unique=False)
    op.create_table(
        "heartbeats",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("beat_at", pipeline.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("reports") as batch_op:
        batch_op.add_column(sa.Column("contact_purged_at", pipeline.store.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("description_purged_at", pipeline.store.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("url_purged_at", pipeline.store.db.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table("cases") as batch_op:
        batch_op.add_column(sa.Column("url_purged_at", pipeline.store.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("trace_answers_purged_at", pipeline.store.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch_op:
        batch_op.drop_column("trace_answers_purged_at")
        batch_op.drop_column("url_purged_at")
    with op.batch_alter_table("reports") as batch_op:
        batch_op.drop_column("url_purged_at")
        batch_op.drop_column("description_purged_at")
        batch_op.drop_column("contact_purged_at")
    op.drop_table("heartbeats")
    with op.batch_alter_table("legal_holds") as batch_op:
        batch_op.drop_index("ix_legal_holds_active")
        batch_op.drop_index("ix_legal_holds_case_id")
    op.drop_table("legal_holds")
