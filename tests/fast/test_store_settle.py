"""Settling (Store.settle_run) and completing a rollback on the real store, each
backend: the executor proposes an outcome, the store decides, and a recorded cancel
wins over whatever was proposed."""

from __future__ import annotations

import pytest

from fast.support import (
    OTHER_WORKER,
    admit,
    admit_running,
    field,
    seconds_from_now,
    settle,
    status_of,
    thread_status,
)
from runlane.contract import CancelAction, CancelOutcome, RunStatus, StopReason, ThreadStatus
from runlane.serde import utcnow
from runlane.store import Store

PROPOSALS = [RunStatus.SUCCESS, RunStatus.ERROR, RunStatus.TIMEOUT]


async def test_success_is_recorded_with_the_threads_new_state(store: Store) -> None:
    run = await admit_running(store)
    result = await settle(store, run, RunStatus.SUCCESS, values={"answer": 42},
                          thread_status=ThreadStatus.INTERRUPTED)
    assert result.changed and not result.needs_rollback and not result.thread_busy
    row = await store.get_run(field(run, "thread_id"), field(run, "run_id"))
    assert field(row, "status") == RunStatus.SUCCESS.value
    assert field(row, "stop_reason") == StopReason.COMPLETED.value
    assert field(row, "error") is None
    assert field(row, "ended_at") is not None
    thread = await store.get_thread(field(run, "thread_id"))
    assert field(thread, "values") == {"answer": 42}
    # Paused at an interrupt(): the status the executor reported for the thread.
    assert field(thread, "status") == ThreadStatus.INTERRUPTED.value


async def test_error_is_recorded_with_its_error(store: Store) -> None:
    run = await admit_running(store)
    result = await settle(store, run, RunStatus.ERROR, thread_status=ThreadStatus.ERROR)
    assert result.changed
    row = await store.get_run(field(run, "thread_id"), field(run, "run_id"))
    assert field(row, "status") == RunStatus.ERROR.value
    assert field(row, "stop_reason") == StopReason.GRAPH_ERROR.value
    assert field(row, "error") == {"error": "Boom", "message": "boom"}
    assert await thread_status(store, field(run, "thread_id")) == ThreadStatus.ERROR.value


@pytest.mark.parametrize("proposed", PROPOSALS)
async def test_a_recorded_interrupt_wins_over_the_proposal(store: Store,
                                                           proposed: RunStatus) -> None:
    run = await admit_running(store)
    await store.cancel_run(field(run, "thread_id"), field(run, "run_id"),
                           CancelAction.INTERRUPT, "user")
    # The graph's last step returned anyway; the proposal arrives after the cancel.
    result = await settle(store, run, proposed, thread_status=ThreadStatus.ERROR)
    assert result.changed
    row = await store.get_run(field(run, "thread_id"), field(run, "run_id"))
    assert field(row, "status") == RunStatus.INTERRUPTED.value
    assert field(row, "stop_reason") == StopReason.CANCELLED.value
    assert field(row, "error") is None
    # Stopped: the thread is idle, not in the status proposed with the outcome.
    assert await thread_status(store, field(run, "thread_id")) == ThreadStatus.IDLE.value


@pytest.mark.parametrize("proposed", PROPOSALS)
async def test_a_recorded_rollback_is_reported_back_unsettled(store: Store,
                                                              proposed: RunStatus) -> None:
    run = await admit_running(store)
    await store.cancel_run(field(run, "thread_id"), field(run, "run_id"),
                           CancelAction.ROLLBACK, "user")
    result = await settle(store, run, proposed)
    assert result.needs_rollback and not result.changed
    # Still running, for the executor to delete its checkpoints and complete it.
    assert await status_of(store, run) == RunStatus.RUNNING.value


async def test_a_settled_run_is_settled_once(store: Store) -> None:
    run = await admit_running(store)
    assert (await settle(store, run, RunStatus.SUCCESS)).changed
    again = await settle(store, run, RunStatus.ERROR)
    assert not again.changed and not again.needs_rollback
    assert field(again.run, "status") == RunStatus.SUCCESS.value
    assert await status_of(store, run) == RunStatus.SUCCESS.value


async def test_another_workers_settle_is_fenced_off(store: Store) -> None:
    run = await admit_running(store)
    result = await settle(store, run, RunStatus.SUCCESS, worker_id=OTHER_WORKER)
    assert not result.changed
    assert await status_of(store, run) == RunStatus.RUNNING.value


async def test_a_running_run_cannot_be_proposed_back_to_an_active_status(store: Store) -> None:
    run = await admit_running(store)
    for proposed in (RunStatus.PENDING, RunStatus.RUNNING):
        with pytest.raises(ValueError, match="cannot end as"):
            await settle(store, run, proposed)
    assert await status_of(store, run) == RunStatus.RUNNING.value


