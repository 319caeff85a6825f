"""thread holds: a change to a thread's checkpoints outside a run holds off its runs

Revision ID: 0004_ro
Revises: 0003_ro
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004_ro'
down_revision = '0003_ro'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('threads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hold_token', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('hold_until', sa.DateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('threads', schema=None) as batch_op:
        batch_op.drop_column('hold_until')
        batch_op.drop_column('hold_token')
