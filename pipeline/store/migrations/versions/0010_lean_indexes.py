"""lean indexes: fewer index entries written per report on the intake path

Every state change of a report or a case writes a new row version and an entry in
each of its table's indexes. Indexes that only ever serve a few rows are made partial,
so the rows they do not serve cost nothing:
- events: by case and by report only where the event has one (report events before
  deduplication have no case; case events have no report);
- cases: the police-hold deadline only for cases held by the police;
- cases.reupload: a boolean that no query looks up by index (statistics count it in
  the same scan as everything else): dropped.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

HELD = sa.text("state = 'police_hold'")


def _partial(name: str, table: str, columns: list[str], where: sa.TextClause) -> None:
    op.drop_index(name, table_name=table)
    op.create_index(name, table, columns, postgresql_where=where, sqlite_where=where)


def upgrade() -> None:
    _partial("ix_events_case_id", "events", ["case_id"], sa.text("case_id IS NOT NULL"))
    _partial("ix_events_report_id", "events", ["report_id"], sa.text("report_id IS NOT NULL"))
    _partial("ix_cases_police_hold", "cases", ["police_hold_until"], HELD)
    op.drop_index("ix_cases_reupload", table_name="cases")


def downgrade() -> None:
    op.create_index("ix_cases_reupload", "cases", ["reupload"])
    op.drop_index("ix_cases_police_hold", table_name="cases")
    op.create_index("ix_cases_police_hold", "cases", ["state", "police_hold_until"])
    op.drop_index("ix_events_report_id", table_name="events")
    op.create_index("ix_events_report_id", "events", ["report_id"])
    op.drop_index("ix_events_case_id", table_name="events")
    op.create_index("ix_events_case_id", "events", ["case_id"])
