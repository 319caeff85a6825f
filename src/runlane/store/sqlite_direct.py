"""SQLite: the store's prebuilt statements executed directly on the sqlite3 connection.

Under load, SQLAlchemy's per-execution work (an execution context, the parameter
dict, result metadata, row objects) cost about as much server CPU as SQLite spent
executing the hot statements themselves (py-spy, 32 clients of trivial runs: 14% of
the server's CPU each). The statements every run goes through are already built once
(statements.py); here each is also compiled once for the SQLite dialect, and then
executed with the same bind and result processors SQLAlchemy would apply, so what is
written and read back is identical.

Only statements registered here take this path, inside the transaction SQLAlchemy
opened; everything else (searches, dynamic filters) goes through SQLAlchemy on the
same connection, in the same transaction. A result supports the subset of
SQLAlchemy's `Result` the store uses; anything else fails loudly.
"""

from __future__ import annotations

import collections
import keyword
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.sql.compiler import SQLCompiler

_MISSING = object()


def _row_type(keys: list[str]) -> type[tuple] | None:
    """A tuple type whose rows read like SQLAlchemy's: `row.run_id`, `row._mapping`."""
    if len(set(keys)) != len(keys) or any(
        not k.isidentifier() or keyword.iskeyword(k) or k.startswith("_") for k in keys
    ):
        return None
    base = collections.namedtuple("Row", keys)  # type: ignore[misc]  # fields known at run time
    return type("Row", (base,), {"__slots__": (), "_mapping": property(base._asdict)})


class DirectStatement:
    """One statement compiled for SQLite: its SQL, how to bind a parameter dict, how to
    decode its rows. `prepare` returns None for a shape it cannot execute exactly as
    SQLAlchemy would (then SQLAlchemy executes it)."""

    __slots__ = ("_binds", "_decoders", "_returns_rows", "_row_type", "sql")
    sql: str
    _binds: tuple[tuple[str, Callable[[Any], Any] | None, Any], ...]
    _returns_rows: bool
    _decoders: tuple[Callable[[Any], Any] | None, ...]
    _row_type: type[tuple] | None

    @classmethod
    def prepare(cls, statement: sa.Executable, dialect: sa.Dialect,
                column_keys: list[str] | None = None) -> DirectStatement | None:
        # The statements registered are Core statements (Select, Insert, Update...):
        # clause elements too, which the dialect's SQLCompiler compiles.
        element = cast(sa.ClauseElement, statement)
        compiled = cast(SQLCompiler, element.compile(dialect=dialect, column_keys=column_keys))
        if (compiled.insert_prefetch or compiled.update_prefetch
                or compiled.positiontup is None
                or any(b.expanding or b.callable for b in compiled.binds.values())):
            # Column defaults computed per execution, expanding IN lists: leave to SA.
            return None
        self = cls()
        self.sql = compiled.string
        processors = compiled._bind_processors
        binds: list[tuple[str, Callable[[Any], Any] | None, Any]] = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            process = processors.get(name)
            if process is not None and not callable(process):
                return None  # a tuple's bind, one processor per element: leave to SA
            if bind.required:
                binds.append((bind.key, process, _MISSING))
            else:  # a literal of the statement (status = 'running'): bound once, here
                value = bind.value
                binds.append((bind.key, None, process(value) if process else value))
        self._binds = tuple(binds)
        columns = compiled._result_columns
        self._returns_rows = bool(columns)
        self._decoders = tuple(
            c.type._cached_result_processor(dialect, None) for c in columns)
        row_type = _row_type([c.keyname for c in columns])
        if columns and row_type is None:
            return None
        self._row_type = row_type
        return self

    def execute(self, dbapi_conn: Any, parameters: dict[str, Any]) -> DirectResult:
        values = []
        for key, process, fixed in self._binds:
            if fixed is _MISSING:
                value = parameters[key]  # KeyError names a missing parameter, as SA would
                values.append(process(value) if process is not None else value)
            else:
                values.append(fixed)
        cursor = dbapi_conn.cursor()
        try:
            try:
                cursor.execute(self.sql, values)
            except sqlite3.Error as exc:
                raise driver_error(exc, self.sql, values) from exc
            if not self._returns_rows:
                return DirectResult(None, cursor.rowcount)
            # A statement that returns rows has a row type (see prepare): `make` is set.
            decoders, make = self._decoders, self._row_type
            rows = [
                make._make([raw if d is None or raw is None else d(raw)  # type: ignore[union-attr]
                            for d, raw in zip(decoders, row, strict=True)])
                for row in cursor.fetchall()
            ]
            return DirectResult(rows, cursor.rowcount)
        finally:
            cursor.close()


