"""cpu write amplification: no primary-key index on events; two case indexes partial

Measured with the benchmark (scaled-out phase, 20,000 reports, `pg_waldump` over the
phase, 2026-12-07): 36 of the 45 write-ahead-log records per report were B-tree leaf
inserts, three for each audit event. `events.id` had a unique index that nothing
reads: events are found by stream and sequence (`uq_events_stream_seq`) or by case
(`ix_events_case_id`), never by id, and the ids still come from the sequence.

A new case (0.66 per report in the benchmark) also wrote 16 index entries, two of
them the empty `assessed_at` and `removed_at`: those two indexes are now partial
(`IS NOT NULL`); the statistics only ask for ranges of these times.

The primary key: PostgreSQL only (SQLite's `id INTEGER PRIMARY KEY` is the row id
itself, not an index).

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


_TIMES = ("removed_at", "assessed_at")


def upgrade() -> None:
    if _postgresql():
        op.execute("ALTER TABLE events DROP CONSTRAINT IF EXISTS events_pkey")
    for column in _TIMES:
        op.drop_index(f"ix_cases_{column}", table_name="cases")
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(f"ix_cases_{column}", "cases", [column], postgresql_where=where,
                        sqlite_where=where)


def downgrade() -> None:
    for column in reversed(_TIMES):
        op.drop_index(f"ix_cases_{column}", table_name="cases")
        op.create_index(f"ix_cases_{column}", "cases", [column])
    if _postgresql():
        op.execute("ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (id)")
