"""Schema migrations (Alembic), applied at start-up.

Several workers may start at once against one PostgreSQL database: the upgrade runs
under a PostgreSQL advisory lock, so exactly one applies each revision and the others
wait, then find nothing left to do.
"""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
_ADVISORY_LOCK_KEY = 0x72756E6C616E65  # "runlane"


def alembic_config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            # Poll rather than block: a waiter blocked in pg_advisory_lock would deadlock
            # (undetected) with a migration that runs CREATE INDEX CONCURRENTLY.
            while not conn.scalar(sa.text("SELECT pg_try_advisory_lock(:key)"),
                                  {"key": _ADVISORY_LOCK_KEY}):
                conn.commit()
                time.sleep(0.1)
            conn.commit()
        try:
            command.upgrade(alembic_config(conn), "head")
            conn.commit()
        finally:
            if postgres:
                conn.execute(
                    sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _ADVISORY_LOCK_KEY}
                )
                conn.commit()
