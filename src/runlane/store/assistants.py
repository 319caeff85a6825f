"""Assistants and their versions: the store's transactions for them (a mixin of Store).

`assistants` holds the version in use; `assistant_versions` holds every version an
assistant has had. A PATCH writes a new version (one past the highest ever written,
not past the current one: the current may have been set back with `set_latest`) and
makes it current; `set_latest` copies a stored version back into `assistants`.
Reads see the caller's own assistants and the shared ones (owner NULL: each graph's
default assistant, and any created with auth off) with `shared_or_owned()`; writes
touch only the caller's own with `owned()`. Another owner's assistant answers
exactly like a missing one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from runlane.contract import ACTIVE, CancelAction, CancelReason
from runlane.errors import Conflict, NotFound
from runlane.owners import Owner, owned, shared_or_owned
from runlane.records import Assistant, AssistantVersion, Columns
from runlane.serde import JSONObject, utcnow
from runlane.store import statements as st
from runlane.store.json_filter import auth_filters, json_has
from runlane.store.schema import assistant_versions, assistants, crons, runs

VERSIONED = ("graph_id", "name", "description", "config", "context", "metadata")
_ACTIVE_VALUES = [s.value for s in ACTIVE]


def _assistant(row: Any) -> Assistant | None:
    return None if row is None else Assistant.from_row(row)


def _version_row(assistant: Assistant, created_at: Any) -> Columns:
    """The `assistant_versions` row of the assistant's current version."""
    return {"assistant_id": assistant.assistant_id, "version": assistant.version,
            "created_at": created_at, **{k: getattr(assistant, k) for k in VERSIONED}}


def _visible(assistant_id: str, owner: Owner) -> sa.ColumnElement[bool]:
    """The assistant, if `owner` may read it."""
    return sa.and_(assistants.c.assistant_id == assistant_id,
                   shared_or_owned(assistants.c.owner, owner))


def _writable(assistant_id: str, owner: Owner) -> sa.ColumnElement[bool]:
    """The assistant, if `owner` may change it."""
    return sa.and_(assistants.c.assistant_id == assistant_id, owned(assistants.c.owner, owner))


def _filters(graph_id: str | None, name: str | None, metadata_filter: JSONObject | None,
             owner: Owner, auth_filter: JSONObject | None) -> list[sa.ColumnElement[bool]]:
    clauses = [shared_or_owned(assistants.c.owner, owner),
               *auth_filters(assistants.c.metadata, auth_filter)]
    if graph_id is not None:
        clauses.append(assistants.c.graph_id == graph_id)
    if name is not None:
        # A substring, case-insensitively on both backends; % and _ match themselves.
        clauses.append(assistants.c.name.icontains(name, autoescape=True))
    if metadata_filter:
        clauses.append(json_has(assistants.c.metadata, metadata_filter))
    return clauses


