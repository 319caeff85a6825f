"""The dispatcher's start and wake rules (executor/dispatch.py), in this process: a real
SQLite worker (see inprocess_worker.py) whose runs end when the test releases them.

Which path started a run is read from the store: its admission's transaction
(`start`, see Dispatcher.reserve_slot) or the dispatcher's claim. The periodic recheck
is off, so every start the tests wait for must come from a wake-up rule."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from fast.inprocess_worker import InProcessWorker
from fast.support import eventually, field

MakeWorker = Callable[..., Awaitable[InProcessWorker]]


@pytest.fixture
async def make_worker(tmp_path: Path,
                      caplog: pytest.LogCaptureFixture) -> AsyncIterator[MakeWorker]:
    """Workers for the test, stopped after it. A start that only the periodic recheck
    made (the dispatcher logs that a wake-up was missed) fails the test, whatever the
    recheck's period: every start must come from a wake-up rule."""
    workers: list[InProcessWorker] = []

    async def make(max_concurrency: int, single_process: bool = True) -> InProcessWorker:
        worker = InProcessWorker(tmp_path / f"worker{len(workers)}",
                                 max_concurrency=max_concurrency,
                                 single_process=single_process)
        workers.append(worker)
        return await worker.start()

    yield make
    for worker in workers:
        await worker.stop()
    missed = [r.getMessage() for r in caplog.get_records("call")
              if "a wake-up was missed" in r.getMessage()]
    assert not missed, missed


async def test_an_idle_dispatcher_with_a_free_slot_lets_admission_start_the_run(
        make_worker: MakeWorker) -> None:
    worker = await make_worker(max_concurrency=2)
    run_id = await worker.create("a")
    # Started inside its admission: running as soon as the creation returns.
    assert worker.store.started_at_admission == [run_id]
    assert await worker.status("a") == "running"
    await worker.wait_until_executing("a")
    await worker.finish("a")
    assert worker.store.claimed == []


async def test_runs_start_in_creation_order_when_slots_are_scarce(
        make_worker: MakeWorker) -> None:
    worker = await make_worker(max_concurrency=2)
    for key in "abcdef":
        await worker.create(key)
    assert worker.store.started_at_admission == worker.ids("a", "b")
    assert await worker.statuses(*"cdef") == ["pending"] * 4
    # Whichever run ends, the oldest waiting run takes its slot.
    for ended, starts in (("b", "c"), ("a", "d"), ("d", "e"), ("c", "f")):
        await worker.finish(ended)
        await worker.wait_until_executing(starts)
        assert await worker.running_in_store() == 2
    assert worker.graph.started == list("abcdef")
    assert worker.store.claimed == worker.ids(*"cdef")


async def test_never_more_than_max_concurrency_runs_at_once(make_worker: MakeWorker) -> None:
    worker = await make_worker(max_concurrency=3)
    keys = [f"r{i}" for i in range(9)]
    for key in keys:
        await worker.create(key)
    order = random.Random(11)
    left = list(keys)
    while left:
        expected = min(3, len(left))

        async def settled(expected: int = expected) -> bool:
            return len(worker.graph.running) == expected

        await eventually(settled, f"{expected} runs executing")
        assert await worker.running_in_store() == expected
        assert worker.executor.active_count == expected
        key = order.choice(sorted(worker.graph.running))
        await worker.finish(key)
        left.remove(key)
    assert worker.graph.peak == 3
    assert worker.graph.started == keys  # creation order, as slots came free
    assert await worker.statuses(*keys) == ["success"] * 9


async def test_a_freed_slot_wakes_the_dispatcher_when_runs_wait(
        make_worker: MakeWorker) -> None:
    worker = await make_worker(max_concurrency=1)
    await worker.create("a")
    await worker.create("b")  # another thread: only the slot keeps it waiting
    assert await worker.statuses("a", "b") == ["running", "pending"]
    await worker.finish("a")
    await worker.wait_until_executing("b")
    assert worker.store.claimed == worker.ids("b")


async def test_a_run_queued_on_its_thread_starts_when_the_run_ahead_ends(
        make_worker: MakeWorker) -> None:
    worker = await make_worker(max_concurrency=4)
    await worker.create("a")
    await worker.create("b", thread_of="a")  # slots are free; its thread is not
    assert await worker.statuses("a", "b") == ["running", "pending"]
    assert worker.store.started_at_admission == worker.ids("a")
    await worker.finish("a")
    await worker.wait_until_executing("b")
    assert worker.store.claimed == worker.ids("b")


