"""Admission (Store.create_run) on the real store, each backend: thread creation,
each multitask strategy against a thread's active runs, and start at admission."""

from __future__ import annotations

import pytest

from fast.support import (
    GRAPH_ID,
    WORKER,
    admit,
    admit_running,
    field,
    ids_of,
    new_id,
    seconds_from_now,
    settle,
    status_of,
    thread_status,
)
from runlane.contract import CancelAction, RunStatus, StopReason, ThreadStatus
from runlane.errors import Conflict, NotFound
from runlane.store import Store


async def test_admission_creates_the_thread_when_asked(store: Store) -> None:
    thread_id = new_id()
    created = await admit(store, thread_id)
    assert field(created.run, "status") == RunStatus.PENDING.value
    assert await status_of(store, created.run) == RunStatus.PENDING.value
    thread = await store.get_thread(thread_id)
    assert field(thread, "status") == ThreadStatus.BUSY.value
    assert field(thread, "metadata")["graph_id"] == GRAPH_ID
    assert ids_of(created.cancelled_running) == ids_of(created.cancelled_pending) == []
    assert created.started is None


async def test_admission_on_a_missing_thread_without_create_is_not_found(store: Store) -> None:
    thread_id = new_id()
    with pytest.raises(NotFound):
        await admit(store, thread_id, if_not_exists="reject")
    assert await store.get_thread(thread_id) is None
    assert await store.list_runs(thread_id, limit=10, offset=0, status=None) == []


async def test_if_not_exists_create_reuses_an_existing_thread(store: Store) -> None:
    first = await admit(store)
    thread_id = field(first.run, "thread_id")
    second = await admit(store, thread_id, if_not_exists="create")
    third = await admit(store, thread_id, if_not_exists="reject")
    runs = await store.list_runs(thread_id, limit=10, offset=0, status=None)
    # Newest first, all three on the one thread.
    assert [field(r, "run_id") for r in runs] == [
        field(third.run, "run_id"), field(second.run, "run_id"), field(first.run, "run_id")]


@pytest.mark.parametrize("active", ["pending", "running"])
async def test_reject_refuses_a_busy_thread_and_changes_nothing(store: Store, active: str) -> None:
    ahead = (await admit(store)).run if active == "pending" else await admit_running(store)
    thread_id = field(ahead, "thread_id")
    with pytest.raises(Conflict, match="busy"):
        await admit(store, thread_id, strategy="reject")
    assert await status_of(store, ahead) == active
    assert len(await store.list_runs(thread_id, limit=10, offset=0, status=None)) == 1
    row = await store.get_run(thread_id, field(ahead, "run_id"))
    assert field(row, "cancel_action") is None


async def test_reject_admits_on_an_idle_thread(store: Store) -> None:
    ahead = await admit_running(store)
    await settle(store, ahead)
    created = await admit(store, field(ahead, "thread_id"), strategy="reject")
    assert await status_of(store, created.run) == RunStatus.PENDING.value


async def test_interrupt_records_a_cancel_on_the_running_run(store: Store) -> None:
    ahead = await admit_running(store)
    thread_id = field(ahead, "thread_id")
    created = await admit(store, thread_id, strategy="interrupt")
    assert ids_of(created.cancelled_running) == [field(ahead, "run_id")]
    assert ids_of(created.cancelled_pending) == []
    row = await store.get_run(thread_id, field(ahead, "run_id"))
    # Still running until its executor stops it; the cancel is recorded.
    assert field(row, "status") == RunStatus.RUNNING.value
    assert field(row, "cancel_action") == CancelAction.INTERRUPT.value
    assert field(row, "cancel_reason") == "multitask_interrupt"
    assert await status_of(store, created.run) == RunStatus.PENDING.value


async def test_interrupt_stops_a_pending_run_at_once(store: Store) -> None:
    ahead = await admit_running(store)
    thread_id = field(ahead, "thread_id")
    queued = (await admit(store, thread_id)).run
    created = await admit(store, thread_id, strategy="interrupt")
    # Every active run of the thread, oldest first.
    assert ids_of(created.cancelled_running) == [field(ahead, "run_id")]
    assert ids_of(created.cancelled_pending) == [field(queued, "run_id")]
    row = await store.get_run(thread_id, field(queued, "run_id"))
    assert field(row, "status") == RunStatus.INTERRUPTED.value
    assert field(row, "stop_reason") == StopReason.CANCELLED.value
    assert field(row, "cancel_reason") == "multitask_interrupt"
    assert field(row, "ended_at") is not None


