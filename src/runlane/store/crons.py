"""The `crons` table: schedules that create runs, and the compare-and-set that makes
each firing happen once across workers.

A firing is claimed by moving the cron's `next_run_date` from the value the worker
read to the next one (`UPDATE ... WHERE next_run_date = :seen`). Of several workers
that read the same due cron, exactly one UPDATE matches; the others match no row and
leave the firing alone.

A claimed firing is durable until its run exists: the claim also records it
(`firing_at`, with `firing_until`, the claimer's deadline), and the admission that
creates its run clears it in the same transaction (Store.create_run's `firing`), a
compare-and-set that fails if the firing was already realized. A worker that dies
after its claim leaves the firing recorded; once `firing_until` passes, any worker
takes it over (`take_over`, a compare-and-set on `firing_until`) and creates the
run. Whoever's admission commits first creates it; any other is rolled back, so a
firing creates exactly one run across crashes and slow workers. A cron's next firing
is not claimed while one is outstanding.

Every read, update and delete is limited to the caller's
owner (`owners.owned`), so another owner's cron looks exactly like a missing one, and
to what the authorization handler's filters admit (`auth_filter`, on the cron's
metadata), in the same statement.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from runlane.owners import Owner, owned
from runlane.records import Columns, Cron
from runlane.serde import JSONObject
from runlane.store.database import Database
from runlane.store.json_filter import auth_filters, json_has
from runlane.store.schema import crons, threads

SORTABLE = ("cron_id", "assistant_id", "thread_id", "created_at", "updated_at",
            "next_run_date", "end_time")


def _cron(row: Any) -> Cron | None:
    return None if row is None else Cron.from_row(row)


def _visible(owner: Owner, auth_filter: JSONObject | None) -> list[Any]:
    """The crons the caller may see: its own, passing the handler's filters."""
    return [owned(crons.c.owner, owner), *auth_filters(crons.c.metadata, auth_filter)]


def _filters(*, owner: Owner, auth_filter: JSONObject | None, assistant_id: str | None,
             thread_id: str | None, enabled: bool | None,
             metadata: JSONObject | None) -> list[Any]:
    where: list[Any] = _visible(owner, auth_filter)
    if assistant_id is not None:
        where.append(crons.c.assistant_id == assistant_id)
    if thread_id is not None:
        where.append(crons.c.thread_id == thread_id)
    if enabled is not None:
        where.append(crons.c.enabled.is_(enabled))
    if metadata:
        where.append(json_has(crons.c.metadata, metadata))
    return where


