"""The durable store: threads, assistants, runs and tombstones over SQLAlchemy Core.

This is where a run's status changes. Every transition is one compare-and-set
statement (`UPDATE ... WHERE status IN (allowed) ... RETURNING`); when a CAS
matches no row, the caller learns why by reading the row afterwards, which is safe
because what made the CAS fail (a terminal status, a recorded cancel) never changes
back.

Each public method is one transaction, written as a plain function over a SQLAlchemy
`Connection` and executed on the database thread (see database.py): one hop from
the event loop per transaction, not one per statement.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from collections.abc import Collection, Iterable
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import Connection

from runlane.contract import (
    ACTIVE,
    FINISHED_WITHOUT_CANCEL,
    MULTITASK_CANCELS,
    CancelAction,
    CancelOutcome,
    MultitaskStrategy,
    RunStatus,
    StopReason,
    ThreadStatus,
    outcome_for_existing_run,
)
from runlane.errors import AlreadyFired, Conflict, NotFound
from runlane.owners import Filters, Owner, matches, owned
from runlane.records import Columns, Run, Tombstone
from runlane.serde import JSONObject, dumps, to_jsonable, utcnow
from runlane.store import idempotency, restore_points
from runlane.store import statements as st
from runlane.store.assistants import AssistantQueries
from runlane.store.crons import realize_firing
from runlane.store.database import Database
from runlane.store.idempotency import IdempotencyKey, claim
from runlane.store.migrate import upgrade
from runlane.store.restore_points import RestorePointQueries
from runlane.store.schema import crons, run_tombstones, runs, threads
from runlane.store.threads import ThreadQueries

# NOTIFY channels (scale-out): a run may start, a cancel was recorded, a run ended,
# a thread got a new run or was deleted (its thread streams read again; the payload
# is the thread id).
WAKE, CANCEL, DONE = "runlane_wake", "runlane_cancel", "runlane_done"
THREAD = "runlane_thread"
_ACTIVE_VALUES = [s.value for s in ACTIVE]


@dataclasses.dataclass
class CreatedRun:
    run: Run
    # Running runs this creation cancelled (multitask interrupt/rollback): the
    # executor must deliver these cancels to their tasks.
    cancelled_running: list[str]
    # Pending runs it cancelled, as they ended: already terminal (or rolled back),
    # their streams end.
    cancelled_pending: list[Run]
    # The run as started in the same transaction (see `create_run`'s `start`), else None.
    started: Run | None = None
    # Not created: a live Idempotency-Key named this earlier run (store/idempotency.py).
    replayed: bool = False


@dataclasses.dataclass
class CancelResult:
    outcome: CancelOutcome
    run: Run | None  # the run as stored (or the tombstone's copy of it)
    delivered_to_task: bool = False  # True when the executor must interrupt a task


@dataclasses.dataclass
class SettleResult:
    """What finalizing a run did."""

    run: Run | None
    needs_rollback: bool = False
    changed: bool = False  # this call's CAS made the run terminal
    # The run's thread has other active runs (queued behind it, one may start now).
    thread_busy: bool = False


class _ClaimRaced(Exception):
    """A claim lost a race for a thread with another worker (PostgreSQL)."""


def _as_dict(row: sa.Row | None) -> dict[str, Any] | None:
    return None if row is None else dict(row._mapping)


def _run(row: Any) -> Run | None:
    return None if row is None else Run.from_row(row)


class Store(AssistantQueries, ThreadQueries, RestorePointQueries):
    """runlane's durable state. Every method is one transaction on the database thread."""

    def __init__(self, database_url: str, pool_size: int = 3) -> None:
        """`pool_size`: PostgreSQL database threads, one connection each."""
        self.url = database_url
        self.db = Database(database_url, pool_size=pool_size, direct=st.ALL)
        self._seq = 0

    async def setup(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, upgrade, self.db.engine)
        if self.db.is_sqlite:

            def _tx(conn: Connection) -> None:
                self._seq = conn.scalar(sa.select(sa.func.max(runs.c.seq))) or 0

            await self.db.run(_tx)

    async def close(self) -> None:
        await self.db.close()

    def _notify(self, conn: Connection, channel: str, payload: str = "") -> None:
        """Tell the other workers (PostgreSQL NOTIFY, delivered when this transaction
        commits). One process on SQLite: the caller acts locally instead."""
        if not self.db.is_sqlite:
            conn.execute(st.NOTIFY, {"p_channel": channel, "p_payload": payload})

    def _lock_thread(self, conn: Connection, thread_id: str) -> None:
        """Serialize status changes on one thread (PostgreSQL). A transaction that
        ends or cancels a run recomputes its thread's status from the thread's other
        runs; two such transactions on one thread must not each miss the other's
        change (READ COMMITTED write skew), so each first locks the thread row, and
        its later statements see what the other committed. SQLite has one writer."""
        if not self.db.is_sqlite:
            conn.execute(st.LOCK_THREAD, {"p_thread_id": thread_id})

    def _lock_thread_if_free(self, conn: Connection, thread_id: str) -> bool:
        """`_lock_thread` without waiting: False if another transaction holds the
        thread's row (or it is gone). For a transaction that already holds run rows
        (the reaper), which would otherwise deadlock with one that holds the thread
        and waits for the run."""
        if self.db.is_sqlite:
            return True
        return conn.execute(st.LOCK_THREAD_IF_FREE, {"p_thread_id": thread_id}).first() is not None

    def _number(self, run: Columns) -> Columns:
        """SQLite: number the run here (one writer). PostgreSQL: its sequence does."""
        if not self.db.is_sqlite:
            return run
        self._seq += 1
        return {**run, "seq": self._seq}

    # ---------------------------------------------------------------- threads

    async def delete_thread(self, thread_id: str, *, owner: Owner = None
                            ) -> list[tuple[str, str]] | None:
        """Delete a thread with its runs and tombstones (a user's delete: no tombstones
        remain, later cancels answer 404). Returns the deleted runs as (run_id, status)
        (running ones must be stopped), or None if there was no such thread (or it is
        another owner's)."""

        def _tx(conn: Connection) -> Any:
            if owner is not None and conn.execute(sa.select(threads.c.thread_id).where(
                    threads.c.thread_id == thread_id,
                    owned(threads.c.owner, owner))).first() is None:
                return None
            return self._delete_thread_rows(conn, thread_id)
        return await self.db.run(_tx)

    def _delete_thread_rows(self, conn: Connection, thread_id: str) -> list[tuple[str, str]] | None:
        deleted = conn.execute(threads.delete().where(threads.c.thread_id == thread_id))
        if deleted.rowcount == 0:
            return None
        result = conn.execute(
            runs.delete()
            .where(runs.c.thread_id == thread_id)
            .returning(runs.c.run_id, runs.c.status)
        )
        deleted_runs = [(r.run_id, r.status) for r in result]
        self._notify(conn, THREAD, thread_id)
        for run_id, status in deleted_runs:
            self._notify(conn, CANCEL if status == RunStatus.RUNNING.value else DONE, run_id)
        conn.execute(run_tombstones.delete().where(run_tombstones.c.thread_id == thread_id))
        restore_points.drop_thread(conn, thread_id)
        # A thread's crons go with it (as the reference server's cascade).
        conn.execute(crons.delete().where(crons.c.thread_id == thread_id))
        return deleted_runs

    async def set_thread_state_cache(
        self, thread_id: str, values: Any, interrupts: JSONObject,
        status: ThreadStatus | None = None,
    ) -> None:
        """Refresh the thread's cached values after a state update outside a run."""

        def _tx(conn: Connection) -> Any:
            updates: Columns = {"values": values, "interrupts": interrupts, "updated_at": utcnow()}
            if status is not None:
                updates["status"] = status.value
            conn.execute(
                threads.update().where(threads.c.thread_id == thread_id).values(**updates)
            )
        return await self.db.run(_tx)

    # ------------------------------------------------------------ idempotency

    async def sweep_idempotency_keys(self, now: datetime.datetime, limit: int) -> int:
        """Delete up to `limit` expired Idempotency-Keys; how many went."""
        return await self.db.run(lambda conn: idempotency.sweep(conn, now, limit))

    async def next_idempotency_expiry(self) -> datetime.datetime | None:
        return await self.db.run(idempotency.next_expiry)

    # ------------------------------------------------------------------- runs

    async def create_run(
        self,
        run: Columns,
        *,
        if_not_exists: str,
        thread_defaults: Columns,
        owner: Owner = None,
        start: tuple[str, Any] | None = None,
        idempotency: IdempotencyKey | None = None,
        firing: tuple[str, Any] | None = None,
    ) -> CreatedRun:
        """Admit a run on its thread, applying the multitask strategy atomically.
        The run belongs to its thread's owner; a thread created here, to `owner`.

        reject: 409 if the thread has an active run. interrupt/rollback: record a
        cancel on every active run of the thread, in this same transaction, so the
        new run cannot start before they are terminal. enqueue: just wait.

        `start` (worker id, lease end): the caller has a free slot and nothing else
        is waiting for one, so a run that can start at once (its thread has no other
        active run, no `after_seconds`, no hold) goes pending -> running in this same
        transaction, as a claim would have done a moment later (`started`); on a
        cluster no other worker is woken for it. A run left pending is announced
        (WAKE) unless it waits behind a running run.

        `idempotency`: claimed in this transaction; a live key answers the run it
        names instead (`replayed`), and nothing is admitted.
        `firing` (cron id, firing time): the cron firing this run realizes, cleared in
        this same transaction; AlreadyFired (and nothing written) if another
        admission realized it first (see store/crons.py).
        """

        def _tx(conn: Connection) -> CreatedRun:
            if idempotency is not None:
                target = claim(conn, idempotency,
                               {"thread_id": run["thread_id"], "run_id": run["run_id"]},
                               run["created_at"])
                if target is not None:
                    return self._replayed(conn, target["thread_id"], target["run_id"])
            created = self._admit(conn, run, if_not_exists, thread_defaults, owner, start)
            if firing is not None and not realize_firing(conn, *firing):
                raise AlreadyFired(f"cron {firing[0]}: the firing at {firing[1].isoformat()} "
                                   "already created its run")
            return created

        return await self.db.run(_tx)

    async def create_runs(self, items: list[tuple[Columns, Columns]], *,
                          owner: Owner = None,
                          idempotency: IdempotencyKey | None = None) -> list[CreatedRun]:
        """Admit many stateless runs (each on a thread of its own) in one transaction:
        all of them or, if anything fails, none. Items are (run, thread row).
        `idempotency`: one key for the whole batch; a live one answers its runs."""

        def _tx(conn: Connection) -> list[CreatedRun]:
            if idempotency is not None and items:
                names = [[run["thread_id"], run["run_id"]] for run, _ in items]
                target = claim(conn, idempotency, {"runs": names}, items[0][0]["created_at"])
                if target is not None:
                    return [self._replayed(conn, thread_id, run_id)
                            for thread_id, run_id in target["runs"]]
            return [self._admit(conn, run, "create", thread, owner) for run, thread in items]

        return await self.db.run(_tx)

    def _replayed(self, conn: Connection, thread_id: str, run_id: str) -> CreatedRun:
        """The run an Idempotency-Key names, as it stands now (or as its rollback
        tombstone keeps it). Deleted with its thread: 409, never a new run."""
        found = self._get_run(conn, thread_id, run_id)
        if found is None:
            tomb = self._get_tombstone(conn, thread_id, run_id)
            found = None if tomb is None else tomb.run
        if found is None:
            raise Conflict(
                f"the run this Idempotency-Key created (run {run_id} on thread {thread_id}) "
                "no longer exists (deleted, or a stateless run whose thread went when it "
                "ended: on_completion='keep' keeps it); a retry does not start another: use "
                "a new key for a new run")
        return CreatedRun(found, [], [], replayed=True)

    # Over the complexity ceiling: one transaction, each multitask strategy's step in order.
    def _admit(self, conn: Connection, run: Columns, if_not_exists: str,  # noqa: C901
               thread_defaults: Columns, owner: Owner,
               start: tuple[str, Any] | None = None) -> CreatedRun:
        """The body of a run's admission (see create_run), inside a transaction."""
        strategy = MultitaskStrategy(run["multitask_strategy"])
        now = run["created_at"]
        if conn.execute(st.LOCK_ASSISTANT_TO_ADMIT,
                        {"p_assistant_id": run["assistant_id"]}).first() is None:
            raise NotFound(f"assistant {run['assistant_id']} not found")
        thread = _as_dict(conn.execute(
            st.SELECT_THREAD_TO_ADMIT, {"p_thread_id": run["thread_id"]}
        ).first())
        if thread is not None and owner is not None and thread["owner"] != owner:
            # Another owner's thread answers exactly as a missing one (same status,
            # same words), except that its id cannot be taken for a new thread: ids
            # are global, so if_not_exists=create is 409 as for any existing thread.
            if if_not_exists == "create":
                raise Conflict(f"thread {run['thread_id']} already exists")
            thread = None
        if thread is None:
            if if_not_exists != "create":
                raise NotFound(
                    f"thread {run['thread_id']} not found "
                    "(pass if_not_exists='create' to create it)"
                )
            conn.execute(st.INSERT_THREAD, thread_defaults)
            thread = thread_defaults
        active = conn.execute(
            st.SELECT_ACTIVE_ON_THREAD, {"p_thread_id": run["thread_id"]}
        ).all()
        cancelled_running: list[str] = []
        cancelled_pending: list[Run] = []
        if active and strategy is MultitaskStrategy.REJECT:
            raise Conflict(
                f"thread {run['thread_id']} is busy with run {active[0].run_id} "
                "and multitask_strategy is 'reject'"
            )
        cancels = MULTITASK_CANCELS[strategy]
        if active and cancels is not None:
            action, reason = cancels
            for other in active:
                result = self._cancel_in(
                    conn, run["thread_id"], other.run_id, action, reason.value, now
                )
                if result.delivered_to_task:
                    cancelled_running.append(other.run_id)
                elif result.outcome is CancelOutcome.RECORDED and result.run is not None:
                    cancelled_pending.append(result.run)
        new_run = self._number({**run, "owner": thread.get("owner")})  # the thread's owner
        held = thread.get("hold_until")
        # `start`, if the run starts within its admission.
        starts = start if (not active and not new_run.get("not_before")
                           and (held is None or held <= now)) else None
        if starts is not None and self.db.is_sqlite:
            # Inserted running, as START_ADMITTED below would leave it, in one statement
            # instead of two: the row is numbered here (`_number`), so the record is the
            # columns written. Its kwargs are its own copy, as a row read back would be:
            # the executor's run and the admission's answer share nothing mutable.
            running = {**new_run, "status": RunStatus.RUNNING.value, "worker_id": starts[0],
                       "started_at": now, "updated_at": now, "lease_expires_at": starts[1]}
            conn.execute(st.INSERT_RUN, running)
            started: Run | None = Run.from_columns(
                {**running, "kwargs": orjson.loads(dumps(running["kwargs"])),
                 "metadata": orjson.loads(dumps(running["metadata"]))})
        else:
            conn.execute(st.INSERT_RUN, new_run)
            started = None
        if not thread.get("temporary"):  # a stateless run's thread has no stream
            self._notify(conn, THREAD, run["thread_id"])
        thread_meta = thread["metadata"]
        if thread_meta.get("graph_id") is None:
            # The thread's first run decides which graph reads its state.
            conn.execute(st.MARK_THREAD_BUSY_FOR_GRAPH, {
                "p_thread_id": run["thread_id"], "p_now": now,
                "p_metadata": {**thread_meta, "graph_id": run["graph_id"],
                               "assistant_id": run["assistant_id"]},
            })
        elif thread["status"] != ThreadStatus.BUSY.value or cancelled_pending:
            # (A pending run the strategy just stopped released the thread, which was
            # busy when read above: if it was the only active run, the thread is idle
            # now, and busy again with this one.)
            conn.execute(st.MARK_THREAD_BUSY, {"p_thread_id": run["thread_id"], "p_now": now})
        if starts is not None:
            if started is None:  # PostgreSQL: the row's number is its sequence's
                started = _run(conn.execute(st.START_ADMITTED, {
                    "p_run_id": new_run["run_id"], "p_worker_id": starts[0], "p_now": now,
                    "p_lease_until": starts[1],
                }).first())
            return CreatedRun(Run.from_columns(new_run), [], [], started)
        for cancelled_id in cancelled_running:
            self._notify(conn, CANCEL, cancelled_id)
        for ended in cancelled_pending:
            self._notify(conn, DONE, ended.run_id)
        if not any(other.status == RunStatus.RUNNING.value for other in active):
            # The run may be startable now: every worker claims (or, if full, knows a
            # run waits for a slot). Behind a running run it is not, and that run's
            # end announces it (settle_run, complete_rollback and the reaper WAKE when
            # the thread still has an active run): no claim on every worker for
            # nothing.
            self._notify(conn, WAKE)
        return CreatedRun(Run.from_columns(new_run), cancelled_running, cancelled_pending)

    async def get_run(self, thread_id: str, run_id: str, *, owner: Owner = None) -> Run | None:

        def _tx(conn: Connection) -> Any:
            return self._get_run(conn, thread_id, run_id, owner)
        return await self.db.read(_tx)

    @staticmethod
    def _get_run(conn: Connection, thread_id: str, run_id: str,
                 owner: Owner = None) -> Run | None:
        if owner is None:
            return _run(conn.execute(
                st.SELECT_RUN, {"p_run_id": run_id, "p_thread_id": thread_id}).first())
        return _run(conn.execute(st.SELECT_RUN_OWNED, {
            "p_run_id": run_id, "p_thread_id": thread_id, "p_owner": owner}).first())

    async def get_tombstone(self, thread_id: str, run_id: str, *,
                            owner: Owner = None) -> Tombstone | None:

        def _tx(conn: Connection) -> Any:
            return self._get_tombstone(conn, thread_id, run_id, owner)
        return await self.db.run(_tx)

    @staticmethod
    def _get_tombstone(conn: Connection, thread_id: str, run_id: str,
                       owner: Owner = None) -> Tombstone | None:
        result = conn.execute(
            sa.select(run_tombstones).where(
                run_tombstones.c.run_id == run_id, run_tombstones.c.thread_id == thread_id,
                owned(run_tombstones.c.owner, owner),
            )
        )
        row = result.first()
        return None if row is None else Tombstone.from_row(row)

    async def list_runs(
        self, thread_id: str, *, limit: int, offset: int, status: str | None,
        owner: Owner = None,
    ) -> list[Run]:
        query = sa.select(runs).where(runs.c.thread_id == thread_id, owned(runs.c.owner, owner))
        if status is not None:
            query = query.where(runs.c.status == status)
        query = query.order_by(runs.c.seq.desc()).limit(limit).offset(offset)

        def _tx(conn: Connection) -> Any:
            return [Run.from_row(r) for r in conn.execute(query)]
        return await self.db.run(_tx)

    async def active_run_ids(
        self, *, thread_id: str | None = None, run_ids: Iterable[str] | None = None,
        status: str | None = None, scheduled: bool = True, owner: Owner = None,
    ) -> list[tuple[str, str]]:
        """(thread_id, run_id) of active runs matching a bulk-cancel selection
        (`scheduled=False`: without the runs created with `after_seconds`)."""
        query = sa.select(runs.c.thread_id, runs.c.run_id).where(
            runs.c.status.in_(_ACTIVE_VALUES), owned(runs.c.owner, owner))
        if not scheduled:
            query = query.where(runs.c.not_before.is_(None))
        if thread_id is not None:
            query = query.where(runs.c.thread_id == thread_id)
        if run_ids is not None:
            query = query.where(runs.c.run_id.in_(list(run_ids)))
        if status is not None:
            query = query.where(runs.c.status == status)
        # Newest first: a thread's queued runs are cancelled before the run ahead of
        # them, so none of them can start (on any worker) in between the cancels.
        query = query.order_by(runs.c.seq.desc())

        def _tx(conn: Connection) -> Any:
            return [(r.thread_id, r.run_id) for r in conn.execute(query)]
        return await self.db.run(_tx)

    async def delete_run(self, thread_id: str, run_id: str, *,
                         owner: Owner = None) -> Run | None:
        """A user's delete of a finished run. Active runs must be cancelled first."""

        def _tx(conn: Connection) -> Any:
            result = conn.execute(
                runs.delete()
                .where(runs.c.run_id == run_id, runs.c.thread_id == thread_id)
                .where(owned(runs.c.owner, owner))
                .where(runs.c.status.notin_(_ACTIVE_VALUES))
                .returning(*runs.c)
            )
            deleted = _run(result.first())
            if deleted is not None:
                return deleted
            existing = self._get_run(conn, thread_id, run_id, owner)
            if existing is not None:
                raise Conflict(
                    f"run {run_id} is {existing.status.value}: cancel it before deleting it"
                )
            # A tombstone is history, not a run: deleting it makes later cancels 404.
            tomb = conn.execute(
                run_tombstones.delete()
                .where(run_tombstones.c.run_id == run_id, run_tombstones.c.thread_id == thread_id)
                .where(owned(run_tombstones.c.owner, owner))
                .returning(run_tombstones.c.run)
            )
            row = tomb.first()
            return None if row is None else Run.from_json(row.run)
        return await self.db.run(_tx)

    async def claim(self, worker_id: str, lease_until: Any,
                    limit: int) -> tuple[list[Run] | None, Any]:
        """pending -> running for up to `limit` of the oldest startable runs: their
        thread has no running run and no older due pending run, and they are due
        (`after_seconds`). One CAS statement (see statements.CLAIM); the threads are
        already `busy`, as they have been since their runs were admitted.

        Returns (claimed runs, or None: lost a race with another worker, try again;
        when the earliest delayed run becomes due, or None). In autocommit: the claim
        is one statement, and when the next delayed run is due needs no transaction
        with it (a hint for the dispatcher's timer)."""
        params = {"p_worker_id": worker_id, "p_now": utcnow(), "p_lease_until": lease_until,
                  "p_limit": limit}

        def _tx(conn: Connection) -> tuple[list[Run] | None, Any]:
            try:
                claimed = [Run.from_row(r) for r in conn.execute(st.CLAIM, params)]
            except sa.exc.IntegrityError as exc:
                # PostgreSQL: another worker started a run on one of these threads at
                # the same instant (the one-running-run-per-thread index refused). The
                # statement rolls back alone (autocommit: no savepoint needed).
                raise _ClaimRaced from exc
            due = conn.scalar(st.NEXT_DUE, params)
            if due is not None and due.tzinfo is None:  # SQLite drops the zone
                due = due.replace(tzinfo=datetime.UTC)
            return claimed, due

        try:
            return await self.db.autocommit(_tx)
        except _ClaimRaced:
            return None, None

    async def cancel_run(
        self, thread_id: str, run_id: str, action: CancelAction, reason: str, *,
        owner: Owner = None, auth_filter: Filters | None = None,
    ) -> CancelResult:
        """Another owner's run answers NOT_FOUND, exactly like a missing one; so does a
        run whose thread fails an authorization handler's filters (`auth_filter`),
        checked in this same transaction."""

        def _tx(conn: Connection) -> Any:
            self._lock_thread(conn, thread_id)
            if auth_filter is not None:
                thread = self._get_thread(conn, thread_id, owner)
                if thread is None or not matches(thread.metadata, auth_filter):
                    return CancelResult(CancelOutcome.NOT_FOUND, None)
            return self._cancel_in(conn, thread_id, run_id, action, reason, utcnow(), owner)
        return await self.db.run(_tx)

    def _cancel_in(
        self,
        conn: Connection,
        thread_id: str,
        run_id: str,
        action: CancelAction,
        reason: str,
        now: Any,
        owner: Owner = None,
    ) -> CancelResult:
        """Record a cancel: the instant it takes effect. Two CAS statements, tried in
        order; if neither matches, the run's current (absorbing) state decides."""
        ids = {"p_run_id": run_id, "p_thread_id": thread_id, "p_owner": owner,
               "p_cancel_action": action.value, "p_cancel_reason": reason, "p_now": now}
        # 1. A pending run never started: it stops right here.
        if action is CancelAction.INTERRUPT:
            run = _run(conn.execute(
                st.CANCEL_PENDING if owner is None else st.CANCEL_PENDING_OWNED, ids).first())
            if run is not None:
                self._release_thread(conn, thread_id, now)
                self._notify(conn, DONE, run_id)
                return CancelResult(CancelOutcome.RECORDED, run)
        else:
            run = _run(conn.execute(
                st.REMOVE_PENDING if owner is None else st.REMOVE_PENDING_OWNED, ids).first())
            if run is not None:
                run = self._insert_tombstone(
                    conn, dataclasses.replace(run, cancel_action=action, cancel_reason=reason),
                    now)
                self._release_thread(conn, thread_id, now)
                return CancelResult(CancelOutcome.RECORDED, run)
        # 2. A running run: record the request; its executor stops it and settles.
        run = _run(conn.execute(
            st.CANCEL_RUNNING if owner is None else st.CANCEL_RUNNING_OWNED, ids).first())
        if run is not None:
            self._notify(conn, CANCEL, run_id)
            return CancelResult(CancelOutcome.RECORDED, run, delivered_to_task=True)
        # 3. Neither CAS matched: the run is terminal, already cancelled, or gone.
        existing = self._get_run(conn, thread_id, run_id, owner)
        if existing is not None:
            outcome = outcome_for_existing_run(existing.status, existing.cancel_action)
            return CancelResult(outcome, existing)
        tomb = self._get_tombstone(conn, thread_id, run_id, owner)
        if tomb is not None:
            return CancelResult(CancelOutcome.ROLLED_BACK, tomb.run)
        return CancelResult(CancelOutcome.NOT_FOUND, None)

    def _insert_tombstone(self, conn: Connection, run: Run, now: Any) -> Run:
        """Leave the tombstone of a rolled-back run; the run as it ended (the copy the
        tombstone keeps, and cancel answers carry)."""
        # A rolled-back run was stopped by a cancel: its final status is `interrupted`
        # (the deleted row still said pending/running).
        ended = dataclasses.replace(run, status=RunStatus.INTERRUPTED,
                                    stop_reason=StopReason.CANCELLED.value,
                                    updated_at=now, ended_at=now)
        conn.execute(
            run_tombstones.insert().values(
                run_id=ended.run_id,
                thread_id=ended.thread_id,
                outcome="rolled_back",
                run=to_jsonable(ended),
                owner=ended.owner,
                created_at=now,
            )
        )
        return ended

    @staticmethod
    def _thread_after_run(
        conn: Connection, thread_id: str, now: Any, status: ThreadStatus, values: Any,
        interrupts: JSONObject,
    ) -> bool:
        """A run ended with a new thread state: cache it, and the thread's status.
        True if the thread is still busy (it has other active runs)."""
        return conn.execute(st.SET_THREAD_AFTER_RUN, {
            "p_thread_id": thread_id, "p_status": status.value, "p_values": values,
            "p_interrupts": interrupts, "p_now": now,
        }).scalar() == ThreadStatus.BUSY.value

    @staticmethod
    def _release_thread(conn: Connection, thread_id: str, now: Any) -> None:
        """A run ended without a new state (cancelled before it started)."""
        conn.execute(st.RELEASE_THREAD, {"p_thread_id": thread_id, "p_now": now})

    async def settle_run(
        self,
        run_id: str,
        *,
        thread_id: str,
        worker_id: str,
        proposed: RunStatus,
        stop_reason: StopReason,
        error: Any,
        thread_status: ThreadStatus,
        values: Any,
        interrupts: JSONObject,
        restore_kept: bool = False,
        hold: tuple[str, datetime.datetime] | None = None,
    ) -> SettleResult:
        """Finalize a running run. The executor proposes; the store decides.

        First CAS: running & no cancel -> proposed. If a cancel was recorded it fails,
        and the run ends `interrupted` instead (second CAS), even if the graph's last
        step already returned. A recorded rollback is reported back: the executor
        deletes the run's checkpoints and then calls `complete_rollback`.

        `restore_kept`: the run has a restore point (keep_restore_point), deleted in
        the transaction that makes the run terminal (a rollback's keeps it: its
        completion needs it).

        `hold` (token, until): the run's thread is held (Store.hold_thread) in the
        transaction that makes the run terminal, so its next run does not start
        before the holder releases it (a node of this run still executing in a
        thread; see Supervision) or `until` passes.
        """
        # Only what a run can end in by itself: `interrupted` is decided by a
        # recorded cancel (the second CAS below), never proposed.
        if proposed not in FINISHED_WITHOUT_CANCEL:
            raise ValueError(f"a running run cannot end as {proposed.value} by itself "
                             "(interrupted: only a recorded cancel ends it so)")
        now = utcnow()
        ids = {"p_run_id": run_id, "p_now": now, "p_worker_id": worker_id}

        def _tx(conn: Connection) -> SettleResult:
            self._lock_thread(conn, thread_id)
            final_thread_status = thread_status
            row = _run(conn.execute(st.SETTLE_PROPOSED, {
                **ids, "p_status": proposed.value, "p_stop_reason": stop_reason.value,
                "p_error": error,
            }).first())
            if row is None:
                row = _run(conn.execute(st.SETTLE_CANCELLED, ids).first())
                if row is not None:
                    final_thread_status = ThreadStatus.IDLE  # stopped: not paused, not failed
            if row is None:
                current = _run(conn.execute(st.SELECT_RUN_BY_ID, ids).first())
                if (
                    current is not None
                    and current.status is RunStatus.RUNNING
                    and current.cancel_action is CancelAction.ROLLBACK
                    # Only to its owner: completing it deletes checkpoints before its
                    # fenced CAS, and a worker whose run was adopted must not write.
                    and current.worker_id == worker_id
                ):
                    return SettleResult(current, needs_rollback=True)
                return SettleResult(current)  # already settled elsewhere, or deleted
            busy = self._thread_after_run(
                conn, row.thread_id, now, final_thread_status, values, interrupts
            )
            if restore_kept:
                restore_points.drop(conn, [run_id])
            if hold is not None:
                self._hold_for_run(conn, row.thread_id, hold)
            self._notify(conn, DONE, run_id)
            if busy:
                # A run queued behind this one on its thread may start now, on any
                # worker. Otherwise no run became startable on another worker: the slot
                # freed is this worker's, and its supervisor wakes its own dispatcher
                # (a WAKE to every worker cost each a claim transaction per run).
                self._notify(conn, WAKE)
            return SettleResult(row, changed=True, thread_busy=busy)

        return await self.db.run(_tx)

    @staticmethod
    def _hold_for_run(conn: Connection, thread_id: str,
                      hold: tuple[str, datetime.datetime]) -> None:
        """Hold a thread whose run is ending here (no run is active on it: a hold
        taken earlier ended before the run started), as Store.hold_thread does."""
        token, until = hold
        conn.execute(threads.update().where(threads.c.thread_id == thread_id)
                     .values(hold_token=token, hold_until=until))

    async def complete_rollback(self, run_id: str, thread_id: str, worker_id: str | None,
                                values: Any, interrupts: JSONObject,
                                thread_status: ThreadStatus,
                                hold: tuple[str, datetime.datetime] | None = None,
                                ) -> Run | None:
        """Remove a rolled-back run, leaving its tombstone (after its checkpoints went).
        Fenced by the owner's worker id. `hold`: as for settle_run."""
        now = utcnow()

        def _tx(conn: Connection) -> Any:
            self._lock_thread(conn, thread_id)
            result = conn.execute(
                runs.delete()
                .where(runs.c.run_id == run_id, runs.c.status == RunStatus.RUNNING.value)
                .where(runs.c.cancel_action == CancelAction.ROLLBACK.value)
                .where(runs.c.worker_id == worker_id)
                .returning(*runs.c)
            )
            removed = _run(result.first())
            if removed is None:
                return None
            row = self._insert_tombstone(conn, removed, now)
            restore_points.drop(conn, [run_id])
            if hold is not None:
                self._hold_for_run(conn, thread_id, hold)
            self._thread_after_run(conn, row.thread_id, now, thread_status, values, interrupts)
            self._notify(conn, DONE, run_id)
            self._notify(conn, WAKE)
            return row
        return await self.db.run(_tx)

    async def renew_leases(self, worker_id: str, lease_until: Any,
                           only: Collection[str] | None = None) -> dict[str, str | None]:
        """Extend the leases of this worker's running runs: {run_id: cancel_action}.
        A run missing from the answer is no longer this worker's to write. `only`: the
        runs the worker executes (a worker always says; None: all of its runs), so that
        one it stopped without writing is left to expire and be reaped."""
        params: dict[str, Any] = {"p_worker_id": worker_id, "p_lease_until": lease_until}
        statement = st.RENEW_LEASES
        if only is not None:
            statement, params["p_run_ids"] = st.RENEW_LEASES_OF, sorted(only)

        def _tx(conn: Connection) -> dict[str, str | None]:
            return {r.run_id: r.cancel_action for r in conn.execute(statement, params)}

        return await self.db.autocommit(_tx)  # one statement

    async def reap_expired(
        self, deadline: Any, worker_id: str, lease_until: Any
    ) -> tuple[list[Run], list[Run]]:
        """Finish runs whose owner's lease ran out before `deadline`: `interrupted`
        if a cancel was recorded, else `error` (worker lost). A recorded rollback is
        adopted instead (returned second) for this worker to complete."""
        now = utcnow()
        lost = {"error": "WorkerLost",
                "message": "the worker executing this run stopped renewing its lease"}

        def _tx(conn: Connection) -> tuple[list[Run], list[Run]]:
            finished: list[Run] = []
            adopted: list[Run] = []
            expired = conn.execute(st.SELECT_EXPIRED, {"p_deadline": deadline}).mappings().all()
            for run in expired:
                if not self._lock_thread_if_free(conn, run["thread_id"]):
                    continue  # its thread is busy right now: reaped next time
                ids = {"p_run_id": run["run_id"], "p_deadline": deadline}
                if run["cancel_action"] == CancelAction.ROLLBACK.value:
                    claimed = conn.execute(st.ADOPT_EXPIRED, {
                        **ids, "p_worker_id": worker_id, "p_lease_until": lease_until,
                    }).first()
                    if claimed is not None:
                        adopted.append(Run.from_row(claimed))
                    continue
                cancelled = run["cancel_action"] == CancelAction.INTERRUPT.value
                reaped = _run(conn.execute(st.REAP_EXPIRED, {
                    **ids, "p_now": now,
                    "p_status": (RunStatus.INTERRUPTED if cancelled else RunStatus.ERROR).value,
                    "p_stop_reason": (StopReason.CANCELLED if cancelled
                                      else StopReason.WORKER_LOST).value,
                    "p_error": None if cancelled else lost,
                }).first())
                if reaped is not None:
                    restore_points.drop(conn, [reaped.run_id])
                    self._release_thread(conn, reaped.thread_id, now)
                    self._notify(conn, DONE, reaped.run_id)
                    finished.append(reaped)
            if finished:
                self._notify(conn, WAKE)
            return finished, adopted

        return await self.db.run(_tx)

    async def recover_after_restart(self) -> tuple[list[tuple[str, Run]], list[Run]]:
        """Finish runs left active by a dead process: interrupted if a cancel was
        recorded, error otherwise; returned as (previous status, row). Runs whose
        rollback was recorded are returned second, still running, their threads
        still busy: the caller completes their rollback. Scheduled runs
        (`after_seconds`, still pending) stay queued: this process starts them when
        they are due."""
        now = utcnow()
        scheduled = sa.and_(runs.c.status == RunStatus.PENDING.value,
                            runs.c.not_before.is_not(None))

        def _tx(conn: Connection) -> Any:
            error = {"error": "ServerRestarted",
                     "message": "the server restarted while this run was active"}
            # One writer (SQLite, the only backend that recovers this way): this read
            # and the updates below see the same rows.
            previous = {r.run_id: r.status for r in conn.execute(
                sa.select(runs.c.run_id, runs.c.status).where(runs.c.status.in_(_ACTIVE_VALUES))
            )}
            finished = list(conn.execute(
                runs.update()
                .where(runs.c.status.in_(_ACTIVE_VALUES))
                .where(runs.c.cancel_action == CancelAction.INTERRUPT.value)
                .values(status=RunStatus.INTERRUPTED.value,
                        stop_reason=StopReason.CANCELLED.value, updated_at=now, ended_at=now)
                .returning(*runs.c)
            ).all())
            finished += conn.execute(
                runs.update()
                .where(runs.c.status.in_(_ACTIVE_VALUES))
                .where(runs.c.cancel_action.is_(None), ~scheduled)
                .values(status=RunStatus.ERROR.value, error=error,
                        stop_reason=StopReason.SERVER_RESTARTED.value,
                        updated_at=now, ended_at=now)
                .returning(*runs.c)
            ).all()
            leftover = [
                Run.from_row(r)
                for r in conn.execute(
                    sa.select(runs).where(runs.c.status.in_(_ACTIVE_VALUES),
                                          runs.c.cancel_action == CancelAction.ROLLBACK.value)
                )
            ]
            # Restore points of the runs just finished (those of the rollbacks left to
            # complete stay: their completion restores from them).
            restore_points.drop_orphans(conn)
            # Holds of the dead process: their changes ended with it.
            conn.execute(threads.update().where(threads.c.hold_token.is_not(None))
                         .values(hold_token=None, hold_until=None))
            # A thread stays busy while a run of it is still active: a delayed one, or
            # a rollback left to complete, whose completion sets what the thread is
            # then (in its own transaction). Never an idle thread with a running run,
            # even if this process dies again before completing it.
            still_active = sa.select(runs.c.run_id).where(
                runs.c.thread_id == threads.c.thread_id,
                runs.c.status.in_(_ACTIVE_VALUES)).exists()
            conn.execute(
                threads.update()
                .where(threads.c.status == ThreadStatus.BUSY.value, ~still_active)
                .values(status=ThreadStatus.IDLE.value, updated_at=now)
            )
            return ([(previous[r.run_id], Run.from_row(r)) for r in finished], leftover)
        return await self.db.run(_tx)

    async def count_active_runs(self) -> dict[str, int]:
        """{status: count} of pending and running runs (metrics; an index range)."""
        query = (sa.select(runs.c.status, sa.func.count()).where(runs.c.status.in_(_ACTIVE_VALUES))
                 .group_by(runs.c.status))

        def _tx(conn: Connection) -> dict[str, int]:
            return {status: int(count) for status, count in conn.execute(query)}
        return await self.db.run(_tx)

    async def ping(self) -> None:
        """A trivial query through the database thread (readiness)."""

        def _tx(conn: Connection) -> None:
            conn.execute(sa.text("SELECT 1"))
        await self.db.run(_tx)

    async def temporary_thread_ids_done(self, older_than: Any = None) -> list[str]:
        """Temporary (stateless) threads with no active run, last updated before
        `older_than`: left over by a crash or a shutdown."""

        def _tx(conn: Connection) -> Any:
            # A run still owing its webhook keeps its thread (the payload reads it).
            active = sa.select(runs.c.thread_id).where(sa.or_(
                runs.c.status.in_(_ACTIVE_VALUES),
                runs.c.webhook_state.in_(["pending", "sending"])))
            query = sa.select(threads.c.thread_id).where(
                threads.c.temporary.is_(True), threads.c.thread_id.notin_(active)
            )
            if older_than is not None:
                query = query.where(threads.c.updated_at < older_than)
            result = conn.execute(query.limit(500))
            return [r.thread_id for r in result]
        return await self.db.run(_tx)
