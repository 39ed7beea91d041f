"""search indexes: one for each filter of the console's case search

The console's search (`pipeline.web.console.search`) filters cases by state,
category, hosting country and destination, each within a date range and newest
first; case and report references, hosts, registered domains and URLs (through the
dedup key) already have their indexes. Each index here leads with its filter and
ends with `received_at`, so a page of a filter is an index range scan at any size.

Revision ID: 0018
Revises: 0012
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

INDEXES = [
    ("ix_cases_received", "cases", ["received_at", "id"]),
    ("ix_cases_state_received", "cases", ["state", "received_at"]),
    ("ix_cases_category_received", "cases", ["category", "received_at"]),
    ("ix_cases_country_received", "cases", ["hosting_country", "received_at"]),
    ("ix_notices_destination", "notices", ["destination", "case_id"]),
]


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
