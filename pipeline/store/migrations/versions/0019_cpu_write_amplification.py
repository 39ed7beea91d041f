"""cpu write amplification: cases leave room for HOT updates, events lose their
primary-key index

Measured with the benchmark (scaled-out phase, 20,000 reports, `pg_waldump` over the
phase, 2026-12-07): 30 of the 38 write-ahead-log records per report were B-tree leaf
inserts. Two kinds of them are needed by nothing:

- half of the updates of a case's report count (deduplication adding reports to an
  open case) were not HOT: the freshly inserted case rows filled their pages, so the
  new version went to another page and all sixteen indexes of `cases` got an entry.
  `fillfactor = 70` keeps room on each page; `report_count` is in no index, so those
  updates become heap-only;
- `events.id` had a unique index that nothing reads: events are found by stream and
  sequence (`uq_events_stream_seq`) or by case (`ix_events_case_id`), never by id, and
  the ids still come from the sequence. About three entries per report.

PostgreSQL only: SQLite has no fillfactor, and its `id INTEGER PRIMARY KEY` is the
row id itself, not an index.

Revision ID: 0019_cpu
Revises: 0018
"""

from __future__ import annotations

from alembic import op

revision = "0019_cpu"
down_revision = "0018"
branch_labels = None
depends_on = None


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if not _postgresql():
        return
    op.execute("ALTER TABLE cases SET (fillfactor = 70)")
    op.execute("ALTER TABLE events DROP CONSTRAINT IF EXISTS events_pkey")


def downgrade() -> None:
    if not _postgresql():
        return
    op.execute("ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (id)")
    op.execute("ALTER TABLE cases RESET (fillfactor)")
