"""The two parts of the rule for nodes that outlive their run (docs/run-contract.md),
in-process: NodeThreads knows which run's nodes still execute in a thread; and a
run ending with such a node holds its thread in the transaction that ends it (each
backend), so the thread's next run is not claimed until the hold is released."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import uuid

import pytest

from fast.support import WORKER, admit, admit_running, field, seconds_from_now
from runlane.contract import CancelAction, RunStatus, StopReason, ThreadStatus
from runlane.executor.node_threads import NodeThreads
from runlane.observability import logs
from runlane.store import Store


async def test_node_threads_knows_a_runs_work_until_it_returns() -> None:
    threads = NodeThreads()
    release = threading.Event()
    loop = asyncio.get_running_loop()
    try:
        context = contextvars.copy_context()
        context.run(logs.RUN_ID.set, "run-a")

        async def submit() -> None:
            loop.run_in_executor(threads, release.wait)

        await asyncio.create_task(submit(), context=context)
        # Work outside any run is not tracked.
        untracked = loop.run_in_executor(threads, lambda: None)
        await untracked
        jobs = threads.executing("run-a")
        assert list(jobs.values()) == ["?"]  # outside a langgraph node
        assert threads.executing("run-b") == {}
        assert not await threads.wait(jobs, 0.05)  # still executing
        release.set()
        assert await threads.wait(jobs, 10)
        assert threads.executing("run-a") == {}
    finally:
        release.set()
        threads.shutdown(wait=True)


@pytest.mark.parametrize("action", [CancelAction.INTERRUPT, CancelAction.ROLLBACK])
async def test_a_run_ending_with_an_abandoned_node_holds_its_thread(
        store: Store, action: CancelAction) -> None:
    run = await admit_running(store)
    thread_id, run_id = field(run, "thread_id"), field(run, "run_id")
    queued = (await admit(store, thread_id)).run
    await store.cancel_run(thread_id, run_id, action, "user")
    hold = (str(uuid.uuid4()), seconds_from_now(60))
    result = await store.settle_run(
        run_id, thread_id=thread_id, worker_id=WORKER, proposed=RunStatus.SUCCESS,
        stop_reason=StopReason.COMPLETED, error=None, thread_status=ThreadStatus.IDLE,
        values={}, interrupts={}, hold=hold)
    if action is CancelAction.ROLLBACK:
        assert result.needs_rollback
        assert await store.complete_rollback(run_id, thread_id, WORKER, {}, {},
                                             ThreadStatus.IDLE, hold) is not None
    else:
        assert result.changed
    # Ended, and its thread held: the queued run is not started.
    claimed, _ = await store.claim(WORKER, seconds_from_now(30), 10)
    assert field(queued, "run_id") not in [field(r, "run_id") for r in claimed or []]
    await store.release_thread(thread_id, hold[0])
    claimed, _ = await store.claim(WORKER, seconds_from_now(30), 10)
    assert [field(r, "run_id") for r in claimed or []] == [field(queued, "run_id")]