async def test_rollback_records_a_rollback_on_the_running_run(store: Store) -> None:
    ahead = await admit_running(store)
    thread_id = field(ahead, "thread_id")
    created = await admit(store, thread_id, strategy="rollback")
    assert ids_of(created.cancelled_running) == [field(ahead, "run_id")]
    row = await store.get_run(thread_id, field(ahead, "run_id"))
    assert field(row, "status") == RunStatus.RUNNING.value
    assert field(row, "cancel_action") == CancelAction.ROLLBACK.value
    assert field(row, "cancel_reason") == "multitask_rollback"
    assert await store.get_tombstone(thread_id, field(ahead, "run_id")) is None


async def test_rollback_removes_a_pending_run_and_leaves_a_tombstone(store: Store) -> None:
    queued = (await admit(store)).run
    thread_id = field(queued, "thread_id")
    created = await admit(store, thread_id, strategy="rollback")
    assert ids_of(created.cancelled_pending) == [field(queued, "run_id")]
    assert await store.get_run(thread_id, field(queued, "run_id")) is None
    tomb = await store.get_tombstone(thread_id, field(queued, "run_id"))
    assert tomb is not None
    assert field(tomb, "outcome") == "rolled_back"
    assert field(field(tomb, "run"), "status") == RunStatus.INTERRUPTED.value
    assert field(field(tomb, "run"), "cancel_reason") == "multitask_rollback"


@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
async def test_a_strategy_that_stops_the_only_pending_run_leaves_the_thread_busy(
        store: Store, strategy: str) -> None:
    """Found by the model-based tests (test_store_model.py): stopping the thread's only
    active run, a pending one, released the thread (idle) inside the admission, and the
    new run, queued behind nothing, was left on a thread that said idle."""
    queued = (await admit(store)).run
    thread_id = field(queued, "thread_id")
    created = await admit(store, thread_id, strategy=strategy)
    assert ids_of(created.cancelled_pending) == [field(queued, "run_id")]
    assert await status_of(store, created.run) == RunStatus.PENDING.value
    assert await thread_status(store, thread_id) == ThreadStatus.BUSY.value


async def test_enqueue_leaves_the_active_runs_alone(store: Store) -> None:
    ahead = await admit_running(store)
    thread_id = field(ahead, "thread_id")
    queued = (await admit(store, thread_id, strategy="enqueue")).run
    created = await admit(store, thread_id, strategy="enqueue")
    assert (ids_of(created.cancelled_running), ids_of(created.cancelled_pending)) == ([], [])
    assert await status_of(store, ahead) == RunStatus.RUNNING.value
    assert await status_of(store, queued) == RunStatus.PENDING.value
    assert field(await store.get_run(thread_id, field(ahead, "run_id")), "cancel_action") is None
    assert await thread_status(store, thread_id) == ThreadStatus.BUSY.value


async def test_admission_starts_the_run_when_its_thread_is_free(store: Store) -> None:
    lease = seconds_from_now(30)
    created = await admit(store, start=(WORKER, lease))
    assert created.started is not None
    assert field(created.started, "run_id") == field(created.run, "run_id")
    row = await store.get_run(field(created.run, "thread_id"), field(created.run, "run_id"))
    assert field(row, "status") == RunStatus.RUNNING.value
    assert field(row, "worker_id") == WORKER
    assert field(row, "started_at") is not None
    assert field(row, "lease_expires_at") == lease
    # The run the executor gets is the row as stored, every field (SQLite builds it
    # from the columns it wrote, PostgreSQL reads it back)...
    assert created.started == row
    # ... and shares nothing mutable with the admission's answer (the API's).
    assert created.started.kwargs is not created.run.kwargs
    assert created.started.metadata is not created.run.metadata


@pytest.mark.parametrize("strategy", ["enqueue", "interrupt", "rollback"])
async def test_admission_does_not_start_a_run_behind_an_active_one(store: Store,
                                                                   strategy: str) -> None:
    ahead = await admit_running(store)
    created = await admit(store, field(ahead, "thread_id"), strategy=strategy,
                          start=(WORKER, seconds_from_now(30)))
    assert created.started is None
    assert await status_of(store, created.run) == RunStatus.PENDING.value


async def test_admission_does_not_start_a_delayed_run(store: Store) -> None:
    created = await admit(store, not_before=seconds_from_now(60),
                          start=(WORKER, seconds_from_now(30)))
    assert created.started is None
    assert await status_of(store, created.run) == RunStatus.PENDING.value