class AssistantQueries:
    """Mixed into Store: needs `self.db` (a Database)."""

    db: Any

    async def ensure_assistant(self, row: Columns) -> None:
        """Insert a system assistant (and its version 1) if absent: the default one
        per graph. Several workers starting together must not race on it."""
        statement = self._insert(assistants, row, ["assistant_id"])
        version = self._insert(
            assistant_versions,
            _version_row(Assistant.from_columns(row), row["created_at"]),
            ["assistant_id", "version"])

        def _tx(conn: Connection) -> None:
            conn.execute(statement)
            conn.execute(version)

        await self.db.run(_tx)

    def _insert(self, table: sa.Table, row: Columns, key: list[str]) -> Any:
        """INSERT ... ON CONFLICT DO NOTHING: of two creations of one id racing, one
        inserts and the other learns it lost, instead of failing on the unique key."""
        if self.db.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert
        else:
            # The same `insert` API as SQLite's, under another type:
            from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
        return insert(table).values(**row).on_conflict_do_nothing(index_elements=key)

    async def insert_assistant(self, row: Columns, if_exists: str, *,
                               owner: Owner = None) -> Assistant:
        """Create an assistant at version 1. An existing id: 409, or (do_nothing) the
        existing assistant, when the caller may see it; another owner's is a 409."""
        row = {**row, "owner": owner}
        statement = self._insert(assistants, row, ["assistant_id"]).returning(
            assistants.c.assistant_id)

        def _tx(conn: Connection) -> Assistant:
            if conn.execute(statement).first() is not None:  # (rowcount is not reliable here)
                created = Assistant.from_columns(row)
                conn.execute(assistant_versions.insert().values(
                    **_version_row(created, created.created_at)))
                return created
            existing = _assistant(conn.execute(
                sa.select(assistants).where(assistants.c.assistant_id == row["assistant_id"])
            ).first())
            if (existing is not None and if_exists == "do_nothing"
                    and (owner is None or existing.owner == owner)):
                return existing
            raise Conflict(f"assistant {row['assistant_id']} already exists")

        return await self.db.run(_tx)

    async def get_assistant(self, assistant_id: str, *,
                            owner: Owner = None) -> Assistant | None:
        def _tx(conn: Connection) -> Assistant | None:
            if owner is None:  # the hot path of every run creation
                return _assistant(conn.execute(
                    st.SELECT_ASSISTANT, {"p_assistant_id": assistant_id}).first())
            return _assistant(conn.execute(st.SELECT_ASSISTANT_VISIBLE, {
                "p_assistant_id": assistant_id, "p_owner": owner}).first())

        return await self.db.read(_tx)

    async def update_assistant(self, assistant_id: str, values: Columns, *,
                               owner: Owner = None) -> Assistant | None:
        """PATCH: a new version from the current one with `values` applied (metadata
        merged key by key, the rest replaced), made current. None if not visible."""

        def _tx(conn: Connection) -> Assistant | None:
            # Locked: two PATCHes at once must not both take the same next version.
            current = _assistant(conn.execute(
                sa.select(assistants).where(_writable(assistant_id, owner)).with_for_update()
            ).first())
            if current is None:
                return None
            highest = conn.scalar(sa.select(sa.func.max(assistant_versions.c.version)).where(
                assistant_versions.c.assistant_id == assistant_id)) or current.version
            now = utcnow()
            # Only what a version holds changes (a route's value may carry more).
            changes = {k: v for k, v in values.items() if k in VERSIONED}
            if "metadata" in changes:
                changes["metadata"] = {**current.metadata, **changes["metadata"]}
            new = dataclasses.replace(current, **changes, version=highest + 1, updated_at=now)
            conn.execute(assistant_versions.insert().values(**_version_row(new, now)))
            conn.execute(assistants.update().where(assistants.c.assistant_id == assistant_id)
                         .values(**{k: getattr(new, k)
                                    for k in (*VERSIONED, "version", "updated_at")}))
            return new

        return await self.db.run(_tx)

    async def list_assistant_versions(
        self, assistant_id: str, *, metadata_filter: JSONObject | None, limit: int, offset: int,
        owner: Owner = None,
    ) -> list[AssistantVersion]:
        """Versions, newest first. NotFound if the assistant is not visible."""
        query = sa.select(assistant_versions).where(
            assistant_versions.c.assistant_id == assistant_id)
        if metadata_filter:
            query = query.where(json_has(assistant_versions.c.metadata, metadata_filter))
        query = query.order_by(assistant_versions.c.version.desc()).limit(limit).offset(offset)

        def _tx(conn: Connection) -> list[AssistantVersion]:
            if conn.execute(sa.select(assistants.c.assistant_id)
                            .where(_visible(assistant_id, owner))).first() is None:
                raise NotFound(f"assistant {assistant_id} not found")
            return [AssistantVersion.from_row(r) for r in conn.execute(query)]

        return await self.db.run(_tx)

    async def set_latest_assistant_version(self, assistant_id: str, version: int, *,
                                           owner: Owner = None) -> Assistant:
        """Make a stored version the one in use. NotFound for an unknown assistant or
        version."""

        def _tx(conn: Connection) -> Assistant:
            current = _assistant(conn.execute(
                sa.select(assistants).where(_writable(assistant_id, owner)).with_for_update()
            ).first())
            if current is None:
                raise NotFound(f"assistant {assistant_id} not found")
            stored = conn.execute(sa.select(assistant_versions).where(
                assistant_versions.c.assistant_id == assistant_id,
                assistant_versions.c.version == version)).first()
            if stored is None:
                raise NotFound(f"assistant {assistant_id} has no version {version}")
            now = utcnow()
            changes = {**{k: getattr(stored, k) for k in VERSIONED}, "version": version,
                       "updated_at": now}
            conn.execute(assistants.update().where(assistants.c.assistant_id == assistant_id)
                         .values(**changes))
            return dataclasses.replace(current, **changes)

        return await self.db.run(_tx)

    async def delete_assistant(self, assistant_id: str, *, owner: Owner = None) -> list[Any] | None:
        """Delete an assistant with every version, its crons and its finished runs, in
        one transaction that also records a cancel (`interrupt`, reason `user`) on each
        of its active runs: pending ones end here (and are deleted), running ones are
        left to their executors. Returns each of those cancels' results (the caller
        delivers them, waits for the running runs to end and deletes them:
        `delete_finished_runs_of_assistant`). None if it was not visible.

        The DELETE locks the assistant's row, which every run admission locks too
        (statements.LOCK_ASSISTANT_TO_ADMIT): a run admitted first is seen here and
        cancelled; one admitted after finds the assistant gone (404)."""

        def _tx(conn: Connection) -> list[Any] | None:
            deleted = conn.execute(assistants.delete().where(_writable(assistant_id, owner)))
            if deleted.rowcount == 0:
                return None
            now = utcnow()
            running = []
            for run in conn.execute(sa.select(runs.c.thread_id, runs.c.run_id).where(
                    runs.c.assistant_id == assistant_id,
                    runs.c.status.in_(_ACTIVE_VALUES))).all():
                # Store's (this class is mixed into it):
                self._lock_thread(conn, run.thread_id)  # type: ignore[attr-defined]
                result = self._cancel_in(  # type: ignore[attr-defined]
                    conn, run.thread_id, run.run_id, CancelAction.INTERRUPT,
                    CancelReason.USER.value, now)
                running.append(result)
            conn.execute(assistant_versions.delete().where(
                assistant_versions.c.assistant_id == assistant_id))
            conn.execute(crons.delete().where(crons.c.assistant_id == assistant_id))
            conn.execute(runs.delete().where(runs.c.assistant_id == assistant_id,
                                             runs.c.status.notin_(_ACTIVE_VALUES)))
            return running

        return await self.db.run(_tx)

    async def delete_finished_runs_of_assistant(self, assistant_id: str) -> None:
        """The runs a deleted assistant still had running, once they ended."""

        def _tx(conn: Connection) -> None:
            conn.execute(runs.delete().where(runs.c.assistant_id == assistant_id,
                                             runs.c.status.notin_(_ACTIVE_VALUES)))

        await self.db.run(_tx)

    async def search_assistants(
        self, *, graph_id: str | None, name: str | None, metadata_filter: JSONObject | None,
        limit: int, offset: int, sort_by: str, sort_order: str, owner: Owner = None,
        auth_filter: JSONObject | None = None,
    ) -> list[Assistant]:
        column = assistants.c[sort_by]
        direction = column.desc() if sort_order == "desc" else column.asc()
        query = (sa.select(assistants).where(*_filters(graph_id, name, metadata_filter, owner,
                                                          auth_filter))
                 # The id breaks ties, so pages never overlap or skip.
                 .order_by(direction, assistants.c.assistant_id).limit(limit).offset(offset))

        def _tx(conn: Connection) -> list[Assistant]:
            return [Assistant.from_row(r) for r in conn.execute(query)]

        return await self.db.run(_tx)

    async def count_assistants(self, *, graph_id: str | None, name: str | None = None,
                               metadata_filter: JSONObject | None, owner: Owner = None,
                               auth_filter: JSONObject | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(assistants).where(
            *_filters(graph_id, name, metadata_filter, owner, auth_filter))

        def _tx(conn: Connection) -> int:
            return int(conn.scalar(query) or 0)

        return await self.db.run(_tx)

    async def active_runs_of_assistant(self, assistant_id: str) -> list[tuple[str, str]]:
        """(thread_id, run_id) of the assistant's pending and running runs."""
        query = sa.select(runs.c.thread_id, runs.c.run_id).where(
            runs.c.assistant_id == assistant_id, runs.c.status.in_(_ACTIVE_VALUES))

        def _tx(conn: Connection) -> list[tuple[str, str]]:
            return [(r.thread_id, r.run_id) for r in conn.execute(query)]

        return await self.db.run(_tx)
