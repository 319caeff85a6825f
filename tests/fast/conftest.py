"""Fixtures of the fast tier: the real Store on each backend, in this process.

No `runlane serve` process is started here: the root conftest's server fixtures are
not autouse, so they start only for tests that ask for them, and no test of this
tier does. PostgreSQL gets one database for the whole session (created and dropped
as the e2e cluster does, see cluster.py); every test starts from empty tables, since
a claim or a reap looks at every run in the database, not only the test's own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Connection

from conftest import BACKENDS
from fast.support import install_assistant
from runlane.store import Store
from runlane.store.schema import (
    idempotency_keys,
    run_restore_points,
    run_tombstones,
    runs,
    threads,
)

FAST_TIER = Path(__file__).parent
# The root conftest's fixtures that start `runlane serve` processes (directly or not).
SERVER_FIXTURES = frozenset({"server", "fresh_server", "client", "http"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep the tier's promise: a fast test that asks for a server is a usage error."""
    for item in items:
        if FAST_TIER in item.path.parents:
            wanted = SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
            if wanted:
                raise pytest.UsageError(
                    f"{item.nodeid} uses {', '.join(sorted(wanted))}: the fast tier starts "
                    "no server (move the test next to the e2e tests in tests/)")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database on the machine's PostgreSQL, dropped at the end. Skipped with
    the reason when PostgreSQL is unreachable; failed under RUNLANE_REQUIRE_SERVICES=1."""
    from cluster import create_database, drop_database, require_services

    require_services(redis=False, tests="PostgreSQL store tests")
    url = create_database()
    yield url
    drop_database(url)


@pytest.fixture(scope="session", params=BACKENDS)
async def session_store(request: pytest.FixtureRequest,
                        tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('fast-store') / 'runlane.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_url")
    store = Store(url)
    await store.setup()
    await install_assistant(store)
    yield store
    await store.close()


def _empty_tables(conn: Connection) -> None:
    for table in (runs, run_tombstones, threads, idempotency_keys, run_restore_points):
        conn.execute(sa.delete(table))


@pytest.fixture
async def store(session_store: Store) -> Store:
    """The session's Store for this backend, with no threads, runs, tombstones or
    idempotency keys."""
    await session_store.db.run(_empty_tables)
    return session_store
