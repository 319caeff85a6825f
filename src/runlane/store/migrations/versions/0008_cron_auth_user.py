"""cron auth user: the user a cron's runs run as, kept with the cron

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('crons', schema=None) as batch_op:
        batch_op.add_column(sa.Column('auth_user', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('crons', schema=None) as batch_op:
        batch_op.drop_column('auth_user')
