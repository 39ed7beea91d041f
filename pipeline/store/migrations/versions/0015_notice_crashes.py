"""notices.crashes: claims lost to a dead worker, counted apart from attempts

`attempts` counts deliveries the channel refused or failed; a claim whose worker died
(or whose lease ran out) is counted in `crashes` and never brings a notice nearer to
the dead letters.

Revision ID: 0015
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("crashes", sa.Integer(), nullable=False,
                                      server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.drop_column("crashes")
