"""checkpoint write guard: a run's checkpoint write lands only while the run is running on the writing worker (PostgreSQL)

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# Called as the last statement of each checkpoint write's transaction (the saver's
# pipeline: no extra round trip); see store/checkpoint_fence.py. FOR SHARE holds the
# run's row until the write commits, so a reap (an UPDATE of the row) is ordered
# entirely before the write (which then fails here) or entirely after it.
GUARD = """
CREATE OR REPLACE FUNCTION runlane_guard_run_write(p_run_id text, p_worker_id text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM runs
     WHERE run_id = p_run_id AND worker_id = p_worker_id AND status = 'running'
       FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'run % is no longer running on worker %', p_run_id, p_worker_id
            USING ERRCODE = 'RLF01';
    END IF;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(GUARD)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS runlane_guard_run_write(text, text)")
