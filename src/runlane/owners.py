"""Who owns a row, and the one rule every query applies to see only the caller's rows.

Every thread, run, assistant, cron and store item carries an `owner` column. With
auth off the caller's owner is None and sees everything (rows are created with owner
NULL). With auth on, the caller's owner is its authenticated identity: rows are
created with it, and every read, update, delete and cancel adds `owned(column, owner)`
so another owner's row is indistinguishable from one that does not exist (404, never
403: no existence oracle).

On top of that, a custom auth's authorization handler may return filters on a row's
metadata (normalized by runlane.api.auth.authorization); a row that fails them looks
missing too. `matches` applies them to one row already read (the store's searches
apply them in SQL: store/json_filter.py).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

Owner = str | None
# An authorization handler's filters: {key: ("$eq", value) | ("$contains", [values])}.
Filters = dict[str, Any]


def owned(column: sa.ColumnElement, owner: Owner) -> sa.ColumnElement[bool]:
    """The WHERE clause that limits `column`'s table to what `owner` may see."""
    if owner is None:
        return sa.true()
    return column == owner


def owner_of(request: object) -> Owner:
    """The owner a request acts as. The auth middleware sets `request.state.owner`;
    with auth off nothing sets it and the caller sees everything."""
    return getattr(getattr(request, "state", None), "owner", None)


def shared_or_owned(column: sa.ColumnElement, owner: Owner) -> sa.ColumnElement[bool]:
    """Rows any caller may read: its own, and shared ones (owner NULL: the default
    assistant of each graph, rows created with auth off). Shared rows are read-only
    for an authenticated caller (see `writable`)."""
    if owner is None:
        return sa.true()
    return sa.or_(column == owner, column.is_(None))


def writable(row_owner: Owner, owner: Owner) -> bool:
    """Whether `owner` may change a row it can see (shared rows: only with auth off)."""
    return owner is None or row_owner == owner


def matches(metadata: dict[str, Any] | None, filters: Filters | None) -> bool:
    """Whether a row's metadata passes the filters (single-row reads and writes)."""
    if not filters:
        return True
    metadata = metadata or {}
    for key, (op, wanted) in filters.items():
        if key not in metadata:
            return False
        have = metadata[key]
        if op == "$eq":
            if have != wanted:
                return False
        elif not isinstance(have, list) or any(w not in have for w in wanted):
            return False
    return True
