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


class json_has(ColumnElement[bool]):  # noqa: N801 - reads as a SQL function
    inherit_cache = False
    type = sa.Boolean()

    def __init__(self, column: ColumnElement[Any], filters: dict[str, Any]) -> None:
        self.column = column
        self.filters = filters


@compiles(json_has, "postgresql")
def _postgres(element: json_has, compiler: Any, **kw: Any) -> str:
    clause = sa.cast(element.column, sa.dialects.postgresql.JSONB).op("@>")(
        sa.cast(sa.literal(dumps(element.filters).decode()), sa.dialects.postgresql.JSONB)
    )
    return compiler.process(clause, **kw)


@compiles(json_has, "sqlite")
def _sqlite(element: json_has, compiler: Any, **kw: Any) -> str:
    clauses = []
    column = element.column
    for key, value in element.filters.items():
        path = '$."' + str(key).replace('"', '\\"') + '"'
        extracted = sa.func.json_extract(column, path)
        if isinstance(value, (dict, list)):
            clauses.append(sa.func.json(extracted) == sa.func.json(dumps(value).decode()))
        elif value is None:
            clauses.append(sa.func.json_type(column, path) == "null")
        elif isinstance(value, bool):
            clauses.append(sa.func.json_type(column, path) == ("true" if value else "false"))
        else:
            clauses.append(extracted == value)
    return compiler.process(sa.and_(*clauses), **kw)
