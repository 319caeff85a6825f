"""The store of `/store/items` and of graphs' `BaseStore` (long-term memory): langgraph's
own implementations, opened next to the checkpointer.

- SQLite deployments: `AsyncSqliteStore` (langgraph-checkpoint-sqlite) in a file of
  its own beside runlane's database (`<name>-store.sqlite`), so store writes do not
  queue behind run bookkeeping for one write lock.
- PostgreSQL deployments: `AsyncPostgresStore` (langgraph-checkpoint-postgres) on a
  small connection pool in runlane's database; its migrations run under an advisory
  lock so workers starting together do not run them together.

Item TTL (minutes, as the SDK sends it) is the library's: each worker sweeps expired
items every few seconds, and PostgreSQL also hides expired items before the sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from langgraph.store.base import BaseStore, TTLConfig
from sqlalchemy.engine import make_url

from runlane.observability import logs
from runlane.owners import Owner
from runlane.store.checkpoints import try_advisory_lock
from runlane.store.database import sqlite_file
from runlane.store.owner_scope import scoped

log = logging.getLogger("runlane.items")

TTL: TTLConfig = {"refresh_on_read": True, "omit_expired": True}
SWEEP_SECONDS = 5.0
_PG_SETUP_LOCK = 0x72756E6C73746F  # advisory lock: one worker migrates the store tables


def store_path(database_url: str) -> str:
    """SQLite: the store's file beside the database, `<name>-store.sqlite`."""
    path = sqlite_file(database_url)
    if path is None or path == ":memory:":
        return ":memory:"
    return str(Path(path).with_name(Path(path).stem + "-store.sqlite"))


class ItemStore:
    """Opens, sweeps and closes the deployment's langgraph store."""

    def __init__(self, database_url: str, pool_size: int = 1) -> None:
        """`pool_size`: PostgreSQL connections at most (opened when needed)."""
        self.database_url = database_url
        self.pool_size = pool_size
        self.store: BaseStore | None = None
        self._close: list[Any] = []
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def is_postgres(self) -> bool:
        return make_url(self.database_url).get_backend_name() == "postgresql"

    async def setup(self) -> BaseStore:
        self.store = await (self._open_postgres() if self.is_postgres else self._open_sqlite())
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="runlane-store-ttl")
        return self.store

    def for_owner(self, owner: Owner) -> BaseStore:
        """The store as `owner` sees it (see owner_scope)."""
        assert self.store is not None, "ItemStore.setup() first"
        return scoped(self.store, owner)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        for close in reversed(self._close):
            with logs.failure_logged(log, "closing the item store (%s)", close):
                await close()
        self._close.clear()
        self.store = None

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await self.store.sweep_ttl()  # type: ignore[union-attr]  # set up before the loop
            except Exception as exc:  # noqa: BLE001 - database away? the next sweep retries
                log.warning("sweeping expired store items failed: %s", exc)

    async def _open_sqlite(self) -> BaseStore:
        import aiosqlite
        from langgraph.store.sqlite.aio import AsyncSqliteStore

        path = store_path(self.database_url)
        if path != ":memory:":
            # A blocking call in a coroutine, but once, at startup.
            directory = os.path.dirname(os.path.abspath(path))  # noqa: ASYNC240
            os.makedirs(directory, exist_ok=True)
        conn = await aiosqlite.connect(path, isolation_level=None)
        self._close.append(conn.close)
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")
        await conn.execute("PRAGMA busy_timeout=5000")
        store = AsyncSqliteStore(conn, ttl=TTL)
        # AsyncSqliteStore writes and sweeps TTLs (its SQL is SqliteStore's) but does
        # not declare it, and BaseStore then refuses every `ttl` before it gets there.
        store.supports_ttl = True
        await store.setup()
        return store

    async def _open_postgres(self) -> BaseStore:
        import psycopg
        from langgraph.store.postgres.aio import AsyncPostgresStore
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        url = make_url(self.database_url).set(drivername="postgresql").render_as_string(
            hide_password=False)
        pool = AsyncConnectionPool(
            # Small and lazy: PostgreSQL's connections are shared by every worker.
            url, min_size=0, max_size=self.pool_size, open=False,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
            # Checked at every checkout: a connection cut by a PostgreSQL restart is
            # replaced, not handed to a request (see checkpoints.PostgresCheckpoints).
            check=AsyncConnectionPool.check_connection,
        )
        await pool.open(wait=True, timeout=10)
        self._close.append(pool.close)
        # The pool's rows are dicts (row_factory in `kwargs`), which its type cannot say.
        store = AsyncPostgresStore(pool, ttl=TTL)  # type: ignore[arg-type]
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as lock:
            # Poll rather than block: a waiting pg_advisory_lock holds a snapshot that
            # a concurrent CREATE INDEX CONCURRENTLY would wait for (see checkpoints).
            while not await try_advisory_lock(lock, _PG_SETUP_LOCK):  # noqa: ASYNC110 - see above
                await asyncio.sleep(0.1)
            try:
                await store.setup()
            finally:
                await lock.execute("SELECT pg_advisory_unlock(%s)", (_PG_SETUP_LOCK,))
        return store
