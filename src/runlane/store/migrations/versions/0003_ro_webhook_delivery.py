"""webhook delivery bookkeeping: attempts, next attempt / claim expiry, state index

Revision ID: 0003_ro
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003_ro'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('webhook_attempts', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('webhook_next_at', sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.create_index('ix_runs_webhook_state', ['webhook_state'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('ix_runs_webhook_state')
        batch_op.drop_column('webhook_next_at')
        batch_op.drop_column('webhook_attempts')
