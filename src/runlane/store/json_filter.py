"""`json_has(column, {key: value, ...})`: a JSON text column holds these top-level
values. One expression, rendered for each backend (SQLite's JSON1 functions,
PostgreSQL's jsonb containment, as the reference server filters metadata)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import sqlalchemy.dialects.postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement

from runlane.serde import dumps


class json_has(ColumnElement[bool]):  # lower case: it reads as a SQL function
    inherit_cache = False
    type = sa.Boolean()

    def __init__(self, column: ColumnElement[Any], filters: dict[str, Any]) -> None:
        self.column = column
        self.filters = filters


# The NUL character (the JSON escape \u0000), which any client's metadata may hold:
# PostgreSQL's jsonb refuses it, so casting such a row failed every search over the
# table (for every owner), and SQLite's JSON functions cut strings at it. Both sides of
# every comparison read NUL as U+FFFD instead: a search may confuse the two, never
# fail, and matches the same rows on both backends.
_NUL, _NUL_STANDIN = "\\u0000", "\\ufffd"


def _without_nul(column: ColumnElement[Any]) -> ColumnElement[Any]:
    return sa.func.replace(column, sa.literal(_NUL), sa.literal(_NUL_STANDIN))


def _json_text(value: Any) -> str:
    return dumps(value).decode().replace(_NUL, _NUL_STANDIN)


def _scalar(value: Any) -> Any:
    return value.replace("\0", "\ufffd") if isinstance(value, str) else value


def _path(key: Any) -> str:
    return '$."' + _scalar(str(key)).replace('"', '\\"') + '"'


def _jsonb(column: ColumnElement[Any]) -> ColumnElement[Any]:
    return sa.cast(_without_nul(column), sa.dialects.postgresql.JSONB)


def _jsonb_literal(value: Any) -> ColumnElement[Any]:
    return sa.cast(sa.literal(_json_text(value)), sa.dialects.postgresql.JSONB)


@compiles(json_has, "postgresql")
def _postgres(element: json_has, compiler: Any, **kw: Any) -> str:
    clause = _jsonb(element.column).op("@>")(_jsonb_literal(element.filters))
    return compiler.process(clause, **kw)


@compiles(json_has, "sqlite")
def _sqlite(element: json_has, compiler: Any, **kw: Any) -> str:
    clauses = []
    column = _without_nul(element.column)
    for key, value in element.filters.items():
        path = _path(key)
        extracted = sa.func.json_extract(column, path)
        if isinstance(value, (dict, list)):
            clauses.append(sa.func.json(extracted) == sa.func.json(_json_text(value)))
        elif value is None:
            clauses.append(sa.func.json_type(column, path) == "null")
        elif isinstance(value, bool):
            clauses.append(sa.func.json_type(column, path) == ("true" if value else "false"))
        else:
            clauses.append(extracted == _scalar(value))
    return compiler.process(sa.and_(*clauses), **kw)


class json_contains(ColumnElement[bool]):  # reads as a SQL function
    """The JSON array at top-level `key` holds every one of `values`."""

    inherit_cache = False
    type = sa.Boolean()

    def __init__(self, column: ColumnElement[Any], key: str, values: list[Any]) -> None:
        self.column = column
        self.key = key
        self.values = values


@compiles(json_contains, "postgresql")
def _postgres_contains(element: json_contains, compiler: Any, **kw: Any) -> str:
    clause = _jsonb(element.column).op("@>")(
        _jsonb_literal({element.key: element.values}))
    return compiler.process(clause, **kw)


@compiles(json_contains, "sqlite")
def _sqlite_contains(element: json_contains, compiler: Any, **kw: Any) -> str:
    path = _path(element.key)
    column = _without_nul(element.column)
    clauses = [sa.func.json_type(column, path) == "array"]
    for value in element.values:
        items = sa.func.json_each(column, path).table_valued("value", "type")
        if isinstance(value, (dict, list)) or value is None or isinstance(value, bool):
            same = sa.func.json(items.c.value) == sa.func.json(_json_text(value))
        else:
            same = items.c.value == _scalar(value)
        clauses.append(sa.exists().select_from(items).where(same))
    return compiler.process(sa.and_(*clauses), **kw)


def auth_filters(column: ColumnElement[Any], filters: dict[str, Any] | None) -> list[Any]:
    """An authorization handler's filters (normalized by runlane.api.auth.authorization:
    {key: ("$eq", value) | ("$contains", [values])}) on a JSON metadata column."""
    if not filters:
        return []
    equal = {key: value for key, (op, value) in filters.items() if op == "$eq"}
    clauses: list[Any] = [json_has(column, equal)] if equal else []
    clauses += [json_contains(column, key, values)
                for key, (op, values) in filters.items() if op == "$contains"]
    return clauses