def driver_error(exc: sqlite3.Error, sql: str, parameters: Any) -> sa.exc.StatementError:
    """sqlite3's error as SQLAlchemy raises it (IntegrityError, OperationalError...):
    the store and the database layer handle those, not sqlite3's own."""
    return sa.exc.DBAPIError.instance(sql, parameters, exc, sqlite3.Error)


def execute_sql(dbapi_conn: Any, sql: str) -> None:
    """A statement without parameters (BEGIN, COMMIT...) on sqlite3 itself."""
    try:
        dbapi_conn.execute(sql)
    except sqlite3.Error as exc:
        raise driver_error(exc, sql, ()) from exc


class DirectResult:
    """The part of SQLAlchemy's Result the store uses, over rows already fetched
    (`rows` None: a statement that returns none, which SQLAlchemy refuses to read)."""

    __slots__ = ("_fetched", "rowcount")

    def __init__(self, rows: list[Any] | None, rowcount: int) -> None:
        self._fetched = rows
        self.rowcount = rowcount

    @property
    def _rows(self) -> list[Any]:
        if self._fetched is None:
            raise sa.exc.ResourceClosedError("This result object does not return rows.")
        return self._fetched

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def all(self) -> list[Any]:
        return list(self._rows)

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def one_or_none(self) -> Any:
        if len(self._rows) > 1:
            raise sa.exc.MultipleResultsFound("more than one row where at most one was expected")
        return self.first()

    def scalar_one_or_none(self) -> Any:
        row = self.one_or_none()
        return None if row is None else row[0]

    def mappings(self) -> _Mappings:
        return _Mappings([row._mapping for row in self._rows])


class _Mappings(list):
    def first(self) -> Any:
        return self[0] if self else None

    def all(self) -> list[Any]:
        return list(self)


class DirectStatements:
    """The registry: which statement objects take the direct path, compiled lazily.
    Keyed by the statement object itself (held here, so its id is never reused);
    an INSERT also by its parameter names, which decide its columns."""

    def __init__(self, dialect: sa.Dialect, statements: Iterable[sa.Executable]) -> None:
        self.dialect = dialect
        self._registered = {id(s): s for s in statements}
        self._compiled: dict[Any, DirectStatement | None] = {}

    def lookup(self, statement: Any, parameters: dict[str, Any] | None) -> DirectStatement | None:
        ident = id(statement)
        registered = self._registered.get(ident)
        if registered is None or registered is not statement:
            return None
        is_insert = isinstance(statement, sa.Insert)
        key: Any = (ident, tuple(parameters or ())) if is_insert else ident
        try:
            return self._compiled[key]
        except KeyError:
            prepared = DirectStatement.prepare(
                registered, self.dialect, list(parameters or ()) if is_insert else None)
            self._compiled[key] = prepared
            return prepared


class DirectConnection:
    """A SQLite transaction's connection as the store's functions see it: registered
    statements run directly on the sqlite3 connection, anything else (and any other
    attribute) is SQLAlchemy's own Connection, in the same transaction."""

    __slots__ = ("_conn", "_dbapi", "_statements")

    def __init__(self, conn: Connection, statements: DirectStatements) -> None:
        self._conn = conn
        self._dbapi = conn.connection.dbapi_connection
        self._statements = statements

    def execute(self, statement: Any, parameters: Any = None, **kwargs: Any) -> Any:
        if not kwargs and (parameters is None or isinstance(parameters, dict)):
            direct = self._statements.lookup(statement, parameters)
            if direct is not None:
                return direct.execute(self._dbapi, parameters or {})
        return self._conn.execute(statement, parameters, **kwargs)

    def scalar(self, statement: Any, parameters: Any = None, **kwargs: Any) -> Any:
        if not kwargs and (parameters is None or isinstance(parameters, dict)):
            direct = self._statements.lookup(statement, parameters)
            if direct is not None:
                return direct.execute(self._dbapi, parameters or {}).scalar()
        return self._conn.scalar(statement, parameters, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)
