"""Cancels (Store.cancel_run) on the real store, each backend: both actions on a run in
every state it can be in, what each leaves stored, duplicates, and every CancelOutcome."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from fast.support import (
    admit,
    admit_running,
    field,
    new_id,
    settle,
    status_of,
    thread_status,
)
from runlane.contract import CancelAction, CancelOutcome, RunStatus, StopReason, ThreadStatus
from runlane.store import Store

INTERRUPT, ROLLBACK = CancelAction.INTERRUPT, CancelAction.ROLLBACK


async def cancel(store: Store, run: Any, action: CancelAction, reason: str = "user") -> Any:
    return await store.cancel_run(field(run, "thread_id"), field(run, "run_id"), action, reason)


# ------------------------------------------------------- runs in every state


async def pending(store: Store) -> Any:
    return (await admit(store)).run


async def running(store: Store) -> Any:
    return await admit_running(store)


def ended(proposed: RunStatus) -> Callable[[Store], Awaitable[Any]]:
    async def make(store: Store) -> Any:
        run = await admit_running(store)
        result = await settle(store, run, proposed)
        assert field(result.run, "status") == proposed.value
        return run
    make.__name__ = proposed.value
    return make


async def interrupted(store: Store) -> Any:
    run = await pending(store)
    assert (await cancel(store, run, INTERRUPT)).outcome is CancelOutcome.RECORDED
    return run


async def rolled_back(store: Store) -> Any:
    """A running run whose rollback completed: its row is gone, its tombstone stays."""
    run = await running(store)
    await cancel(store, run, ROLLBACK)
    assert (await settle(store, run)).needs_rollback
    assert await store.complete_rollback(field(run, "run_id"), field(run, "thread_id"),
                                         field(run, "worker_id"), None, {},
                                         ThreadStatus.IDLE) is not None
    return run


async def missing(store: Store) -> Any:
    return {"run_id": new_id(), "thread_id": new_id()}


async def on_another_thread(store: Store) -> Any:
    """A real run, asked for under the wrong thread id."""
    run = await pending(store)
    return {"run_id": field(run, "run_id"), "thread_id": new_id()}


async def cancelled_running(store: Store) -> Any:
    run = await running(store)
    assert (await cancel(store, run, INTERRUPT)).outcome is CancelOutcome.RECORDED
    return run


# (state, action) -> outcome: every state a cancel can find, with both actions.
TABLE: list[tuple[Callable[[Store], Awaitable[Any]], CancelAction, CancelOutcome]] = [
    (pending, INTERRUPT, CancelOutcome.RECORDED),
    (pending, ROLLBACK, CancelOutcome.RECORDED),
    (running, INTERRUPT, CancelOutcome.RECORDED),
    (running, ROLLBACK, CancelOutcome.RECORDED),
    (cancelled_running, INTERRUPT, CancelOutcome.ALREADY_RECORDED),
    (cancelled_running, ROLLBACK, CancelOutcome.ALREADY_RECORDED),
    (interrupted, INTERRUPT, CancelOutcome.ALREADY_INTERRUPTED),
    (interrupted, ROLLBACK, CancelOutcome.ALREADY_INTERRUPTED),
    (rolled_back, INTERRUPT, CancelOutcome.ROLLED_BACK),
    (rolled_back, ROLLBACK, CancelOutcome.ROLLED_BACK),
    *[(ended(status), action, CancelOutcome.TOO_LATE)
      for status in (RunStatus.SUCCESS, RunStatus.ERROR, RunStatus.TIMEOUT)
      for action in (INTERRUPT, ROLLBACK)],
    (missing, INTERRUPT, CancelOutcome.NOT_FOUND),
    (missing, ROLLBACK, CancelOutcome.NOT_FOUND),
    (on_another_thread, INTERRUPT, CancelOutcome.NOT_FOUND),
]


def test_the_table_reaches_every_outcome() -> None:
    assert {outcome for _, _, outcome in TABLE} == set(CancelOutcome)


@pytest.mark.parametrize(("state", "action", "outcome"), TABLE,
                         ids=[f"{s.__name__}-{a.value}" for s, a, _ in TABLE])
async def test_cancel_outcome(store: Store, state: Callable[[Store], Awaitable[Any]],
                              action: CancelAction, outcome: CancelOutcome) -> None:
    run = await state(store)
    before = await store.get_run(field(run, "thread_id"), field(run, "run_id"))
    result = await cancel(store, run, action)
    assert result.outcome is outcome
    if outcome is CancelOutcome.RECORDED:
        return  # what a recorded cancel leaves is checked one case at a time below
    # Nothing a cancel did not record changes a stored row (terminal and already
    # cancelled rows are absorbing).
    assert await store.get_run(field(run, "thread_id"), field(run, "run_id")) == before
    if outcome is CancelOutcome.NOT_FOUND:
        assert result.run is None
    else:
        assert field(result.run, "run_id") == field(run, "run_id")


# ------------------------------------------------- what a recorded cancel leaves


async def test_interrupting_a_pending_run_ends_it_and_frees_its_thread(store: Store) -> None:
    run = await pending(store)
    result = await cancel(store, run, INTERRUPT, "user")
    assert not result.delivered_to_task  # no task to stop: it never started
    row = await store.get_run(field(run, "thread_id"), field(run, "run_id"))
    assert field(row, "status") == RunStatus.INTERRUPTED.value
    assert field(row, "cancel_action") == INTERRUPT.value
    assert field(row, "cancel_reason") == "user"
    assert field(row, "stop_reason") == StopReason.CANCELLED.value
    assert field(row, "ended_at") is not None
    assert await thread_status(store, field(run, "thread_id")) == ThreadStatus.IDLE.value


async def test_rolling_back_a_pending_run_removes_it_with_a_tombstone(store: Store) -> None:
    run = await pending(store)
    result = await cancel(store, run, ROLLBACK, "user")
    assert not result.delivered_to_task
    assert field(result.run, "status") == RunStatus.INTERRUPTED.value
    assert await store.get_run(field(run, "thread_id"), field(run, "run_id")) is None
    tomb = await store.get_tombstone(field(run, "thread_id"), field(run, "run_id"))
    assert field(field(tomb, "run"), "status") == RunStatus.INTERRUPTED.value
    assert field(field(tomb, "run"), "cancel_action") == ROLLBACK.value
    assert field(field(tomb, "run"), "stop_reason") == StopReason.CANCELLED.value
    assert await thread_status(store, field(run, "thread_id")) == ThreadStatus.IDLE.value


@pytest.mark.parametrize("action", [INTERRUPT, ROLLBACK])
async def test_cancelling_a_running_run_records_it_for_its_executor(
        store: Store, action: CancelAction) -> None:
    run = await running(store)
    result = await cancel(store, run, action, "user")
    assert result.delivered_to_task  # the executor must interrupt the task
    row = await store.get_run(field(run, "thread_id"), field(run, "run_id"))
    # The executor stops it and settles: until then it is running, with the cancel.
    assert field(row, "status") == RunStatus.RUNNING.value
    assert field(row, "cancel_action") == action.value
    assert field(row, "cancel_reason") == "user"
    assert field(row, "ended_at") is None
    assert await thread_status(store, field(run, "thread_id")) == ThreadStatus.BUSY.value


async def test_cancelling_a_pending_run_keeps_its_thread_busy_for_the_others(
        store: Store) -> None:
    ahead = await running(store)
    queued = (await admit(store, field(ahead, "thread_id"))).run
    await cancel(store, queued, INTERRUPT)
    assert await thread_status(store, field(ahead, "thread_id")) == ThreadStatus.BUSY.value


# ------------------------------------------------------------------ duplicates


@pytest.mark.parametrize(("first", "second"), [
    (INTERRUPT, INTERRUPT), (INTERRUPT, ROLLBACK), (ROLLBACK, INTERRUPT), (ROLLBACK, ROLLBACK)])
async def test_the_first_cancel_of_a_running_run_wins(store: Store, first: CancelAction,
                                                      second: CancelAction) -> None:
    run = await running(store)
    assert (await cancel(store, run, first, "user")).outcome is CancelOutcome.RECORDED
    again = await cancel(store, run, second, "disconnect")
    assert again.outcome is CancelOutcome.ALREADY_RECORDED
    assert not again.delivered_to_task  # delivered once, by the first
    row = await store.get_run(field(run, "thread_id"), field(run, "run_id"))
    assert (field(row, "cancel_action"), field(row, "cancel_reason")) == (first.value, "user")


@pytest.mark.parametrize(("first", "outcome"), [
    (INTERRUPT, CancelOutcome.ALREADY_INTERRUPTED), (ROLLBACK, CancelOutcome.ROLLED_BACK)])
async def test_a_second_cancel_of_a_pending_run_reports_the_first(
        store: Store, first: CancelAction, outcome: CancelOutcome) -> None:
    run = await pending(store)
    await cancel(store, run, first)
    for action in (INTERRUPT, ROLLBACK):
        assert (await cancel(store, run, action)).outcome is outcome
    assert await status_of(store, run) == (
        RunStatus.INTERRUPTED.value if first is INTERRUPT else None)
