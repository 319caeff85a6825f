"""cron firings: a claimed firing is kept until its run exists

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('crons', schema=None) as batch_op:
        batch_op.add_column(sa.Column('firing_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('firing_until', sa.DateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('crons', schema=None) as batch_op:
        batch_op.drop_column('firing_until')
        batch_op.drop_column('firing_at')
