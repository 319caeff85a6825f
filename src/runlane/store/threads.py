"""Threads: create, read, patch, search, count, copy, and TTL expiry (a mixin of Store).

Thread TTL. A thread created or patched with `ttl` ({"strategy", "ttl": minutes})
stores it in `threads.ttl` and `expires_at = now + ttl`. Any activity refreshes it:
creating or patching the thread, and every run starting or ending on it (those move
`updated_at`). Rather than touching the hot run statements, the sweeper re-reads a
thread whose `expires_at` passed and treats `updated_at + ttl` as the real deadline:
if there was activity since, it only moves `expires_at` forward. A thread with an
active run is never expired. The expiry is one transaction that locks the thread row
and re-checks `expires_at <= now` under the lock, so when every worker sweeps at
once exactly one of them acts, and a run being admitted on the thread (which locks
the same row) either comes first, and the thread stays, or finds it gone.
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from runlane.contract import ACTIVE, ThreadStatus
from runlane.errors import Conflict, NotFound
from runlane.owners import Owner, owned
from runlane.records import Columns, Thread
from runlane.serde import JSONObject, utcnow
from runlane.store import statements as st
from runlane.store.idempotency import IdempotencyKey, claim
from runlane.store.json_filter import auth_filters, json_has
from runlane.store.schema import runs, threads

_ACTIVE_VALUES = [s.value for s in ACTIVE]
# A thread whose expiry found an active run is looked at again this soon at most.
RECHECK_BUSY = datetime.timedelta(seconds=30)
# How long a hold lasts if its holder never releases it (it died mid-change).
HOLD_FOR = datetime.timedelta(seconds=60)


def _thread(row: Any) -> Thread | None:
    return None if row is None else Thread.from_row(row)


def ttl_delta(ttl: JSONObject | None) -> datetime.timedelta | None:
    return None if not ttl else datetime.timedelta(minutes=float(ttl["ttl"]))


def expiry(ttl: JSONObject | None, since: datetime.datetime) -> datetime.datetime | None:
    delta = ttl_delta(ttl)
    return None if delta is None else since + delta


@dataclasses.dataclass
class Expired:
    """What expiring one thread did: `deleted` (with its runs), `pruned` (keep_latest:
    the caller prunes its checkpoints), or nothing (`None`: refreshed, busy, or
    another worker got there first)."""

    thread_id: str
    action: str | None
    deleted_runs: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    # `pruned`: the hold taken on the thread in the expiry's transaction; the caller
    # prunes, then releases it (Store.release_thread).
    hold_token: str | None = None


def _visible(thread_id: str, owner: Owner) -> sa.ColumnElement[bool]:
    return sa.and_(threads.c.thread_id == thread_id, owned(threads.c.owner, owner),
                   threads.c.temporary.is_(False))


def _filters(metadata_filter: JSONObject | None, values_filter: JSONObject | None,
             status: str | None, ids: list[str] | None, owner: Owner,
             auth_filter: JSONObject | None = None) -> list[sa.ColumnElement[bool]]:
    clauses = [threads.c.temporary.is_(False), owned(threads.c.owner, owner),
               *auth_filters(threads.c.metadata, auth_filter)]
    if metadata_filter:
        clauses.append(json_has(threads.c.metadata, metadata_filter))
    if values_filter:
        clauses.append(json_has(threads.c["values"], values_filter))
    if status is not None:
        clauses.append(threads.c.status == status)
    if ids is not None:
        clauses.append(threads.c.thread_id.in_(ids))
    return clauses


class ThreadQueries:
    """Mixed into Store: needs `self.db` and `self._delete_thread_rows`."""

    db: Any

    def _get_thread(self, conn: Connection, thread_id: str,
                    owner: Owner = None) -> Thread | None:
        if owner is None:
            return _thread(conn.execute(st.SELECT_THREAD, {"p_thread_id": thread_id}).first())
        return _thread(conn.execute(
            st.SELECT_THREAD_OWNED, {"p_thread_id": thread_id, "p_owner": owner}).first())

    async def create_thread(self, row: Columns, if_exists: str, *,
                            owner: Owner = None,
                            idempotency: IdempotencyKey | None = None) -> Thread:
        """Insert a thread. An existing id: 409, or (do_nothing) the existing thread
        when the caller may see it; another owner's is a 409 too. `idempotency`:
        claimed in the same transaction; a live key answers the thread it names."""
        row = {"ttl": None, **row, "owner": owner}
        row["expires_at"] = expiry(row["ttl"], row["created_at"])

        statement = (st.INSERT_THREAD_IF_NEW_SQLITE if self.db.is_sqlite
                     else st.INSERT_THREAD_IF_NEW_POSTGRESQL)

        def _tx(conn: Connection) -> Thread:
            if idempotency is not None:
                target = claim(conn, idempotency, {"thread_id": row["thread_id"]},
                               row["created_at"])
                if target is not None:
                    return self._remembered_thread(conn, target["thread_id"])
            if conn.execute(statement, row).first() is not None:  # (rowcount: not reliable here)
                return Thread.from_columns(row)
            existing = self._get_thread(conn, row["thread_id"])
            if (existing is not None and if_exists == "do_nothing" and not existing.temporary
                    and (owner is None or existing.owner == owner)):
                return existing
            raise Conflict(f"thread {row['thread_id']} already exists")

        return await self.db.run(_tx)

    def _remembered_thread(self, conn: Connection, thread_id: str) -> Thread:
        """The thread an Idempotency-Key names, as it is now; deleted: 409."""
        existing = self._get_thread(conn, thread_id)
        if existing is None:
            raise Conflict(f"the thread this Idempotency-Key created ({thread_id}) was "
                           "deleted; a retry does not create another: use a new key")
        return existing

    async def get_thread(self, thread_id: str, *, owner: Owner = None) -> Thread | None:
        """The thread (temporary ones included: runs need them), if visible."""
        def _tx(conn: Connection) -> Thread | None:
            if owner is None:
                return self._get_thread(conn, thread_id)
            return _thread(conn.execute(sa.select(threads).where(
                threads.c.thread_id == thread_id, owned(threads.c.owner, owner))).first())

        return await self.db.read(_tx)

    async def patch_thread(self, thread_id: str, metadata: JSONObject, *,
                           ttl: JSONObject | None = None,
                           owner: Owner = None) -> Thread | None:
        """Merge `metadata` into the thread's; set its TTL if given. Either way the
        patch is activity: a TTL the thread has is refreshed from now."""

        def _tx(conn: Connection) -> Thread | None:
            thread = _thread(conn.execute(
                sa.select(threads).where(_visible(thread_id, owner)).with_for_update()).first())
            if thread is None:
                return None
            now = utcnow()
            new_ttl = ttl if ttl is not None else thread.ttl
            changes: Columns = {"metadata": {**thread.metadata, **metadata}, "updated_at": now,
                       "ttl": new_ttl, "expires_at": expiry(new_ttl, now)}
            conn.execute(threads.update().where(threads.c.thread_id == thread_id)
                         .values(**changes))
            return dataclasses.replace(thread, **changes)

        return await self.db.run(_tx)

    # Kept for callers that only merge metadata.
    async def patch_thread_metadata(self, thread_id: str, patch: JSONObject, *,
                                    owner: Owner = None) -> Thread | None:
        return await self.patch_thread(thread_id, patch, owner=owner)

    async def search_threads(
        self, *, metadata_filter: JSONObject | None, values_filter: JSONObject | None,
        status: str | None, ids: list[str] | None, limit: int, offset: int, sort_by: str,
        sort_order: str, owner: Owner = None, auth_filter: JSONObject | None = None,
    ) -> list[Thread]:
        column = threads.c[sort_by]
        direction = column.desc() if sort_order == "desc" else column.asc()
        query = (sa.select(threads)
                 .where(*_filters(metadata_filter, values_filter, status, ids, owner,
                                  auth_filter))
                 # The id breaks ties, so pages never overlap or skip.
                 .order_by(direction, threads.c.thread_id).limit(limit).offset(offset))

        def _tx(conn: Connection) -> list[Thread]:
            return [Thread.from_row(r) for r in conn.execute(query)]

        return await self.db.run(_tx)

    async def count_threads(
        self, *, metadata_filter: JSONObject | None, values_filter: JSONObject | None,
        status: str | None, owner: Owner = None, auth_filter: JSONObject | None = None,
    ) -> int:
        query = sa.select(sa.func.count()).select_from(threads).where(
            *_filters(metadata_filter, values_filter, status, None, owner, auth_filter))

        def _tx(conn: Connection) -> int:
            return int(conn.scalar(query) or 0)

        return await self.db.run(_tx)

    async def visible_thread_ids(self, thread_ids: list[str], *, owner: Owner = None) -> list[str]:
        """Which of these threads exist for the caller (not temporary)."""
        query = sa.select(threads.c.thread_id).where(
            *_filters(None, None, None, thread_ids, owner))

        def _tx(conn: Connection) -> list[str]:
            return [r.thread_id for r in conn.execute(query)]

        return await self.db.run(_tx)

    async def insert_thread_copy(self, source: Thread, thread_id: str, *,
                                 owner: Owner = None) -> Thread:
        """A new thread carrying `source`'s metadata, values, interrupts and TTL (its
        checkpoints are copied by the caller first). Never busy: no run is on it."""
        now = utcnow()
        status = (ThreadStatus.INTERRUPTED.value
                  if source.status is ThreadStatus.INTERRUPTED
                  else ThreadStatus.IDLE.value)
        row = {
            "thread_id": thread_id, "status": status, "metadata": source.metadata,
            "config": source.config or {}, "values": source.values,
            "interrupts": source.interrupts or {}, "temporary": False, "owner": owner,
            "ttl": source.ttl, "expires_at": expiry(source.ttl, now),
            "created_at": now, "updated_at": now,
        }

        def _tx(conn: Connection) -> Thread:
            conn.execute(st.INSERT_THREAD, row)
            return Thread.from_columns(row)

        return await self.db.run(_tx)

    # ------------------------------------------------------- thread stream

    # The thread stream reads as its caller (`owner`): a thread deleted and created
    # again by another owner (ids are global) never feeds that owner's runs into it.

    async def run_seq(self, thread_id: str, run_id: str, *, owner: Owner = None) -> int | None:
        query = sa.select(runs.c.seq).where(runs.c.thread_id == thread_id,
                                            runs.c.run_id == run_id, owned(runs.c.owner, owner))

        def _tx(conn: Connection) -> int | None:
            return conn.scalar(query)

        return await self.db.run(_tx)

    async def thread_stream_start(self, thread_id: str, *, owner: Owner = None) -> int:
        """Where a thread stream joined now starts: just before the thread's oldest
        active run, or after its newest run when none is active."""
        mine = (runs.c.thread_id == thread_id, owned(runs.c.owner, owner))
        oldest_active = sa.select(sa.func.min(runs.c.seq)).where(
            *mine, runs.c.status.in_(_ACTIVE_VALUES))
        newest = sa.select(sa.func.max(runs.c.seq)).where(*mine)

        def _tx(conn: Connection) -> int:
            active = conn.scalar(oldest_active)
            if active is not None:
                return int(active) - 1
            return int(conn.scalar(newest) or 0)

        return await self.db.run(_tx)

    async def next_run_on_thread(self, thread_id: str, after_seq: int, *,
                                 owner: Owner = None) -> tuple[str, int] | None:
        """The thread's first run created after `after_seq`: (run_id, seq)."""
        query = (sa.select(runs.c.run_id, runs.c.seq)
                 .where(runs.c.thread_id == thread_id, runs.c.seq > sa.bindparam("p_after"),
                        owned(runs.c.owner, owner))
                 .order_by(runs.c.seq).limit(1))

        def _tx(conn: Connection) -> tuple[str, int] | None:
            row = conn.execute(query, {"p_after": after_seq}).first()
            return None if row is None else (row.run_id, int(row.seq))

        return await self.db.run(_tx)

    # ------------------------------------------------------------------- TTL

    async def next_thread_expiry(self) -> datetime.datetime | None:
        """The earliest `expires_at` of any thread (an index lookup)."""
        query = sa.select(sa.func.min(threads.c.expires_at))

        def _tx(conn: Connection) -> Any:
            value = conn.scalar(query)
            if isinstance(value, str):  # SQLite's min() loses the column type
                value = datetime.datetime.fromisoformat(value)
            if value is not None and value.tzinfo is None:
                value = value.replace(tzinfo=datetime.UTC)
            return value

        return await self.db.run(_tx)

    async def expired_thread_ids(self, now: datetime.datetime, limit: int = 100) -> list[str]:
        query = (sa.select(threads.c.thread_id).where(threads.c.expires_at <= now)
                 .order_by(threads.c.expires_at).limit(limit))

        def _tx(conn: Connection) -> list[str]:
            return [r.thread_id for r in conn.execute(query)]

        return await self.db.run(_tx)

    async def expire_thread(self, thread_id: str, now: datetime.datetime) -> Expired:
        """Apply an expired thread's TTL, once (see the module docstring)."""

        def _tx(conn: Connection) -> Expired:
            # Locked and re-checked: a worker that waited on the lock sees the row as
            # the first one left it (gone, or expiring later) and does nothing.
            row = conn.execute(
                sa.select(threads).where(threads.c.thread_id == thread_id,
                                         threads.c.expires_at <= now).with_for_update()
            ).first()
            thread = _thread(row)
            if row is None or thread is None:
                return Expired(thread_id, None)
            ttl = thread.ttl
            deadline = expiry(ttl, thread.updated_at)
            if ttl is None or deadline is None:  # no TTL any more: nothing to expire
                self._set_expiry(conn, thread_id, None)
                return Expired(thread_id, None)
            if deadline > now:  # activity since the last refresh
                self._set_expiry(conn, thread_id, deadline)
                return Expired(thread_id, None)
            active = conn.execute(sa.select(runs.c.run_id).where(
                runs.c.thread_id == thread_id, runs.c.status.in_(_ACTIVE_VALUES)).limit(1)).first()
            if active is not None:  # never while a run is active; its end refreshes
                delta = ttl_delta(ttl)
                assert delta is not None  # it has a TTL: `deadline` above is set
                self._set_expiry(conn, thread_id, now + min(RECHECK_BUSY, delta))
                return Expired(thread_id, None)
            if ttl.get("strategy") == "keep_latest":
                if self._held(row.hold_until):  # a state update is under way
                    self._set_expiry(conn, thread_id, utcnow() + min(RECHECK_BUSY, HOLD_FOR))
                    return Expired(thread_id, None)
                self._set_expiry(conn, thread_id, expiry(ttl, now))
                # Held in this transaction, which found no active run under the row
                # lock: no run starts on the thread until the prune is done.
                token = self._hold(conn, thread_id)
                return Expired(thread_id, "pruned", hold_token=token)
            # Store's, which mixes these queries in:
            deleted_runs = self._delete_thread_rows(conn, thread_id)  # type: ignore[attr-defined]
            if deleted_runs is None:
                return Expired(thread_id, None)
            return Expired(thread_id, "deleted", deleted_runs)

        return await self.db.run(_tx)

    # ------------------------------------------------------------------ holds

    @staticmethod
    def _held(hold_until: datetime.datetime | None) -> bool:
        return hold_until is not None and hold_until > utcnow()

    @staticmethod
    def _hold(conn: Connection, thread_id: str) -> str:
        token = str(uuid.uuid4())
        conn.execute(threads.update().where(threads.c.thread_id == thread_id)
                     .values(hold_token=token, hold_until=utcnow() + HOLD_FOR))
        return token

    async def hold_thread(self, thread_id: str, *, owner: Owner = None) -> str:
        """Hold an idle thread for a change of its checkpoints outside a run: from
        this commit until `release_thread`, no run starts on it (runs may still be
        admitted; they wait, pending). One compare-and-set under the thread's row
        lock, which run admission takes too: a run admitted first makes this a 409,
        a run admitted after waits for the release. The hold's token.

        NotFound: no such thread (or another owner's). Conflict: the thread has an
        active run, or another hold is under way."""

        def _tx(conn: Connection) -> str:
            row = conn.execute(
                sa.select(threads.c.thread_id, threads.c.temporary, threads.c.hold_until)
                .where(threads.c.thread_id == thread_id, owned(threads.c.owner, owner))
                .with_for_update()).first()
            if row is None or row.temporary:
                raise NotFound(f"thread {thread_id} not found")
            if self._held(row.hold_until):
                raise Conflict(f"thread {thread_id} is busy: another change of its state "
                               "is under way; retry once it is done")
            active = conn.execute(sa.select(runs.c.run_id).where(
                runs.c.thread_id == thread_id, runs.c.status.in_(_ACTIVE_VALUES)).limit(1)).first()
            if active is not None:
                raise Conflict(f"thread {thread_id} is busy with run {active.run_id}: its "
                               "state can change only between runs")
            return self._hold(conn, thread_id)

        return await self.db.run(_tx)

    async def release_thread(self, thread_id: str, token: str) -> None:
        """End a hold (only the holder's: a hold that expired and was taken again is
        not touched). Wakes the dispatchers (PostgreSQL; on SQLite the caller wakes
        its own): runs admitted meanwhile may start now."""

        def _tx(conn: Connection) -> None:
            conn.execute(threads.update().where(threads.c.thread_id == thread_id,
                                                threads.c.hold_token == token)
                         .values(hold_token=None, hold_until=None))
            self._notify(conn, "runlane_wake")  # type: ignore[attr-defined]  # Store's

        await self.db.run(_tx)

    @staticmethod
    def _set_expiry(conn: Connection, thread_id: str, when: datetime.datetime | None) -> None:
        conn.execute(threads.update().where(threads.c.thread_id == thread_id)
                     .values(expires_at=when))
