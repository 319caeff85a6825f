"""Where SQL runs: each transaction is a plain function `fn(conn)` of SQLAlchemy Core
statements, executed inside BEGIN ... COMMIT as one unit.

SQLite (one process) runs transactions inline, on the event loop. SQLite allows one
writer at a time, and our transactions are short (an indexed read or a
compare-and-set of a row or two, with WAL and synchronous=NORMAL: no fsync per
commit), so handing each one to a database thread cost more than executing it: the
thread hop, the future and the GIL hand-over were the largest runlane-side cost of a
run. Inline, every transaction is serialized by the loop itself, SQLITE_BUSY never
happens between our own statements, and nothing queues behind a backlog on a single
database thread (a cancel commits as soon as the loop reaches it). The price: a
slow statement (a large history or search) holds the loop for its duration.

PostgreSQL runs transactions on a few dedicated threads (`pool_size`), each with one
connection kept open; statements there wait on the network and on row locks, which
must not stall the loop. Concurrent transactions (from this process or other
workers) are kept correct by the statements themselves: compare-and-set updates, row
locks and a unique index (see runs.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection, event

from runlane.errors import DatabaseUnavailable
from runlane.observability import logs, metrics
from runlane.store.sqlite_direct import DirectConnection, DirectStatements, execute_sql

log = logging.getLogger("runlane.store")
T = TypeVar("T")
# Set on the SQLite connection while a `Database.read` runs (see _configure_sqlite).
_READ_ONLY = "runlane.read_only"


def sqlite_file(url: str) -> str | None:
    """The file of a SQLite URL (`sqlite:///x`, `sqlite+aiosqlite:///x`), else None."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    return parsed.database or ":memory:"


def sync_url(url: str) -> sa.URL:
    """The URL with the driver runlane uses on its database threads."""
    parsed = sa.engine.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite")
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    raise ValueError(
        f"unsupported database URL {url!r}: use sqlite:///path/to/file.sqlite or "
        "postgresql://user@host:port/dbname"
    )


