"""The store of `/store/items` and of graphs' `BaseStore` (long-term memory): langgraph's
own implementations, opened next to the checkpointer.

- SQLite deployments: `AsyncSqliteStore` (langgraph-checkpoint-sqlite) in a file of
  its own beside runlane's database (`<name>-store.sqlite`), so store writes do not
  queue behind run bookkeeping for one write lock.
- PostgreSQL deployments: `AsyncPostgresStore` (langgraph-checkpoint-postgres) on a
  small connection pool in runlane's database; its migrations run under an advisory
  lock so workers starting together do not run them together.

Item TTL (minutes, as the SDK sends it) is the library's: each worker sweeps expired
items every few seconds (langgraph.json `store.ttl.sweep_interval_minutes`), and
PostgreSQL also hides expired items before the sweep. `store.ttl` also sets the default
TTL of new items and whether reads refresh it.

Semantic search (`store.index`) is the library's too: the store embeds each item's
`fields` when it is put and ranks `search(query=...)` by cosine similarity, with
sqlite-vec on SQLite (exact, over the namespace's vectors) and pgvector on PostgreSQL
(an HNSW index; exact above pgvector's 2,000 dimensions for an index).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langgraph.store.base import BaseStore, TTLConfig
from sqlalchemy.engine import make_url

from runlane.backoff import Backoff
from runlane.errors import ConfigError
from runlane.loop_task import cancel_and_wait
from runlane.observability import logs
from runlane.owners import Owner
from runlane.store.checkpoints import try_advisory_lock
from runlane.store.database import sqlite_file
from runlane.store.owner_scope import scoped
from runlane.store_config import StoreConfig

log = logging.getLogger("runlane.items")

# pgvector indexes (HNSW) take vectors of at most this many dimensions; longer ones are
# searched exactly (no ANN index), which the store supports as "flat".
PGVECTOR_INDEX_MAX_DIMS = 2000
_PG_SETUP_LOCK = 0x72756E6C73746F  # advisory lock: one worker migrates the store tables


def store_path(database_url: str) -> str:
    """SQLite: the store's file beside the database, `<name>-store.sqlite`."""
    path = sqlite_file(database_url)
    if path is None or path == ":memory:":
        return ":memory:"
    return str(Path(path).with_name(Path(path).stem + "-store.sqlite"))


async def _fractional_ttl_minutes(conn: Any) -> None:
    """langgraph's PostgreSQL store keeps an item's TTL in an INT column while taking
    (and writing) fractions of a minute: a TTL of 0.5 is stored as 0, and the first
    read that refreshes it sets the item to expire at once. Made a double precision
    column, as SQLite keeps it (REAL), so a TTL means the same on both (idempotent:
    a no-op once done)."""
    found = await (await conn.execute(
        "SELECT data_type FROM information_schema.columns WHERE table_schema = "
        "current_schema() AND table_name = 'store' AND column_name = 'ttl_minutes'")).fetchone()
    if found is not None and found[0] != "double precision":
        await conn.execute("ALTER TABLE store ALTER COLUMN ttl_minutes TYPE double precision")


def sqlite_connector(path: str, extensions: bool) -> Callable[[], sqlite3.Connection]:
    """How the store's SQLite connection is opened. Semantic search loads sqlite-vec,
    a loadable extension; a Python built without extension loading (pyenv's default)
    opens it with pysqlite3 instead (pysqlite3-binary: its own SQLite, loading
    allowed; same file format and the same DB-API)."""
    module: Any = sqlite3
    if extensions and not hasattr(sqlite3.Connection, "enable_load_extension"):
        try:
            module = importlib.import_module("pysqlite3.dbapi2")
        except ImportError:
            raise ConfigError(
                "store.index on SQLite loads the sqlite-vec extension, and this Python's "
                "sqlite3 cannot load extensions: pip install pysqlite3-binary (or use a "
                "Python built with --enable-loadable-sqlite-extensions)") from None
    return lambda: module.connect(path, isolation_level=None)


