"""Claiming (Store.claim) on the real store, each backend: creation order, one running
run per thread, the slots limit, delayed runs."""

from __future__ import annotations

import asyncio
import datetime

from fast.support import (
    OTHER_WORKER,
    WORKER,
    admit,
    admit_running,
    field,
    seconds_from_now,
    settle,
    status_of,
)
from runlane.contract import CancelAction, RunStatus
from runlane.serde import utcnow
from runlane.store import Store


async def claim(store: Store, limit: int = 10, worker_id: str = WORKER) -> list[str]:
    """The ids of the runs a claim started, in the order it answered them."""
    claimed, _due = await store.claim(worker_id, seconds_from_now(30), limit)
    assert claimed is not None  # one worker here: no race to lose
    return [field(r, "run_id") for r in claimed]


def ids(*rows: object) -> list[str]:
    return [field(r, "run_id") for r in rows]


async def test_a_claim_starts_pending_runs_and_leases_them(store: Store) -> None:
    run = (await admit(store)).run
    lease = seconds_from_now(30)
    claimed, due = await store.claim(WORKER, lease, 10)
    assert claimed is not None and ids(*claimed) == ids(run)
    assert due is None
    row = await store.get_run(field(run, "thread_id"), field(run, "run_id"))
    assert field(row, "status") == RunStatus.RUNNING.value
    assert field(row, "worker_id") == WORKER
    assert field(row, "lease_expires_at") == lease
    assert field(row, "started_at") is not None
    # Claimed once: a second claim (any worker) finds nothing left.
    assert await claim(store, worker_id=OTHER_WORKER) == []


async def test_runs_are_claimed_in_creation_order(store: Store) -> None:
    runs = [(await admit(store)).run for _ in range(4)]
    assert await claim(store, limit=1) == ids(runs[0])
    assert await claim(store, limit=2) == ids(runs[1], runs[2])
    assert await claim(store, limit=1) == ids(runs[3])


async def test_a_claim_takes_at_most_limit_runs_the_oldest(store: Store) -> None:
    runs = [(await admit(store)).run for _ in range(5)]
    assert await claim(store, limit=2) == ids(*runs[:2])
    assert [await status_of(store, r) for r in runs] == ["running"] * 2 + ["pending"] * 3


async def test_one_running_run_per_thread(store: Store) -> None:
    first = (await admit(store)).run
    thread_id = field(first, "thread_id")
    second = (await admit(store, thread_id)).run
    other = (await admit(store)).run
    # The second run of the thread waits behind the first; another thread's does not.
    assert await claim(store) == ids(first, other)
    assert await claim(store) == []
    await settle(store, first)
    assert await claim(store) == ids(second)


async def test_a_thread_runs_its_queue_in_creation_order(store: Store) -> None:
    running = await admit_running(store)
    thread_id = field(running, "thread_id")
    queued = [(await admit(store, thread_id)).run for _ in range(3)]
    for run in queued:
        assert await claim(store) == []  # the thread's run ahead is still running
        await settle(store, running)
        assert await claim(store) == ids(run)
        running = run


async def test_a_cancelled_pending_run_is_never_claimed(store: Store) -> None:
    run = (await admit(store)).run
    await store.cancel_run(field(run, "thread_id"), field(run, "run_id"),
                           CancelAction.INTERRUPT, "user")
    assert await claim(store) == []


async def test_a_delayed_run_waits_until_due_and_reports_when(store: Store) -> None:
    not_before = seconds_from_now(0.3)
    delayed = (await admit(store, not_before=not_before)).run
    claimed, due = await store.claim(WORKER, seconds_from_now(30), 10)
    assert claimed == []
    assert due == not_before
    await asyncio.sleep(max((not_before - utcnow()).total_seconds(), 0) + 0.01)
    claimed, due = await store.claim(WORKER, seconds_from_now(30), 10)
    assert claimed is not None and ids(*claimed) == ids(delayed)
    assert due is None
    row = await store.get_run(field(delayed, "thread_id"), field(delayed, "run_id"))
    assert field(row, "started_at") >= not_before


async def test_a_delayed_run_holds_up_no_run_queued_behind_it(store: Store) -> None:
    delayed = (await admit(store, not_before=seconds_from_now(60))).run
    thread_id = field(delayed, "thread_id")
    behind = (await admit(store, thread_id)).run
    assert await claim(store) == ids(behind)
    assert await status_of(store, delayed) == RunStatus.PENDING.value


async def test_a_due_delayed_run_takes_its_place_in_creation_order(store: Store) -> None:
    past = utcnow() - datetime.timedelta(seconds=1)
    delayed = (await admit(store, not_before=past)).run
    thread_id = field(delayed, "thread_id")
    behind = (await admit(store, thread_id)).run
    assert await claim(store) == ids(delayed)
    await settle(store, delayed)
    assert await claim(store) == ids(behind)


async def test_the_earliest_due_time_is_reported(store: Store) -> None:
    later, sooner = seconds_from_now(120), seconds_from_now(60)
    await admit(store, not_before=later)
    await admit(store, not_before=sooner)
    _claimed, due = await store.claim(WORKER, seconds_from_now(30), 10)
    assert due == sooner
