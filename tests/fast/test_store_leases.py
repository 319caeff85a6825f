"""Leases on the real store, each backend: renewal (which also carries recorded
cancels), fencing, and reaping the runs of a worker that stopped renewing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from fast.support import (
    OTHER_WORKER,
    WORKER,
    admit,
    admit_running,
    field,
    seconds_from_now,
    settle,
    status_of,
    thread_status,
)
from runlane.contract import CancelAction, RunStatus, StopReason, ThreadStatus
from runlane.executor.leases import LeaseKeeper
from runlane.serde import utcnow
from runlane.store import Store
from runlane.store.schema import runs, threads


async def row_of(store: Store, run: Any) -> Any:
    return await store.get_run(field(run, "thread_id"), field(run, "run_id"))


async def reap(store: Store, reaper: str = OTHER_WORKER) -> tuple[list[Any], list[Any]]:
    """Reap with no grace: every lease that ended before now."""
    return await store.reap_expired(utcnow(), reaper, seconds_from_now(30))


def ids(rows: list[Any]) -> set[str]:
    return {field(r, "run_id") for r in rows}


# --------------------------------------------------------------------- renewal


async def test_renewal_extends_this_workers_running_runs_only(store: Store) -> None:
    mine = [await admit_running(store) for _ in range(2)]
    theirs = await admit_running(store, worker_id=OTHER_WORKER)
    queued = (await admit(store)).run
    lease = seconds_from_now(60)
    leases = await store.renew_leases(WORKER, lease)
    assert leases == {field(r, "run_id"): None for r in mine}
    for run in mine:
        assert field(await row_of(store, run), "lease_expires_at") == lease
    assert field(await row_of(store, theirs), "lease_expires_at") == field(
        theirs, "lease_expires_at")
    assert field(await row_of(store, queued), "lease_expires_at") is None


async def test_renewal_of_named_runs_leaves_the_others_to_expire(store: Store) -> None:
    executing, stopped = await admit_running(store), await admit_running(store)
    lease = seconds_from_now(60)
    leases = await store.renew_leases(WORKER, lease, only={field(executing, "run_id")})
    assert leases == {field(executing, "run_id"): None}
    assert field(await row_of(store, executing), "lease_expires_at") == lease
    assert field(await row_of(store, stopped), "lease_expires_at") == field(
        stopped, "lease_expires_at")
    assert await store.renew_leases(WORKER, lease, only=set()) == {}


async def test_a_run_its_worker_stopped_without_writing_is_reaped_not_renewed(
        store: Store) -> None:
    """The soak's stuck run: a worker that could not renew for a whole lease (the
    database was down) fenced its run, whose graph then ignored the cancel and was
    abandoned; once the database was back, the renewal by worker id kept the run's
    lease alive forever, so it stayed `running` with its recorded rollback. The lease
    keeper now renews only the runs its executor still executes."""
    fenced = await admit_running(store, lease_seconds=-5)
    await store.cancel_run(field(fenced, "thread_id"), field(fenced, "run_id"),
                           CancelAction.ROLLBACK, "user")

    class Executor:  # what LeaseKeeper reads of the executor
        worker_id = WORKER

        def __init__(self) -> None:
            self.local_run_ids: set[str] = set()  # the fenced run's supervisor has ended
            self.fenced_run_ids: set[str] = set()
            self.settling: set[str] = set()

        def leased_at(self, run_id: str) -> float | None:
            return None

        def lease_until(self) -> Any:
            return seconds_from_now(30)

        def fence(self, run_id: str) -> None:
            raise AssertionError(f"nothing to fence: {run_id}")

        def deliver_cancel(self, run_id: str) -> None:
            raise AssertionError(f"{run_id} is not executed here")

    adopted: list[Any] = []

    async def complete_rollback(run: Any) -> None:
        adopted.append(run)

    async def on_reaped(run: Any) -> None:
        raise AssertionError("a recorded rollback is adopted, not reaped")

    keeper = LeaseKeeper(store=store, executor=Executor(), lease_seconds=6.0,
                         grace_seconds=0.0, on_reaped=on_reaped,
                         complete_rollback=complete_rollback)
    await keeper.renew()
    assert field(await row_of(store, fenced), "lease_expires_at") == field(
        fenced, "lease_expires_at")  # not renewed: still in the past
    await keeper.reap()
    assert [field(r, "run_id") for r in adopted] == [field(fenced, "run_id")]


async def test_renewal_returns_the_recorded_cancels(store: Store) -> None:
    interrupted, rolled_back, untouched = [await admit_running(store) for _ in range(3)]
    for run, action in ((interrupted, CancelAction.INTERRUPT),
                        (rolled_back, CancelAction.ROLLBACK)):
        await store.cancel_run(field(run, "thread_id"), field(run, "run_id"), action, "user")
    assert await store.renew_leases(WORKER, seconds_from_now(30)) == {
        field(interrupted, "run_id"): "interrupt",
        field(rolled_back, "run_id"): "rollback",
        field(untouched, "run_id"): None,
    }


async def test_a_run_that_ended_leaves_the_renewal(store: Store) -> None:
    ended, going = await admit_running(store), await admit_running(store)
    await settle(store, ended)
    assert set(await store.renew_leases(WORKER, seconds_from_now(30))) == {
        field(going, "run_id")}


async def test_a_reaped_run_is_missing_from_its_workers_renewal(store: Store) -> None:
    lost = await admit_running(store, lease_seconds=-5)
    kept = await admit_running(store)
    finished, _ = await reap(store)
    assert ids(finished) == {field(lost, "run_id")}
    # Fencing: the renewal's answer tells the worker the run is no longer its own ...
    assert set(await store.renew_leases(WORKER, seconds_from_now(30))) == {
        field(kept, "run_id")}
    # ... and its late settle writes nothing.
    assert not (await settle(store, lost, RunStatus.SUCCESS)).changed
    assert await status_of(store, lost) == RunStatus.ERROR.value


# --------------------------------------------------------------------- reaping


async def test_an_expired_run_without_a_cancel_ends_in_error_worker_lost(store: Store) -> None:
    lost = await admit_running(store, lease_seconds=-5)
    finished, adopted = await reap(store)
    assert ids(finished) == {field(lost, "run_id")} and adopted == []
    row = await row_of(store, lost)
    assert field(row, "status") == RunStatus.ERROR.value
    assert field(row, "stop_reason") == StopReason.WORKER_LOST.value
    assert field(row, "error")["error"] == "WorkerLost"
    assert field(row, "worker_id") == WORKER  # the worker that was lost
    assert field(row, "ended_at") is not None
    assert await thread_status(store, field(lost, "thread_id")) == ThreadStatus.IDLE.value


async def test_an_expired_run_with_a_recorded_interrupt_ends_interrupted(store: Store) -> None:
    lost = await admit_running(store, lease_seconds=-5)
    await store.cancel_run(field(lost, "thread_id"), field(lost, "run_id"),
                           CancelAction.INTERRUPT, "user")
    finished, _ = await reap(store)
    assert ids(finished) == {field(lost, "run_id")}
    row = await row_of(store, lost)
    assert field(row, "status") == RunStatus.INTERRUPTED.value
    assert field(row, "stop_reason") == StopReason.CANCELLED.value
    assert field(row, "error") is None


async def test_an_expired_run_with_a_recorded_rollback_is_adopted(store: Store) -> None:
    lost = await admit_running(store, lease_seconds=-5)
    thread_id, run_id = field(lost, "thread_id"), field(lost, "run_id")
    await store.cancel_run(thread_id, run_id, CancelAction.ROLLBACK, "user")
    finished, adopted = await reap(store, reaper=OTHER_WORKER)
    assert finished == [] and ids(adopted) == {run_id}
    row = await row_of(store, lost)
    assert field(row, "status") == RunStatus.RUNNING.value
    assert field(row, "worker_id") == OTHER_WORKER
    # The adopter completes the rollback; the lost worker no longer can.
    assert await store.complete_rollback(run_id, thread_id, WORKER, None, {},
                                         ThreadStatus.IDLE) is None
    assert await store.complete_rollback(run_id, thread_id, OTHER_WORKER, None, {},
                                         ThreadStatus.IDLE) is not None
    assert await store.get_run(thread_id, run_id) is None
    assert await store.get_tombstone(thread_id, run_id) is not None


async def test_live_leases_and_pending_runs_are_not_reaped(store: Store) -> None:
    live = await admit_running(store)
    queued = (await admit(store)).run
    expired_within_grace = await admit_running(store, lease_seconds=-5)
    # A deadline before that lease ended: still within the grace.
    finished, adopted = await store.reap_expired(
        seconds_from_now(-60), OTHER_WORKER, seconds_from_now(30))
    assert (finished, adopted) == ([], [])
    for run in (live, expired_within_grace):
        assert await status_of(store, run) == RunStatus.RUNNING.value
    assert await status_of(store, queued) == RunStatus.PENDING.value


async def test_reaping_frees_the_thread_for_its_queued_run(store: Store) -> None:
    lost = await admit_running(store, lease_seconds=-5)
    queued = (await admit(store, field(lost, "thread_id"))).run
    await reap(store)
    assert await thread_status(store, field(lost, "thread_id")) == ThreadStatus.BUSY.value
    claimed, _ = await store.claim(WORKER, seconds_from_now(30), 10)
    assert claimed is not None and ids(claimed) == {field(queued, "run_id")}


async def test_a_run_is_reaped_once(store: Store) -> None:
    await admit_running(store, lease_seconds=-5)
    first, _ = await reap(store)
    again, adopted = await reap(store, reaper=WORKER)
    assert len(first) == 1 and (again, adopted) == ([], [])


# ------------------------------------------------- several reapers (PostgreSQL)


@contextlib.contextmanager
def rows_held(store: Store, statement: sa.Executable) -> Iterator[None]:
    """Another transaction (another worker's reaper, a settle in flight) holding the
    rows `statement` locks, until the block ends."""
    engine = sa.create_engine(store.db.url)  # the store's pool is its threads' own
    try:
        with engine.connect() as other, other.begin():
            other.execute(statement)
            yield
    finally:
        engine.dispose()


async def test_a_reaper_skips_the_expired_runs_another_one_holds(store: Store) -> None:
    """Reapers on several workers split the expired runs (SELECT ... FOR UPDATE SKIP
    LOCKED): one does not queue behind the rows another is finishing. Without it, the
    reap waited on the held row until that transaction ended (here: never)."""
    if store.db.is_sqlite:
        pytest.skip("row locks are PostgreSQL's (SQLite has one writer)")
    held, free = [await admit_running(store, lease_seconds=-5) for _ in range(2)]
    with rows_held(store, sa.select(runs).where(runs.c.run_id == field(held, "run_id"))
                   .with_for_update()):
        finished, _ = await asyncio.wait_for(reap(store), 60)
        assert ids(finished) == {field(free, "run_id")}
        assert await status_of(store, held) == RunStatus.RUNNING.value
    finished, _ = await reap(store, reaper=WORKER)
    assert ids(finished) == {field(held, "run_id")}


async def test_a_reaper_skips_a_run_whose_thread_another_transaction_holds(
        store: Store) -> None:
    """The reaper holds its runs' rows before their threads': waiting for a thread a
    settle holds (the settle then waiting for the run) would deadlock, so a busy
    thread's run is left for the next reap."""
    if store.db.is_sqlite:
        pytest.skip("row locks are PostgreSQL's (SQLite has one writer)")
    busy, other = [await admit_running(store, lease_seconds=-5) for _ in range(2)]
    with rows_held(store, sa.select(threads).where(
            threads.c.thread_id == field(busy, "thread_id")).with_for_update()):
        finished, _ = await asyncio.wait_for(reap(store), 60)
        assert ids(finished) == {field(other, "run_id")}
    finished, _ = await reap(store)
    assert ids(finished) == {field(busy, "run_id")}
    assert await thread_status(store, field(busy, "thread_id")) == ThreadStatus.IDLE.value
