"""waiting-state indexes: fewer index entries per report and per new case

A report or case row that changes state is written again with an entry in every
index of its table (PostgreSQL cannot update in place while an indexed column
changes), so each index costs every report on the intake path. Here:
- the (state, state_changed_at) indexes serve only the reconciler, which looks for
  reports stuck in `received` or `normalised` and cases stuck in `normalised`,
  `traced` or `assessed` (and retention, for rejected reports): partial to those
  states, so a report or case that moved on costs no entry;
- cases by dedup_key serve the history of a URL (its cases no longer open;
  `pipeline.stages.dedupe._last_cases`): partial to `open_key IS NULL`, as the open case
  of a URL is found by its unique `open_key`; renamed ix_cases_closed_dedup_key;
- cases by hosting_country: no query looks a country up (statistics group by it in
  a scan of the period's cases): dropped.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

REPORTS_WAITING = sa.text("state IN ('received', 'normalised', 'rejected')")
CASES_WAITING = sa.text("state IN ('normalised', 'traced', 'assessed')")
CLOSED = sa.text("open_key IS NULL")


def _partial(name: str, table: str, columns: list[str], where: sa.TextClause) -> None:
    op.create_index(name, table, columns, postgresql_where=where, sqlite_where=where)


def upgrade() -> None:
    op.drop_index("ix_reports_state_changed", table_name="reports")
    _partial("ix_reports_state_changed", "reports", ["state", "state_changed_at"],
             REPORTS_WAITING)
    op.drop_index("ix_cases_state_changed", table_name="cases")
    _partial("ix_cases_state_changed", "cases", ["state", "state_changed_at"], CASES_WAITING)
    op.drop_index("ix_cases_dedup_key", table_name="cases")
    _partial("ix_cases_closed_dedup_key", "cases", ["dedup_key"], CLOSED)
    op.drop_index("ix_cases_hosting_country", table_name="cases")


def downgrade() -> None:
    op.create_index("ix_cases_hosting_country", "cases", ["hosting_country"])
    op.drop_index("ix_cases_closed_dedup_key", table_name="cases")
    op.create_index("ix_cases_dedup_key", "cases", ["dedup_key"])
    op.drop_index("ix_cases_state_changed", table_name="cases")
    op.create_index("ix_cases_state_changed", "cases", ["state", "state_changed_at"])
    op.drop_index("ix_reports_state_changed", table_name="reports")
    op.create_index("ix_reports_state_changed", "reports", ["state", "state_changed_at"])