class Database:
    def __init__(self, url: str, pool_size: int = 3,
                 direct: Iterable[sa.Executable] = ()) -> None:
        """`direct`: statements a SQLite transaction executes straight on the sqlite3
        connection (see sqlite_direct.py); ignored on PostgreSQL."""
        self.url = sync_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            path = self.url.database
            if path and path != ":memory:":
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self.engine = sa.create_engine(self.url, poolclass=sa.pool.StaticPool,
                                           connect_args={"check_same_thread": False})
            _configure_sqlite(self.engine)
            threads = 0  # transactions run inline on the event loop
            self._direct: DirectStatements | None = DirectStatements(
                self.engine.dialect, direct)
        else:
            self.engine = sa.create_engine(
                self.url, pool_size=pool_size, max_overflow=0, pool_pre_ping=True,
                connect_args={"connect_timeout": 5},
            )
            threads = pool_size
            self._direct = None

            @event.listens_for(self.engine, "after_cursor_execute")
            def _ran(*_args: Any) -> None:
                self._local.ran = True  # see _transaction
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="runlane-db"
        ) if threads else None
        # Each database thread's connection (SQLite: the one connection), opened on
        # first use and kept: checking a connection out of a pool costs more than a
        # small transaction.
        self._local = threading.local()
        self._all: list[Connection] = []

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """`fn` as one transaction."""
        return await self._execute(fn, write=True)

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """`fn`, a read of ONE statement. On SQLite it executes without BEGIN
        IMMEDIATE/COMMIT: a single statement is atomic by itself, and this process is
        the database's only writer, with every transaction finished before the loop
        moves on, so it reads the last commit. That spares taking (and releasing) the
        write lock for the reads every run creation and every `runs.get` make. On
        PostgreSQL it runs in autocommit (see `autocommit`)."""
        return await self._execute(fn, write=False, autocommit=True)

    async def autocommit(self, fn: Callable[[Connection], T]) -> T:
        """`fn`, whose statements are each atomic on their own (a compare-and-set, a
        read), so that no transaction needs to span them. On PostgreSQL each commits
        by itself: no BEGIN and COMMIT, two round trips of three for a one-statement
        transaction (a statement that fails rolls back alone). On SQLite a
        transaction, as `run`."""
        return await self._execute(fn, write=True, autocommit=True)

    async def _execute(self, fn: Callable[[Connection], T], write: bool,
                       autocommit: bool = False) -> T:
        try:
            if self._threads is None:
                return self._transaction(fn, write)
            return await asyncio.get_running_loop().run_in_executor(
                self._threads, functools.partial(self._transaction, fn, write, autocommit))
        except DatabaseUnavailable:
            metrics.store_error("DatabaseUnavailable")
            raise
        except sa.exc.SQLAlchemyError as exc:  # not the store's own NotFound/Conflict
            metrics.store_error(type(exc).__name__)
            raise

    def _connection(self) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.invalidated:
            conn = self._connect()
        return conn

    def _connect(self) -> Connection:
        try:
            conn = self.engine.connect()
        except sa.exc.OperationalError as exc:
            raise DatabaseUnavailable(str(exc.orig or exc)) from exc
        self._local.conn = conn
        self._local.used = False  # no transaction committed on it yet
        self._all.append(conn)
        return conn

    def _transaction(self, fn: Callable[[Connection], T], write: bool = True,
                     autocommit: bool = False) -> T:
        conn = self._connection()
        if self._direct is not None:
            with self._cut_off(conn):
                return self._sqlite_transaction(conn, self._direct, fn, write)
        used = getattr(self._local, "used", False)
        try:
            return self._pg_transaction(conn, fn, autocommit)
        except DatabaseUnavailable:
            if self._local.ran or not used:
                raise
        # A kept connection that PostgreSQL cut while it sat idle (a restart) fails
        # at its transaction's first statement: nothing of it ran, so it is sent
        # again once, on a new connection, rather than answered as a 503 (each
        # database thread would otherwise fail one request after every restart).
        return self._pg_transaction(self._connect(), fn, autocommit)

    def _pg_transaction(self, conn: Connection, fn: Callable[[Connection], T],
                        autocommit: bool = False) -> T:
        self._local.ran = False  # set by the first statement that completes
        with self._cut_off(conn):
            if autocommit:
                result = self._autocommit(conn, fn)
            else:
                with conn.begin():
                    result = fn(conn)
        self._local.used = True
        return result

    @contextlib.contextmanager
    def _cut_off(self, conn: Connection) -> Iterator[None]:
        """A lost connection (the database gone or restarted) as `DatabaseUnavailable`,
        the connection forgotten; any other database error as it is."""
        try:
            yield
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            if exc.connection_invalidated or conn.invalidated or _is_disconnect(exc):
                self._drop(conn)
                raise DatabaseUnavailable(str(exc.orig or exc)) from exc
            raise

    def _drop(self, conn: Connection) -> None:
        """Forget a connection the database cut (the next transaction opens another)."""
        self._local.conn = None
        conn.invalidate()
        with contextlib.suppress(ValueError):
            self._all.remove(conn)

    @staticmethod
    def _autocommit(conn: Connection, fn: Callable[[Connection], T]) -> T:
        """PostgreSQL: `fn` with psycopg in autocommit mode, so that it sends no BEGIN
        (SQLAlchemy's own transaction object still wraps the call; its commit finds
        the server idle and psycopg sends nothing). Back to transactions after."""
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None  # an open connection's psycopg connection
        dbapi.autocommit = True
        try:
            with conn.begin():
                return fn(conn)
        finally:
            if not conn.invalidated:
                dbapi.autocommit = False

    @staticmethod
    def _sqlite_transaction(conn: Connection, direct: DirectStatements,
                            fn: Callable[[Connection], T], write: bool = True) -> T:
        """BEGIN IMMEDIATE ... COMMIT issued on sqlite3 itself: SQLAlchemy's transaction
        object cost more than the statements of a small transaction. A statement that
        SQLAlchemy executes inside (anything not in `direct`) autobegins SQLAlchemy's
        transaction object, which the begin listener maps onto the transaction already
        open (see _configure_sqlite); SQLAlchemy then ends it, and the sqlite3 one with
        it. Not `write` (see `read`): no BEGIN; a direct statement runs in autocommit,
        one through SQLAlchemy in a deferred transaction (no write lock), ended here."""
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None  # an open connection's sqlite3 connection
        if write:
            execute_sql(dbapi, "BEGIN IMMEDIATE")
        else:
            conn.info[_READ_ONLY] = True
        try:
            # A DirectConnection stands in for the Connection (see sqlite_direct.py).
            result = fn(DirectConnection(conn, direct))  # type: ignore[arg-type]
        except BaseException:
            if conn.in_transaction():
                conn.rollback()
            if dbapi.in_transaction:
                execute_sql(dbapi, "ROLLBACK")
            raise
        finally:
            conn.info.pop(_READ_ONLY, None)
        if conn.in_transaction():
            conn.commit()
        if dbapi.in_transaction:
            execute_sql(dbapi, "COMMIT")
        return result

    def _close(self) -> None:
        for conn in self._all:
            # A broken connection may refuse to close: the connections after it must
            # still be closed, and the engine is disposed anyway.
            with logs.failure_logged(log, "closing a database connection", level=logging.DEBUG):
                conn.close()
        self._all.clear()
        self.engine.dispose()

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._close)
        if self._threads is not None:
            self._threads.shutdown(wait=True)


def _is_disconnect(exc: sa.exc.DBAPIError) -> bool:
    text = str(exc.orig or exc).lower()
    return any(word in text for word in ("connection", "terminating", "server closed", "timeout"))


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
        # then writes can never be overtaken by another process's writer. Inside a
        # transaction Database already began on sqlite3, SQLAlchemy's joins it. A
        # `Database.read` only reads: no write lock.
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None  # an open connection's sqlite3 connection
        if not dbapi.in_transaction:
            conn.exec_driver_sql("BEGIN" if conn.info.get(_READ_ONLY) else "BEGIN IMMEDIATE")