class CronStore:
    """Cron rows, on the deployment's database (the same `Database` as the run store:
    one database thread on SQLite, a small pool on PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def thread_visible(self, thread_id: str, *, owner: Owner = None) -> bool:
        """A thread cron needs its thread: does it exist for this owner?"""

        def _tx(conn: Connection) -> bool:
            return conn.execute(
                sa.select(threads.c.thread_id).where(
                    threads.c.thread_id == thread_id, owned(threads.c.owner, owner))
            ).first() is not None
        return await self.db.run(_tx)

    async def insert(self, row: Columns) -> Cron:

        def _tx(conn: Connection) -> Cron:
            conn.execute(crons.insert().values(**row))
            return Cron.from_columns(row)
        return await self.db.run(_tx)

    async def get(self, cron_id: str, *, owner: Owner = None,
                  auth_filter: JSONObject | None = None) -> Cron | None:

        def _tx(conn: Connection) -> Cron | None:
            return _cron(conn.execute(sa.select(crons).where(
                crons.c.cron_id == cron_id, *_visible(owner, auth_filter))).first())
        return await self.db.run(_tx)

    async def update(self, cron_id: str, values: Columns, *, owner: Owner = None,
                     auth_filter: JSONObject | None = None) -> Cron | None:
        """Change a cron; None if it is not there (for this owner and filter)."""

        def _tx(conn: Connection) -> Cron | None:
            return _cron(conn.execute(
                crons.update()
                .where(crons.c.cron_id == cron_id, *_visible(owner, auth_filter))
                .values(**values)
                .returning(*crons.c)
            ).first())
        return await self.db.run(_tx)

    async def change(self, cron_id: str, changes: Callable[[Cron], Columns], *,
                     owner: Owner = None,
                     auth_filter: JSONObject | None = None) -> Cron | None:
        """Change a cron by `changes(current row) -> values to set`, read and written
        under the row's lock in one transaction, so concurrent changes (metadata
        merged key by key, payload fields) never lose one another; None if it is not
        there (for this owner). What `changes` raises aborts the change."""

        def _tx(conn: Connection) -> Cron | None:
            current = _cron(conn.execute(
                sa.select(crons)
                .where(crons.c.cron_id == cron_id, *_visible(owner, auth_filter))
                .with_for_update()  # SQLite: BEGIN IMMEDIATE already serializes writers
            ).first())
            if current is None:
                return None
            return _cron(conn.execute(
                crons.update()
                .where(crons.c.cron_id == cron_id)
                .values(**changes(current))
                .returning(*crons.c)
            ).first())
        return await self.db.run(_tx)

    async def delete(self, cron_id: str, *, owner: Owner = None,
                     auth_filter: JSONObject | None = None) -> bool:

        def _tx(conn: Connection) -> bool:
            result = conn.execute(crons.delete().where(
                crons.c.cron_id == cron_id, *_visible(owner, auth_filter)))
            return result.rowcount > 0
        return await self.db.run(_tx)

    async def search(
        self, *, owner: Owner = None, auth_filter: JSONObject | None = None,
        assistant_id: str | None = None, thread_id: str | None = None,
        enabled: bool | None = None, metadata: JSONObject | None = None, limit: int = 10,
        offset: int = 0, sort_by: str = "created_at", sort_order: str = "desc",
    ) -> list[Cron]:
        column = crons.c[sort_by]
        query = (
            sa.select(crons)
            .where(*_filters(owner=owner, auth_filter=auth_filter, assistant_id=assistant_id,
                             thread_id=thread_id, enabled=enabled, metadata=metadata))
            # cron_id breaks ties, so pages do not overlap when sort values repeat.
            .order_by(column.desc() if sort_order == "desc" else column.asc(), crons.c.cron_id)
            .limit(limit).offset(offset)
        )

        def _tx(conn: Connection) -> list[Cron]:
            return [Cron.from_row(r) for r in conn.execute(query)]
        return await self.db.run(_tx)

    async def count(
        self, *, owner: Owner = None, auth_filter: JSONObject | None = None,
        assistant_id: str | None = None, thread_id: str | None = None,
        metadata: JSONObject | None = None,
    ) -> int:
        query = sa.select(sa.func.count()).select_from(crons).where(
            *_filters(owner=owner, auth_filter=auth_filter, assistant_id=assistant_id,
                      thread_id=thread_id, enabled=None, metadata=metadata))

        def _tx(conn: Connection) -> int:
            return int(conn.scalar(query) or 0)
        return await self.db.run(_tx)

    # ------------------------------------------------------------- scheduling

    async def due(self, now: datetime.datetime, limit: int = 100) -> list[Cron]:
        """Enabled crons whose next firing has come (of every owner: the scheduler
        acts for each cron's owner), with no firing outstanding."""
        query = (
            sa.select(crons)
            .where(crons.c.enabled.is_(True), crons.c.next_run_date.is_not(None),
                   crons.c.next_run_date <= now, crons.c.firing_at.is_(None))
            .order_by(crons.c.next_run_date)
            .limit(limit)
        )

        def _tx(conn: Connection) -> list[Cron]:
            return [Cron.from_row(r) for r in conn.execute(query)]
        return await self.db.run(_tx)

    async def earliest_next_run(self) -> datetime.datetime | None:
        """When the scheduler next has something to do."""
        query = sa.select(sa.func.min(crons.c.next_run_date)).where(
            crons.c.enabled.is_(True), crons.c.next_run_date.is_not(None),
            crons.c.firing_at.is_(None))

        def _tx(conn: Connection) -> Any:
            return conn.scalar(query)
        value = await self.db.run(_tx)
        if isinstance(value, str):  # SQLite's min() loses the column type
            value = datetime.datetime.fromisoformat(value)
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return value

    async def claim(self, cron_id: str, seen: datetime.datetime,
                    following: datetime.datetime | None,
                    now: datetime.datetime,
                    firing_until: datetime.datetime | None = None) -> Cron | None:
        """Claim the firing at `seen` by moving `next_run_date` to `following` (None:
        the cron has fired for the last time), and record it as outstanding until
        its run's admission clears it (`firing_until`: when another worker may take
        it over; None: claimed only to retire it, nothing to create). The cron row as
        claimed, or None if another worker claimed it first, or it was changed or
        deleted meanwhile."""
        firing = {} if firing_until is None else {"firing_at": seen,
                                                  "firing_until": firing_until}

        def _tx(conn: Connection) -> Cron | None:
            return _cron(conn.execute(
                crons.update()
                .where(crons.c.cron_id == cron_id, crons.c.next_run_date == seen,
                       crons.c.enabled.is_(True), crons.c.firing_at.is_(None))
                .values(next_run_date=following, updated_at=now, **firing)
                .returning(*crons.c)
            ).first())
        return await self.db.run(_tx)

    async def abandoned_firings(self, now: datetime.datetime, limit: int = 100
                                ) -> list[tuple[Cron, datetime.datetime, datetime.datetime]]:
        """Firings claimed but not realized by their deadline (the claimer died or
        stalled): (cron, firing_at, firing_until)."""
        query = (sa.select(crons).where(crons.c.firing_at.is_not(None),
                                        crons.c.firing_until <= now)
                 .order_by(crons.c.firing_until).limit(limit))

        def _tx(conn: Connection) -> list[tuple[Cron, datetime.datetime, datetime.datetime]]:
            return [(Cron.from_row(r), _utc(r.firing_at), _utc(r.firing_until))
                    for r in conn.execute(query)]
        return await self.db.run(_tx)

    async def take_over(self, cron_id: str, firing_at: datetime.datetime,
                        seen_until: datetime.datetime,
                        firing_until: datetime.datetime) -> Cron | None:
        """Take over an abandoned firing (compare-and-set on the deadline seen): of
        several workers, one matches. The cron, or None."""

        def _tx(conn: Connection) -> Cron | None:
            return _cron(conn.execute(
                crons.update()
                .where(crons.c.cron_id == cron_id, crons.c.firing_at == firing_at,
                       crons.c.firing_until == seen_until)
                .values(firing_until=firing_until)
                .returning(*crons.c)
            ).first())
        return await self.db.run(_tx)

    async def clear_firing(self, cron_id: str, firing_at: datetime.datetime) -> None:
        """A firing that creates no run (skipped: its thread is gone, `reject` on a
        busy thread ...) is done."""

        def _tx(conn: Connection) -> None:
            conn.execute(crons.update().where(crons.c.cron_id == cron_id,
                                              crons.c.firing_at == firing_at)
                         .values(firing_at=None, firing_until=None))
        await self.db.run(_tx)


def _utc(value: datetime.datetime) -> datetime.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=datetime.UTC)


def realize_firing(conn: Connection, cron_id: str, firing_at: datetime.datetime) -> bool:
    """In a run's admission: clear the firing it realizes. False if it was already
    realized (or the cron is gone): the admission must not create a run."""
    return conn.execute(
        crons.update()
        .where(crons.c.cron_id == cron_id, crons.c.firing_at == firing_at)
        .values(firing_at=None, firing_until=None)
        .returning(crons.c.cron_id)
    ).first() is not None
