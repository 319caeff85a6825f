"""The store's hot statements, built once.

Building a SQLAlchemy Core statement costs more than executing it on SQLite (about
100 us against 30 us measured here), so the statements every run goes through are
constructed at import, with named parameters (`p_*`, to stay clear of column names),
and executed with a parameter dict. Their shapes stay readable Core, identical on
every backend.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from runlane.contract import ACTIVE, CancelAction, RunStatus, StopReason, ThreadStatus
from runlane.store.schema import assistants, runs, threads

P = sa.bindparam
RUNNING = RunStatus.RUNNING.value
PENDING = RunStatus.PENDING.value


def is_active(status: sa.ColumnElement[str]) -> sa.ColumnElement[bool]:
    # Spelled out rather than IN (...): an IN list is re-rendered on every execution.
    return sa.or_(*(status == s.value for s in sorted(ACTIVE)))

SELECT_ASSISTANT = sa.select(assistants).where(assistants.c.assistant_id == P("p_assistant_id"))
SELECT_THREAD = sa.select(threads).where(threads.c.thread_id == P("p_thread_id"))
# The same reads as an owner makes them (auth on): its own rows, and for assistants
# the shared ones too (owner NULL), as owners.owned / owners.shared_or_owned select.
SELECT_ASSISTANT_VISIBLE = SELECT_ASSISTANT.where(
    sa.or_(assistants.c.owner == P("p_owner"), assistants.c.owner.is_(None)))
SELECT_THREAD_OWNED = SELECT_THREAD.where(threads.c.owner == P("p_owner"))
# Admitting a run locks its thread's row (PostgreSQL; SQLite has one writer anyway),
# so runs on one thread are admitted, numbered and strategy-checked one at a time.
# Only what admission reads: a thread's `values` can be large, and decoding them on
# every run creation would cost the most on the threads with the longest history.
SELECT_THREAD_TO_ADMIT = sa.select(
    threads.c.thread_id, threads.c.status, threads.c.metadata, threads.c.owner,
    threads.c.hold_until,
).where(threads.c.thread_id == P("p_thread_id")).with_for_update()
# Serializes status changes on one thread (PostgreSQL; see Store._lock_thread).
LOCK_THREAD = (sa.select(threads.c.thread_id).where(threads.c.thread_id == P("p_thread_id"))
               .with_for_update())
INSERT_THREAD = threads.insert()
# POST /threads: ON CONFLICT DO NOTHING, so of two creations of one id racing, one
# inserts and the other learns it lost (no row returned) instead of failing on the
# primary key. The clause is each dialect's own: one statement per backend.
INSERT_THREAD_IF_NEW_SQLITE = (sqlite.insert(threads)
                               .on_conflict_do_nothing(index_elements=["thread_id"])
                               .returning(threads.c.thread_id))
INSERT_THREAD_IF_NEW_POSTGRESQL = (postgresql.insert(threads)
                                   .on_conflict_do_nothing(index_elements=["thread_id"])
                                   .returning(threads.c.thread_id))
SELECT_RUN = sa.select(runs).where(
    runs.c.run_id == P("p_run_id"), runs.c.thread_id == P("p_thread_id")
)
SELECT_RUN_OWNED = SELECT_RUN.where(runs.c.owner == P("p_owner"))
SELECT_RUN_BY_ID = sa.select(runs).where(runs.c.run_id == P("p_run_id"))
INSERT_RUN = runs.insert()

# A thread's active runs, oldest first: what a new run's multitask strategy acts on.
SELECT_ACTIVE_ON_THREAD = (
    sa.select(runs.c.run_id, runs.c.status, runs.c.cancel_action)
    .where(runs.c.thread_id == P("p_thread_id"), is_active(runs.c.status))
    .order_by(runs.c.seq)
)

MARK_THREAD_BUSY = (
    threads.update()
    .where(threads.c.thread_id == P("p_thread_id"))
    .values(status=ThreadStatus.BUSY.value, updated_at=P("p_now"))
)
# A thread's first run also records which graph (and assistant) reads its state.
MARK_THREAD_BUSY_FOR_GRAPH = (
    threads.update()
    .where(threads.c.thread_id == P("p_thread_id"))
    .values(status=ThreadStatus.BUSY.value, updated_at=P("p_now"), metadata=P("p_metadata"))
)


# The run's assistant, locked against its deletion until the admission commits
# (PostgreSQL FOR KEY SHARE: a PATCH of the assistant does not wait for it, a DELETE
# does). A run is admitted before its assistant's deletion, which then sees it, or
# finds the assistant gone.
LOCK_ASSISTANT_TO_ADMIT = (
    sa.select(assistants.c.assistant_id)
    .where(assistants.c.assistant_id == P("p_assistant_id"))
    .with_for_update(read=True, key_share=True)
)


def is_due(not_before: sa.ColumnElement) -> sa.ColumnElement[bool]:
    """A pending run may start: it has no delay (`after_seconds`), or its time came."""
    return sa.or_(not_before.is_(None), not_before <= P("p_now"))


# pending -> running for the oldest startable run: it is due, no run is running on
# its thread and no older due run is pending there (enqueue keeps creation order).
# A delayed run that is not due yet does not hold up the runs queued behind it; once
# due, it takes its place in creation order.
_older = runs.alias("older")
_STARTABLE = (
    sa.select(runs.c.run_id)
    .where(runs.c.status == PENDING, runs.c.cancel_action.is_(None), is_due(runs.c.not_before))
    .where(
        ~sa.exists().where(
            _older.c.thread_id == runs.c.thread_id,
            is_active(_older.c.status),
            sa.or_(_older.c.status == RUNNING,
                   sa.and_(_older.c.seq < runs.c.seq, is_due(_older.c.not_before))),
        )
    )
    # Nor while its thread is held (see Store.hold_thread).
    .where(~sa.exists().where(threads.c.thread_id == runs.c.thread_id,
                              threads.c.hold_until > P("p_now")))
    .order_by(runs.c.seq)
    .limit(P("p_limit"))
    # Workers claiming at once skip each other's candidates instead of queueing on them.
    .with_for_update(skip_locked=True)
)
# The startable runs are selected (and locked) exactly once: a CTE, MATERIALIZED on
# PostgreSQL. As a plain `IN (subquery)` the planner may put the subquery on the inner
# side of a nested-loop semi join and rescan it once per pending row; each rescan
# skips the rows this very statement has already updated, so the claim took every
# startable run whatever p_limit said (a worker exceeded its max_concurrency).
_STARTABLE_ONCE = _STARTABLE.cte("startable").prefix_with("MATERIALIZED",
                                                          dialect="postgresql")
# Up to p_limit runs at once (one per thread: only a thread's oldest pending run is
# startable), as many as the worker has free slots.
CLAIM = (
    runs.update()
    .where(runs.c.run_id.in_(sa.select(_STARTABLE_ONCE.c.run_id)))
    .where(runs.c.status == PENDING, runs.c.cancel_action.is_(None), is_due(runs.c.not_before))
    .values(status=RUNNING, worker_id=P("p_worker_id"), started_at=P("p_now"),
            updated_at=P("p_now"), lease_expires_at=P("p_lease_until"))
    .returning(*runs.c)
)

# pending -> running for a run just admitted, in its admission's transaction (see
# Store._admit: one SQLite process, a free slot, nothing else waiting to start).
START_ADMITTED = (
    runs.update()
    .where(runs.c.run_id == P("p_run_id"), runs.c.status == PENDING,
           runs.c.cancel_action.is_(None))
    .values(status=RUNNING, worker_id=P("p_worker_id"), started_at=P("p_now"),
            updated_at=P("p_now"), lease_expires_at=P("p_lease_until"))
    .returning(*runs.c)
)

# When the earliest delayed run becomes due: the dispatcher sleeps until then.
NEXT_DUE = sa.select(sa.func.min(runs.c.not_before)).where(
    runs.c.status == PENDING, runs.c.cancel_action.is_(None), runs.c.not_before > P("p_now")
)

# The executor's proposal: running, with no cancel recorded -> success/error/timeout.
# Every executor write is fenced by its worker id: a worker that lost its lease (its
# run was finished by another worker) matches nothing.
SETTLE_PROPOSED = (
    runs.update()
    .where(runs.c.run_id == P("p_run_id"), runs.c.status == RUNNING)
    .where(runs.c.worker_id == P("p_worker_id"))
    .where(runs.c.cancel_action.is_(None))
    .values(status=P("p_status"), stop_reason=P("p_stop_reason"), error=P("p_error"),
            updated_at=P("p_now"), ended_at=P("p_now"))
    .returning(*runs.c)
)
# A recorded interrupt-cancel wins over whatever the executor proposed.
SETTLE_CANCELLED = (
    runs.update()
    .where(runs.c.run_id == P("p_run_id"), runs.c.status == RUNNING)
    .where(runs.c.worker_id == P("p_worker_id"))
    .where(runs.c.cancel_action == CancelAction.INTERRUPT.value)
    .values(status=RunStatus.INTERRUPTED.value, stop_reason=StopReason.CANCELLED.value,
            updated_at=P("p_now"), ended_at=P("p_now"))
    .returning(*runs.c)
)

# Recording a cancel (Store._cancel_in): the CAS statements, tried in this order.
# Built here like the others: built on the fly, the two a cancel of a running run
# executes cost more than the whole rest of the cancel request. A caller acting as an
# owner (auth on) uses the *_OWNED twin, which also requires the run to be the owner's.
_UNCANCELLED = (runs.c.run_id == P("p_run_id"), runs.c.thread_id == P("p_thread_id"),
                runs.c.cancel_action.is_(None))


def _owned(statement: sa.Update | sa.Delete) -> sa.Update | sa.Delete:
    return statement.where(runs.c.owner == P("p_owner"))


# 1. A pending run never started: interrupt stops it right here ...
CANCEL_PENDING = (
    runs.update()
    .where(*_UNCANCELLED, runs.c.status == PENDING)
    .values(status=RunStatus.INTERRUPTED.value, cancel_action=P("p_cancel_action"),
            cancel_reason=P("p_cancel_reason"), stop_reason=StopReason.CANCELLED.value,
            updated_at=P("p_now"), ended_at=P("p_now"))
    .returning(*runs.c)
)
CANCEL_PENDING_OWNED = _owned(CANCEL_PENDING)
# ... and rollback removes it (the caller leaves a tombstone).
REMOVE_PENDING = runs.delete().where(*_UNCANCELLED, runs.c.status == PENDING).returning(*runs.c)
REMOVE_PENDING_OWNED = _owned(REMOVE_PENDING)
# 2. A running run: record the request; its executor stops it and settles.
CANCEL_RUNNING = (
    runs.update()
    .where(*_UNCANCELLED, runs.c.status == RUNNING)
    .values(cancel_action=P("p_cancel_action"), cancel_reason=P("p_cancel_reason"),
            updated_at=P("p_now"))
    .returning(*runs.c)
)
CANCEL_RUNNING_OWNED = _owned(CANCEL_RUNNING)

_HAS_ACTIVE = (
    sa.select(runs.c.run_id)
    .where(runs.c.thread_id == threads.c.thread_id, is_active(runs.c.status))
    .exists()
)
# After a run ends: busy while another run is active, else the status the run left.
SET_THREAD_AFTER_RUN = (
    threads.update()
    .where(threads.c.thread_id == P("p_thread_id"))
    .values(
        status=sa.case((_HAS_ACTIVE, ThreadStatus.BUSY.value), else_=P("p_status")),
        values=P("p_values"),
        interrupts=P("p_interrupts"),
        updated_at=P("p_now"),
    )
    # busy: the thread has another active run, which may now be startable.
    .returning(threads.c.status)
)
# After a run ends without a new state (a pending run cancelled): a busy thread with
# nothing left to run becomes idle; any other status stays.
RELEASE_THREAD = (
    threads.update()
    .where(threads.c.thread_id == P("p_thread_id"))
    .values(
        status=sa.case(
            (_HAS_ACTIVE, ThreadStatus.BUSY.value),
            (threads.c.status == ThreadStatus.BUSY.value, ThreadStatus.IDLE.value),
            else_=threads.c.status,
        ),
        updated_at=P("p_now"),
    )
)

# A worker's lease renewal, one statement for all its runs. It also returns each
# run's cancel, so a cancel whose notification was lost arrives here.
RENEW_LEASES = (
    runs.update()
    .where(runs.c.worker_id == P("p_worker_id"), runs.c.status == RUNNING)
    .values(lease_expires_at=P("p_lease_until"))
    .returning(runs.c.run_id, runs.c.cancel_action)
)
# The same, for the runs the worker still executes only: a run it stopped without
# writing (fenced, when it could not renew for a whole lease) is still its own in the
# store, and renewing it by worker id alone would keep it `running` forever once the
# database is back (found by `make soak`); left out, its lease runs out and a reaper
# finishes it.
RENEW_LEASES_OF = (
    runs.update()
    .where(runs.c.worker_id == P("p_worker_id"), runs.c.status == RUNNING,
           runs.c.run_id.in_(P("p_run_ids", expanding=True)))
    .values(lease_expires_at=P("p_lease_until"))
    .returning(runs.c.run_id, runs.c.cancel_action)
)

# Runs whose owner stopped renewing: finished by whichever worker notices. On
# PostgreSQL the rows are locked, skipping those another transaction holds (another
# reaper's batch, a renewal or settle in flight): reapers on several workers split
# the expired runs instead of queueing on one another's rows and re-reading runs
# another just finished. Each is still finished by a CAS (REAP_EXPIRED) that
# re-checks it. SQLite ignores the locking clause (one writer).
SELECT_EXPIRED = (
    sa.select(runs)
    .where(runs.c.status == RUNNING, runs.c.lease_expires_at < P("p_deadline"))
    .order_by(runs.c.seq)
    .limit(100)
    .with_for_update(skip_locked=True)
)
# The reaper holds its runs' rows before their threads' (the reverse of a settle or
# a cancel, which lock the thread first): it must never wait for a thread, or the
# two would deadlock. A thread locked right now is skipped, its run reaped next time.
LOCK_THREAD_IF_FREE = (sa.select(threads.c.thread_id)
                       .where(threads.c.thread_id == P("p_thread_id"))
                       .with_for_update(skip_locked=True))
REAP_EXPIRED = (
    runs.update()
    .where(runs.c.run_id == P("p_run_id"), runs.c.status == RUNNING)
    .where(runs.c.lease_expires_at < P("p_deadline"))
    .values(status=P("p_status"), stop_reason=P("p_stop_reason"), error=P("p_error"),
            updated_at=P("p_now"), ended_at=P("p_now"))
    .returning(*runs.c)
)
# A dead owner's recorded rollback: the reaper becomes the owner and completes it.
ADOPT_EXPIRED = (
    runs.update()
    .where(runs.c.run_id == P("p_run_id"), runs.c.status == RUNNING)
    .where(runs.c.lease_expires_at < P("p_deadline"))
    .values(worker_id=P("p_worker_id"), lease_expires_at=P("p_lease_until"))
    .returning(*runs.c)
)

NOTIFY = sa.select(sa.func.pg_notify(P("p_channel"), P("p_payload")))

# Every statement above: on SQLite they run directly on the sqlite3 connection
# (see sqlite_direct.py).
ALL = [v for k, v in list(globals().items()) if k.isupper() and isinstance(v, sa.Executable)]
