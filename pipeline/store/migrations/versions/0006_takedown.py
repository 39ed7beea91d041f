"""notice-and-takedown tracking and statistics

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import pipeline.store.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _time(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, pipeline.store.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "takedown_watches",
        sa.Column("case_id", _ID, sa.ForeignKey("cases.id"), nullable=False),
        _time("started_at", nullable=False),
        _time("next_check_at", nullable=False),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.Column("misses", sa.Integer(), nullable=False),
        _time("first_miss_at"),
        _time("last_checked_at"),
        sa.Column("last_outcome", sa.String(length=20), nullable=True),
        sa.Column("baseline_addresses", sa.JSON(), nullable=False),
        _time("claimed_at"),
        sa.Column("claimed_by", sa.String(length=140), nullable=True),
        sa.Column("claim_status", sa.String(length=20), nullable=True),
        sa.PrimaryKeyConstraint("case_id"),
    )
    op.create_index("ix_takedown_watches_next_check_at", "takedown_watches",
                    ["next_check_at"])
    op.create_table(
        "takedown_checks",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("case_id", _ID, sa.ForeignKey("cases.id"), nullable=False),
        _time("at", nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column("redirects", sa.Integer(), nullable=False),
        sa.Column("misses", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_takedown_checks_case", "takedown_checks", ["case_id", "at"])
    # The statistics export reads notices by case and kind, and cases by stage time.
    op.create_index("ix_notices_case_kind_sent", "notices",
                    ["case_id", "kind", "destination_kind", "sent_at"])
    op.create_index("ix_cases_removed_at", "cases", ["removed_at"])
    op.create_index("ix_cases_assessed_at", "cases", ["assessed_at"])
    op.create_index("ix_reports_received_at", "reports", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_reports_received_at", table_name="reports")
    op.drop_index("ix_cases_assessed_at", table_name="cases")
    op.drop_index("ix_cases_removed_at", table_name="cases")
    op.drop_index("ix_notices_case_kind_sent", table_name="notices")
    op.drop_index("ix_takedown_checks_case", table_name="takedown_checks")
    op.drop_table("takedown_checks")
    op.drop_index("ix_takedown_watches_next_check_at", table_name="takedown_watches")
    op.drop_table("takedown_watches")
