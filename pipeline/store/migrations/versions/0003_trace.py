"""hosting-origin tracing

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import pipeline.store.db  # noqa: F401

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('traces',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('case_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('url_kind', sa.String(length=16), nullable=True),
    sa.Column('started_at', pipeline.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('traced_at', pipeline.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('outcome', sa.String(length=40), nullable=False),
    sa.Column('origin_unknown', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('resolver', sa.String(length=80), nullable=True),
    sa.Column('addresses', sa.JSON(), nullable=False),
    sa.Column('cname_chain', sa.JSON(), nullable=False),
    sa.Column('nameservers', sa.JSON(), nullable=False),
    sa.Column('registrar', sa.String(length=255), nullable=True),
    sa.Column('registrar_abuse_email', sa.String(length=320), nullable=True),
    sa.Column('behind_cdn', sa.Boolean(), nullable=False),
    sa.Column('cdn_name', sa.String(length=120), nullable=True),
    sa.Column('hosting_country', sa.String(length=2), nullable=True),
    sa.Column('country_source', sa.String(length=20), nullable=True),
    sa.Column('hosting_asn', sa.Integer(), nullable=True),
    sa.Column('hosting_org', sa.String(length=255), nullable=True),
    sa.Column('hosting_abuse_email', sa.String(length=320), nullable=True),
    sa.Column('dns_raw', sa.JSON(), nullable=False),
    sa.Column('rdap_raw', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_traces_case', 'traces', ['case_id', 'traced_at'], unique=False)
    op.create_table('trace_answers',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('received_at', pipeline.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('body', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('key')
    )


def downgrade() -> None:
    op.drop_table('trace_answers')
    op.drop_index('ix_traces_case', table_name='traces')
    op.drop_table('traces')
