"""token destination: an outside party's token acts only for its destination (issue 18)

A partner, police or provider token names the destination (its key in
rules/destinations.yaml) it stands for; the API lets it act only on cases with a
notice to that destination. Tokens issued before have none and act on no case
until reissued with one (`hotline tokens add LABEL --scope ... --destination KEY`).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("destination", sa.String(length=120), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("destination")
