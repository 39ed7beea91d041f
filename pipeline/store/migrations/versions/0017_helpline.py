"""the helpline: contacts, helpline cases, tasks, referrals, linked URL reports

Notices and legal holds may now be about a helpline case instead of a URL case
(`case_id` nullable, `helpline_case_id` added, exactly one of the two set): a referral
to an institution goes through the same outbox, once per (helpline case, destination,
kind, round).

Revision ID: 0017
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import pipeline.store.db

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _time(name: str, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, pipeline.store.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "helpline_cases",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("ref", sa.String(length=32), nullable=False),
        sa.Column("case_type", sa.String(length=20), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("child_age_group", sa.String(length=12), nullable=True),
        sa.Column("relation", sa.String(length=12), nullable=True),
        sa.Column("accounts", sa.Text(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=12), nullable=True),
        sa.Column("counsellor", sa.String(length=80), nullable=False),
        sa.Column("routing", sa.JSON(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        _time("state_changed_at", False),
        _time("open_at"), _time("advisory_at"), _time("referred_at"), _time("answered_at"),
        _time("closed_at"), _time("personal_data_purged_at"),
        sa.Column("audit_seq", sa.Integer(), nullable=False),
        sa.Column("audit_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ref"),
    )
    op.create_index("ix_helpline_cases_state", "helpline_cases", ["state", "state_changed_at"])
    op.create_table(
        "helpline_contacts",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("ref", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        _time("received_at", False),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("language", sa.String(length=35), nullable=True),
        sa.Column("caller_type", sa.String(length=10), nullable=False),
        sa.Column("topic", sa.String(length=20), nullable=False),
        sa.Column("anonymous", sa.Boolean(), nullable=False),
        sa.Column("caller_contact", sa.Text(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("counsellor", sa.String(length=80), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("helpline_case_id", BigId, nullable=True),
        _time("created_at", False), _time("personal_data_purged_at"),
        sa.Column("audit_seq", sa.Integer(), nullable=False),
        sa.Column("audit_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["helpline_case_id"], ["helpline_cases.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ref"),
    )
    op.create_index("ix_helpline_contacts_received_at", "helpline_contacts", ["received_at"])
    op.create_index("ix_helpline_contacts_counsellor", "helpline_contacts", ["counsellor"])
    op.create_index("ix_helpline_contacts_helpline_case_id", "helpline_contacts",
                    ["helpline_case_id"])
    op.create_table(
        "helpline_tasks",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("helpline_case_id", BigId, nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        _time("due_at", False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        _time("created_at", False), _time("done_at"),
        sa.Column("done_by", sa.String(length=80), nullable=True),
        sa.ForeignKeyConstraint(["helpline_case_id"], ["helpline_cases.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_helpline_tasks_helpline_case_id", "helpline_tasks",
                    ["helpline_case_id"])
    with op.batch_alter_table("notices") as batch:
        batch.alter_column("case_id", existing_type=BigId, nullable=True)
        batch.add_column(sa.Column("helpline_case_id", BigId, nullable=True))
        batch.create_foreign_key("fk_notices_helpline_case", "helpline_cases",
                                 ["helpline_case_id"], ["id"])
        batch.create_unique_constraint("uq_notices_helpline_once", [
            "helpline_case_id", "destination", "kind", "round"])
    op.create_table(
        "helpline_referrals",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("helpline_case_id", BigId, nullable=False),
        sa.Column("destination", sa.String(length=120), nullable=False),
        sa.Column("notice_id", BigId, nullable=True),
        sa.Column("paged", sa.Boolean(), nullable=False),
        sa.Column("personal_data_included", sa.Boolean(), nullable=False),
        sa.Column("evidence_sha256", sa.String(length=64), nullable=True),
        sa.Column("referred_by", sa.String(length=80), nullable=False),
        _time("referred_at", False),
        sa.Column("reply_reference", sa.String(length=120), nullable=True),
        sa.Column("reply_text", sa.Text(), nullable=True),
        _time("replied_at"),
        sa.Column("reminders", sa.Integer(), nullable=False),
        _time("last_reminder_at"),
        sa.ForeignKeyConstraint(["helpline_case_id"], ["helpline_cases.id"]),
        sa.ForeignKeyConstraint(["notice_id"], ["notices.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("helpline_case_id", "destination",
                            name="uq_helpline_referrals_once"),
    )
    op.create_index("ix_helpline_referrals_helpline_case_id", "helpline_referrals",
                    ["helpline_case_id"])
    op.create_table(
        "helpline_case_reports",
        sa.Column("helpline_case_id", BigId, nullable=False),
        sa.Column("report_id", BigId, nullable=False),
        sa.Column("added_by", sa.String(length=80), nullable=False),
        _time("added_at", False),
        sa.ForeignKeyConstraint(["helpline_case_id"], ["helpline_cases.id"]),
        sa.ForeignKeyConstraint(["report_id"], ["reports.id"]),
        sa.PrimaryKeyConstraint("helpline_case_id", "report_id"),
    )
    with op.batch_alter_table("legal_holds") as batch:
        batch.alter_column("case_id", existing_type=BigId, nullable=True)
        batch.add_column(sa.Column("helpline_case_id", BigId, nullable=True))
        batch.create_foreign_key("fk_legal_holds_helpline_case", "helpline_cases",
                                 ["helpline_case_id"], ["id"])
    op.create_index("ix_legal_holds_helpline_case_id", "legal_holds", ["helpline_case_id"])


def downgrade() -> None:
    op.drop_index("ix_legal_holds_helpline_case_id", table_name="legal_holds")
    op.execute("DELETE FROM legal_holds WHERE case_id IS NULL")
    with op.batch_alter_table("legal_holds") as batch:
        batch.drop_constraint("fk_legal_holds_helpline_case", type_="foreignkey")
        batch.drop_column("helpline_case_id")
        batch.alter_column("case_id", existing_type=BigId, nullable=False)
    op.drop_table("helpline_case_reports")
    op.drop_index("ix_helpline_referrals_helpline_case_id", table_name="helpline_referrals")
    op.drop_table("helpline_referrals")
    op.execute("DELETE FROM notices WHERE case_id IS NULL")
    with op.batch_alter_table("notices") as batch:
        batch.drop_constraint("uq_notices_helpline_once", type_="unique")
        batch.drop_constraint("fk_notices_helpline_case", type_="foreignkey")
        batch.drop_column("helpline_case_id")
        batch.alter_column("case_id", existing_type=BigId, nullable=False)
    op.drop_index("ix_helpline_tasks_helpline_case_id", table_name="helpline_tasks")
    op.drop_table("helpline_tasks")
    for name in ("helpline_case_id", "counsellor", "received_at"):
        op.drop_index(f"ix_helpline_contacts_{name}", table_name="helpline_contacts")
    op.drop_table("helpline_contacts")
    op.drop_index("ix_helpline_cases_state", table_name="helpline_cases")
    op.drop_table("helpline_cases")
