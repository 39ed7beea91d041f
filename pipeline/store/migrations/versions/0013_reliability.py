"""token destination, takedown truth

- `api_tokens.destination`:

A partner, police or provider token names the destination (its key in
rules/destinations.yaml) it stands for; the API lets it act only on cases with a
notice to that destination. Tokens issued before have none and act on no case
until reissued with one (`hotline tokens add LABEL --scope ... --destination KEY`).
- `cases.gone_before_notice_at`: the content was unreachable before the first notice
  (the trace found no reachable host and no check ever saw it): its own outcome, never
  a removal after notice (`removed_at` stays empty, so no NTD figure counts it).
- `takedown_watches.inconclusive`: consecutive checks that could not tell (the host
  answers the hotline's resolver with non-global addresses only).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import pipeline.store.db

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("destination", sa.String(length=120), nullable=True))
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("gone_before_notice_at", pipeline.store.db.UTCDateTime(timezone=True),
                                   nullable=True))
    with op.batch_alter_table("takedown_watches") as batch:
        batch.add_column(sa.Column("inconclusive", sa.Integer(), nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("takedown_watches") as batch:
        batch.drop_column("inconclusive")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("gone_before_notice_at")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("destination")
