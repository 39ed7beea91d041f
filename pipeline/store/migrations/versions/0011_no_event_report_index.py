"""events: no index by report

Nothing in the pipeline looks events up by `report_id`: a report's history is its
stream (`report:<ref>`, served by the unique (stream, seq) index), as the evidence
package and the console read it. The index cost a write-ahead-log record and an index
entry for each of the three or so events every report makes on the intake path.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_events_report_id", table_name="events")


def downgrade() -> None:
    where = sa.text("report_id IS NOT NULL")
    op.create_index("ix_events_report_id", "events", ["report_id"], postgresql_where=where,
                    sqlite_where=where)
