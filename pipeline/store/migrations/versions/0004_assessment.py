"""users, roles and the assessment queue

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import pipeline.store.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "assessments",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("case_id", BigId, nullable=False),
        sa.Column("analyst_id", BigId, nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("legality", sa.String(length=40), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=True),
        sa.Column("age_group", sa.String(length=20), nullable=True),
        sa.Column("gender", sa.String(length=20), nullable=True),
        sa.Column("site_type", sa.String(length=30), nullable=True),
        sa.Column("content_type", sa.String(length=30), nullable=True),
        sa.Column("commercial", sa.Boolean(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("four_eyes_rule", sa.String(length=80), nullable=True),
        sa.Column("site_batch", sa.String(length=32), nullable=True),
        sa.Column("claimed_at", pipeline.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", pipeline.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["analyst_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.create_index("ix_assessments_case_id", ["case_id"], unique=False)
        batch_op.create_index(
            "ix_assessments_analyst_created", ["analyst_id", "created_at"], unique=False
        )

    op.create_table(
        "case_leases",
        sa.Column("case_id", BigId, nullable=False),
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("claimed_at", pipeline.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", pipeline.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("site_batch", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("case_id"),
    )
    with op.batch_alter_table("case_leases", schema=None) as batch_op:
        batch_op.create_index("ix_case_leases_user_id", ["user_id"], unique=False)
        batch_op.create_index("ix_case_leases_expires_at", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("case_leases", schema=None) as batch_op:
        batch_op.drop_index("ix_case_leases_expires_at")
        batch_op.drop_index("ix_case_leases_user_id")
    op.drop_table("case_leases")
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.drop_index("ix_assessments_analyst_created")
        batch_op.drop_index("ix_assessments_case_id")
    op.drop_table("assessments")
