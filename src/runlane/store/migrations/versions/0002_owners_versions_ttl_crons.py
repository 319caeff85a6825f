"""owners, assistant versions, thread TTL, delayed runs, webhooks, crons

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 06:02:47.274816
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('assistant_versions',
    sa.Column('assistant_id', sa.String(length=36), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('graph_id', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('config', sa.Text(), nullable=False),
    sa.Column('context', sa.Text(), nullable=False),
    sa.Column('metadata', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('assistant_id', 'version')
    )
    op.create_table('crons',
    sa.Column('cron_id', sa.String(length=36), nullable=False),
    sa.Column('assistant_id', sa.String(length=36), nullable=False),
    sa.Column('thread_id', sa.String(length=36), nullable=True),
    sa.Column('schedule', sa.Text(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('metadata', sa.Text(), nullable=False),
    sa.Column('user_id', sa.Text(), nullable=True),
    sa.Column('owner', sa.Text(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('end_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_run_date', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('cron_id')
    )
    with op.batch_alter_table('crons', schema=None) as batch_op:
        batch_op.create_index('ix_crons_next_run_date', ['next_run_date'], unique=False)
        batch_op.create_index('ix_crons_owner', ['owner'], unique=False)

    with op.batch_alter_table('assistants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner', sa.Text(), nullable=True))
        batch_op.create_index('ix_assistants_owner', ['owner'], unique=False)

    with op.batch_alter_table('run_tombstones', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner', sa.Text(), nullable=True))

    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('not_before', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('webhook', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('webhook_state', sa.String(length=16), nullable=True))

    with op.batch_alter_table('threads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('ttl', sa.Text(), nullable=True))
        batch_op.create_index('ix_threads_expires_at', ['expires_at'], unique=False)
        batch_op.create_index('ix_threads_owner', ['owner'], unique=False)

    # Every existing assistant's current state becomes its version row.
    op.execute(
        "INSERT INTO assistant_versions (assistant_id, version, graph_id, name, description,"
        " config, context, metadata, created_at)"
        " SELECT assistant_id, version, graph_id, name, description, config, context,"
        " metadata, updated_at FROM assistants"
    )



def downgrade() -> None:
    with op.batch_alter_table('threads', schema=None) as batch_op:
        batch_op.drop_index('ix_threads_owner')
        batch_op.drop_index('ix_threads_expires_at')
        batch_op.drop_column('ttl')
        batch_op.drop_column('expires_at')
        batch_op.drop_column('owner')

    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('webhook_state')
        batch_op.drop_column('webhook')
        batch_op.drop_column('not_before')
        batch_op.drop_column('owner')

    with op.batch_alter_table('run_tombstones', schema=None) as batch_op:
        batch_op.drop_column('owner')

    with op.batch_alter_table('assistants', schema=None) as batch_op:
        batch_op.drop_index('ix_assistants_owner')
        batch_op.drop_column('owner')

    with op.batch_alter_table('crons', schema=None) as batch_op:
        batch_op.drop_index('ix_crons_owner')
        batch_op.drop_index('ix_crons_next_run_date')

    op.drop_table('crons')
    op.drop_table('assistant_versions')
