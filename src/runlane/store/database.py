"""Where SQL runs: transactions as plain functions on a dedicated database thread.

A transaction is a function `fn(conn)` of SQLAlchemy Core statements. `Database.run`
executes it inside BEGIN ... COMMIT on the database thread and hands the result back
to the event loop: one thread hop per transaction instead of one per statement,
and the event loop never blocks on I/O.

SQLite allows one writer at a time, so runlane gives it exactly one thread: every
transaction is serialized in-process and SQLITE_BUSY never happens between our own
statements. WAL with synchronous=NORMAL keeps commits cheap and durable across a
process crash (a power loss may lose the last commits, never corrupt the file).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection, event

T = TypeVar("T")


def sqlite_file(url: str) -> str | None:
    """The file of a SQLite URL (`sqlite:///x`, `sqlite+aiosqlite:///x`), else None."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    return parsed.database or ":memory:"


def sync_url(url: str) -> str:
    """The URL with the driver runlane uses on its database thread."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return str(parsed.set(drivername="sqlite"))
    raise ValueError(
        f"unsupported database URL {url!r}: this version serves SQLite "
        "(sqlite:///path/to/file.sqlite)"
    )


class Database:
    def __init__(self, url: str) -> None:
        path = sqlite_file(url)
        if path is None:
            sync_url(url)  # raises the clear error
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.engine = sa.create_engine(sync_url(url), poolclass=sa.pool.StaticPool,
                                       connect_args={"check_same_thread": False})
        _configure_sqlite(self.engine)
        self._thread = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="runlane-db"
        )
        # The database thread's one connection, opened on first use and kept: checking
        # a connection out of a pool costs more than a small transaction.
        self._conn: Connection | None = None

    async def run(self, fn: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, functools.partial(self._transaction, fn))

    def _transaction(self, fn: Callable[[Connection], T]) -> T:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = self.engine.connect()
        with self._conn.begin():
            return fn(self._conn)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self.engine.dispose()

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=True)


def _configure_sqlite(engine: sa.Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin.
        dbapi_conn.isolation_level = None
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000",
                       "foreign_keys=OFF"):
            dbapi_conn.execute(f"PRAGMA {pragma}")

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # IMMEDIATE: take the write lock up front, so a transaction that reads and
        # then writes can never be overtaken by another process's writer.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