async def test_a_delayed_run_starts_when_due_and_holds_up_no_other(
        make_worker: MakeWorker) -> None:
    worker = await make_worker(max_concurrency=2)
    claims = worker.store.claims_done
    # Due well after the checks below, even on a loaded machine.
    await worker.create("later", after_seconds=1.5)
    await worker.dispatcher_claimed(since=claims)  # woken by the creation: not due yet
    assert await worker.status("later") == "pending"
    await worker.create("now")  # a free slot, nothing due: starts at its admission
    assert worker.store.started_at_admission == worker.ids("now")
    await worker.wait_until_executing("later")
    row = await worker.row("later")
    assert field(row, "started_at") >= field(row, "not_before")
    assert worker.store.claimed == worker.ids("later")


# ------------------------------------------------ reserve_slot: when admission may start


async def test_no_start_at_admission_while_a_wake_up_is_pending(make_worker: MakeWorker) -> None:
    worker = await make_worker(max_concurrency=2)
    claims = worker.store.claims_done
    worker.executor.wake()
    # The dispatcher is about to claim: a run waiting to start would go first.
    assert worker.executor.reserve_slot() is False
    await worker.dispatcher_claimed(since=claims)
    assert worker.executor.reserve_slot() is True  # idle again, a slot free
    worker.executor.release_slot()


async def test_no_start_at_admission_while_the_dispatcher_claims(
        make_worker: MakeWorker) -> None:
    worker = await make_worker(max_concurrency=2)
    worker.store.hold_claims = hold = asyncio.Event()
    worker.executor.wake()
    await worker.store.claim_held.wait()  # the dispatcher is inside its claim
    await worker.create("a")
    assert worker.store.started_at_admission == []
    assert await worker.status("a") == "pending"
    hold.set()  # the claim goes on, and takes the run admitted meanwhile
    await worker.wait_until_executing("a")
    assert worker.store.claimed == worker.ids("a")


async def test_no_start_at_admission_without_a_free_slot(make_worker: MakeWorker) -> None:
    worker = await make_worker(max_concurrency=1)
    assert worker.executor.reserve_slot() is True
    # The slot is promised to that admission: nobody else gets it ...
    assert worker.executor.reserve_slot() is False
    claims = worker.store.claims_done
    worker.executor.release_slot()  # ... until it is given back (which wakes the
    await worker.dispatcher_claimed(since=claims)  # dispatcher: it may want the slot).
    assert worker.executor.reserve_slot() is True
    worker.executor.release_slot()
    await worker.dispatcher_claimed(since=claims + 1)
    await worker.create("a")
    await worker.create("b")
    assert worker.store.started_at_admission == worker.ids("a")
    assert await worker.status("b") == "pending"


async def test_a_cluster_worker_starts_at_admission_too(make_worker: MakeWorker) -> None:
    """The targeted wake: a cluster worker with a free slot and no run waiting starts
    the run in its admission (no WAKE to every worker); one that is full leaves it
    pending, and starts it when its slot frees (starved)."""
    worker = await make_worker(max_concurrency=1, single_process=False)
    await worker.create("a")
    assert worker.store.started_at_admission == worker.ids("a")
    await worker.create("b")
    assert await worker.status("b") == "pending"
    await worker.finish("a")
    await worker.wait_until_executing("b")
    assert worker.store.claimed == worker.ids("b")


async def test_no_start_at_admission_when_a_delayed_runs_wake_up_is_late(
        make_worker: MakeWorker) -> None:
    worker = await make_worker(max_concurrency=2)
    claims = worker.store.claims_done
    await worker.create("delayed", after_seconds=0.05)
    await worker.dispatcher_claimed(since=claims)  # its wake-up is set for when it is due
    # The loop is held past the due time: the wake-up has not fired, the run is due.
    time.sleep(0.1)  # noqa: ASYNC251 - blocking the loop is the point
    assert worker.executor.reserve_slot() is False
    await worker.wait_until_executing("delayed")
    assert worker.store.claimed == worker.ids("delayed")