async def test_a_running_run_cannot_be_proposed_interrupted(store: Store) -> None:
    """Found by the model-based tests (test_store_model.py): `interrupted` is the
    status a recorded cancel decides, never the executor's proposal. Proposed with no
    cancel recorded, it made an `interrupted` run with no cancel_action or
    cancel_reason, which a later cancel answered as already interrupted (202)."""
    run = await admit_running(store)
    with pytest.raises(ValueError, match="cannot end as interrupted"):
        await settle(store, run, RunStatus.INTERRUPTED)
    assert await status_of(store, run) == RunStatus.RUNNING.value
    cancel = await store.cancel_run(field(run, "thread_id"), field(run, "run_id"),
                                    CancelAction.INTERRUPT, "user")
    assert cancel.outcome is CancelOutcome.RECORDED


async def test_an_adopted_rollback_is_not_handed_back_to_the_worker_that_lost_it(
        store: Store) -> None:
    """Found while building the model-based tests (test_store_model.py): a worker
    whose run, with a rollback recorded, was adopted by a reaper (its lease ran out)
    was still told `needs_rollback` by its late settle, and its executor would then
    delete the run's checkpoints (and put back pending writes) before the fenced CAS
    refused it: a write by a worker the run no longer belongs to."""
    run = await admit_running(store, lease_seconds=-5)
    thread_id, run_id = field(run, "thread_id"), field(run, "run_id")
    await store.cancel_run(thread_id, run_id, CancelAction.ROLLBACK, "user")
    _, adopted = await store.reap_expired(utcnow(), OTHER_WORKER, seconds_from_now(30))
    assert [field(r, "run_id") for r in adopted] == [run_id]
    late = await settle(store, run, RunStatus.SUCCESS)  # by the worker that lost it
    assert not late.needs_rollback and not late.changed
    assert (await settle(store, run, RunStatus.SUCCESS, worker_id=OTHER_WORKER)
            ).needs_rollback


async def test_a_settle_reports_a_thread_still_busy_with_queued_runs(store: Store) -> None:
    run = await admit_running(store)
    queued = (await admit(store, field(run, "thread_id"))).run
    result = await settle(store, run, RunStatus.SUCCESS)
    assert result.changed and result.thread_busy
    assert await thread_status(store, field(run, "thread_id")) == ThreadStatus.BUSY.value
    assert await status_of(store, queued) == RunStatus.PENDING.value


# ---------------------------------------------------------- rollback completion


async def rollback_recorded(store: Store) -> object:
    run = await admit_running(store)
    await store.cancel_run(field(run, "thread_id"), field(run, "run_id"),
                           CancelAction.ROLLBACK, "user")
    assert (await settle(store, run)).needs_rollback
    return run


async def test_completing_a_rollback_removes_the_run_and_leaves_a_tombstone(
        store: Store) -> None:
    run = await rollback_recorded(store)
    thread_id, run_id = field(run, "thread_id"), field(run, "run_id")
    removed = await store.complete_rollback(run_id, thread_id, field(run, "worker_id"),
                                            {"restored": True}, {}, ThreadStatus.IDLE)
    assert removed is not None and field(removed, "run_id") == run_id
    assert await store.get_run(thread_id, run_id) is None
    tomb = await store.get_tombstone(thread_id, run_id)
    assert tomb is not None and field(tomb, "outcome") == "rolled_back"
    assert field(field(tomb, "run"), "status") == RunStatus.INTERRUPTED.value
    assert field(field(tomb, "run"), "stop_reason") == StopReason.CANCELLED.value
    assert field(field(tomb, "run"), "cancel_action") == CancelAction.ROLLBACK.value
    thread = await store.get_thread(thread_id)
    assert field(thread, "status") == ThreadStatus.IDLE.value
    assert field(thread, "values") == {"restored": True}
    # Later cancels still answer for it (202), not 404.
    again = await store.cancel_run(thread_id, run_id, CancelAction.INTERRUPT, "user")
    assert again.outcome is CancelOutcome.ROLLED_BACK


async def test_a_rollback_is_completed_only_by_the_runs_worker(store: Store) -> None:
    run = await rollback_recorded(store)
    thread_id, run_id = field(run, "thread_id"), field(run, "run_id")
    assert await store.complete_rollback(run_id, thread_id, OTHER_WORKER, None, {},
                                         ThreadStatus.IDLE) is None
    assert await status_of(store, run) == RunStatus.RUNNING.value
    assert await store.get_tombstone(thread_id, run_id) is None


async def test_an_interrupted_run_cannot_be_rolled_back(store: Store) -> None:
    run = await admit_running(store)
    thread_id, run_id = field(run, "thread_id"), field(run, "run_id")
    await store.cancel_run(thread_id, run_id, CancelAction.INTERRUPT, "user")
    assert await store.complete_rollback(run_id, thread_id, field(run, "worker_id"), None,
                                         {}, ThreadStatus.IDLE) is None
    assert await status_of(store, run) == RunStatus.RUNNING.value