class ItemStore:
    """Opens, sweeps and closes the deployment's langgraph store."""

    def __init__(self, database_url: str, pool_size: int = 1,
                 config: StoreConfig | None = None) -> None:
        """`pool_size`: PostgreSQL connections at most (opened when needed). `config`:
        langgraph.json's `store` (index with its embeddings loaded, TTL defaults)."""
        self.database_url = database_url
        self.pool_size = pool_size
        self.config = config or StoreConfig()
        self.store: BaseStore | None = None
        self._close: list[Any] = []
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def indexed(self) -> bool:
        """Whether semantic search (`query`, `index` fields) is configured."""
        return self.config.index is not None

    @property
    def ttl(self) -> TTLConfig:
        ttl = self.config.ttl
        config: TTLConfig = {"refresh_on_read": ttl.refresh_on_read, "omit_expired": True}
        if ttl.default_ttl is not None:
            config["default_ttl"] = ttl.default_ttl
        return config

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
        sweeper, self._sweeper = self._sweeper, None
        await cancel_and_wait(sweeper)
        for close in reversed(self._close):
            with logs.failure_logged(log, "closing the item store (%s)", close):
                await close()
        self._close.clear()
        self.store = None

    async def _sweep_loop(self) -> None:
        # Periodic already; the backoff keeps an outage to one log line.
        outage = Backoff("sweeping expired store items", log)
        while True:
            await asyncio.sleep(self.config.ttl.sweep_seconds)
            try:
                await self.store.sweep_ttl()  # type: ignore[union-attr]  # set up before the loop
            except Exception as exc:  # noqa: BLE001 - database away? the next sweep retries
                outage.failed(exc)
            else:
                outage.succeeded()

    async def _open_sqlite(self) -> BaseStore:
        import aiosqlite
        from langgraph.store.sqlite.aio import AsyncSqliteStore

        path = store_path(self.database_url)
        if path != ":memory:":
            # A blocking call in a coroutine, but once, at startup.
            directory = os.path.dirname(os.path.abspath(path))  # noqa: ASYNC240
            os.makedirs(directory, exist_ok=True)
        conn = await aiosqlite.Connection(sqlite_connector(path, self.indexed),
                                          iter_chunk_size=64)
        self._close.append(conn.close)
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")
        await conn.execute("PRAGMA busy_timeout=5000")
        index: Any = None
        if self.config.index is not None:
            index = self.config.index.for_langgraph()
            # langgraph-checkpoint-sqlite reads the fields to embed from `text_fields`
            # (langgraph's IndexConfig, and its PostgreSQL store, say `fields`); given
            # `fields` alone it embeds the whole value.
            index["text_fields"] = index["fields"]
        store = AsyncSqliteStore(conn, ttl=self.ttl, index=index)
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
        index: Any = None
        if self.config.index is not None:
            index = self.config.index.for_langgraph()
            if self.config.index.dims > PGVECTOR_INDEX_MAX_DIMS:
                index["ann_index_config"] = {"kind": "flat"}
        store = AsyncPostgresStore(pool, ttl=self.ttl, index=index)  # type: ignore[arg-type]
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as lock:
            # Poll rather than block: a waiting pg_advisory_lock holds a snapshot that
            # a concurrent CREATE INDEX CONCURRENTLY would wait for (see checkpoints).
            while not await try_advisory_lock(lock, _PG_SETUP_LOCK):  # noqa: ASYNC110 - see above
                await asyncio.sleep(0.1)
            try:
                try:
                    await store.setup()
                except psycopg.Error as exc:
                    if index is not None and "vector" in str(exc):
                        raise ConfigError(
                            "langgraph.json store.index on PostgreSQL needs the pgvector "
                            "extension in the database server (Debian: apt-get install "
                            f"postgresql-<version>-pgvector; see .ci/install-pgvector): {exc}"
                        ) from exc
                    raise
                await _fractional_ttl_minutes(lock)
            finally:
                await lock.execute("SELECT pg_advisory_unlock(%s)", (_PG_SETUP_LOCK,))
        return store
