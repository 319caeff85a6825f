"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        # Numbers runs in creation order across workers (SQLite numbers in-process).
        op.execute(sa.schema.CreateSequence(sa.Sequence("runs_seq_seq")))
    op.create_table('assistants',
    sa.Column('assistant_id', sa.String(length=36), nullable=False),
    sa.Column('graph_id', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('config', sa.Text(), nullable=False),
    sa.Column('context', sa.Text(), nullable=False),
    sa.Column('metadata', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('assistant_id')
    )
    op.create_table('run_tombstones',
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('thread_id', sa.String(length=36), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('run', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('run_id')
    )
    with op.batch_alter_table('run_tombstones', schema=None) as batch_op:
        batch_op.create_index('ix_tombstones_thread', ['thread_id'], unique=False)

    op.create_table('runs',
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False,
              server_default=sa.text("nextval('runs_seq_seq')") if postgres else None),
    sa.Column('thread_id', sa.String(length=36), nullable=False),
    sa.Column('assistant_id', sa.String(length=36), nullable=False),
    sa.Column('graph_id', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('multitask_strategy', sa.String(length=16), nullable=False),
    sa.Column('metadata', sa.Text(), nullable=False),
    sa.Column('kwargs', sa.Text(), nullable=False),
    sa.Column('cancel_action', sa.String(length=16), nullable=True),
    sa.Column('cancel_reason', sa.String(length=32), nullable=True),
    sa.Column('stop_reason', sa.String(length=32), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('worker_id', sa.Text(), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('run_id')
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index('ix_runs_status_seq', ['status', 'seq'], unique=False)
        batch_op.create_index('ix_runs_thread_created', ['thread_id', 'seq'], unique=False)
        batch_op.create_index('uq_runs_one_running_per_thread', ['thread_id'], unique=True, sqlite_where=sa.text("status = 'running'"), postgresql_where=sa.text("status = 'running'"))

    op.create_table('threads',
    sa.Column('thread_id', sa.String(length=36), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('metadata', sa.Text(), nullable=False),
    sa.Column('config', sa.Text(), nullable=False),
    sa.Column('values', sa.Text(), nullable=True),
    sa.Column('interrupts', sa.Text(), nullable=False),
    sa.Column('temporary', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('thread_id')
    )


def downgrade() -> None:
    op.drop_table('threads')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('uq_runs_one_running_per_thread', sqlite_where=sa.text("status = 'running'"), postgresql_where=sa.text("status = 'running'"))
        batch_op.drop_index('ix_runs_thread_created')
        batch_op.drop_index('ix_runs_status_seq')

    op.drop_table('runs')
    with op.batch_alter_table('run_tombstones', schema=None) as batch_op:
        batch_op.drop_index('ix_tombstones_thread')

    op.drop_table('run_tombstones')
    op.drop_table('assistants')
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sa.schema.DropSequence(sa.Sequence("runs_seq_seq")))
