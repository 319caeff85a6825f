"""Migrations on each backend: what schema.py declares is what the migrations build,
and a database made by an earlier revision keeps its rows through the upgrade."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from conftest import BACKENDS
from runlane.service.crons import firing_user
from runlane.store.crons import CronStore
from runlane.store.database import Database
from runlane.store.migrate import alembic_config, upgrade
from runlane.store.schema import metadata


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own (the migrations start from nothing)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.sqlite'}"
        return
    from cluster import create_database, drop_database, require_services

    require_services(redis=False, tests="PostgreSQL migration tests")
    url = create_database()
    try:
        yield url
    finally:
        drop_database(url)


async def test_migrations_build_what_the_schema_declares(database_url: str) -> None:
    db = Database(database_url)
    try:
        upgrade(db.engine)
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == [], diff
    finally:
        await db.close()


async def test_a_cron_made_before_0008_keeps_firing_as_its_creator(database_url: str) -> None:
    """0008 adds crons.auth_user (the user a cron's runs run as). A cron created
    before it has none: its runs run as its creator's identity alone (the
    reference server's SimpleUser), not as nobody."""
    db = Database(database_url)
    try:
        with db.engine.connect() as conn:
            command.upgrade(alembic_config(conn), "0007")
            conn.commit()
        now = datetime.datetime.now(datetime.UTC)
        old = {"cron_id": str(uuid.uuid4()), "assistant_id": "a", "thread_id": None,
               "schedule": "* * * * *", "payload": "{}", "metadata": "{}",
               "user_id": "alice", "owner": "alice", "enabled": True, "end_time": None,
               "next_run_date": now, "created_at": now, "updated_at": now}
        anonymous = {**old, "cron_id": str(uuid.uuid4()), "user_id": None, "owner": None}
        columns = ", ".join(old)
        values = ", ".join(f":{k}" for k in old)
        with db.engine.begin() as conn:
            for row in (old, anonymous):
                conn.execute(sa.text(f"INSERT INTO crons ({columns}) VALUES ({values})"), row)
        upgrade(db.engine)
        crons = CronStore(db)
        cron = await crons.get(old["cron_id"])
        assert cron is not None and cron.auth_user is None and cron.owner == "alice"
        assert firing_user(cron) == {"identity": "alice"}
        unowned = await crons.get(anonymous["cron_id"])
        assert unowned is not None and firing_user(unowned) is None
        # A cron created since keeps its creator whole.
        user = {"identity": "bob", "permissions": ["read"], "org": "x"}
        await crons.insert({**old, "cron_id": str(uuid.uuid4()), "payload": {},
                            "metadata": {}, "user_id": "bob", "owner": "bob",
                            "auth_user": user})
        [bobs] = await crons.search(owner="bob")
        assert bobs.auth_user == user and firing_user(bobs) == user
    finally:
        await db.close()
