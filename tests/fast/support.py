"""Helpers of the fast tier: run and thread rows as the service builds them, reading
a stored row's fields, and waiting (briefly, with a bound) for what the event loop
does next."""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from runlane.contract import RunStatus, StopReason, ThreadStatus
from runlane.serde import utcnow
from runlane.store import CreatedRun, SettleResult, Store

WORKER = "worker-fast"
OTHER_WORKER = "worker-other"
GRAPH_ID = "g"
ASSISTANT_ID = "00000000-0000-0000-0000-000000000001"


def field(row: Any, name: str) -> Any:
    """A stored row's field, whether the store answers dicts or typed records."""
    return row[name] if isinstance(row, Mapping) else getattr(row, name)


def ids_of(items: list[Any]) -> list[str]:
    """Run ids from a list of run ids or of runs (CreatedRun's lists of the runs a
    multitask strategy cancelled hold ids, or the runs once typed records land)."""
    return [item if isinstance(item, str) else field(item, "run_id") for item in items]


def seconds_from_now(seconds: float) -> datetime.datetime:
    return utcnow() + datetime.timedelta(seconds=seconds)


def new_id() -> str:
    return str(uuid.uuid4())


def run_row(thread_id: str, *, strategy: str = "enqueue",
            not_before: datetime.datetime | None = None) -> dict[str, Any]:
    """A pending run as the service admits it (service/runs.py, `_prepare_run`)."""
    now = utcnow()
    return {
        "run_id": new_id(), "thread_id": thread_id, "assistant_id": ASSISTANT_ID,
        "graph_id": GRAPH_ID, "status": RunStatus.PENDING.value,
        "multitask_strategy": strategy, "metadata": {}, "kwargs": {"input": {}},
        "owner": None, "not_before": not_before, "webhook": None, "webhook_state": None,
        "webhook_attempts": 0, "created_at": now, "updated_at": now,
    }


def thread_row(thread_id: str) -> dict[str, Any]:
    """The thread a run's admission creates when it has to (if_not_exists=create)."""
    now = utcnow()
    return {
        "thread_id": thread_id, "status": ThreadStatus.IDLE.value,
        "metadata": {"graph_id": GRAPH_ID, "assistant_id": ASSISTANT_ID}, "config": {},
        "values": None, "interrupts": {}, "temporary": False, "owner": None,
        "created_at": now, "updated_at": now,
    }


async def install_assistant(store: Store) -> None:
    """The assistant every run here belongs to: admission locks a run's assistant (a
    run is never admitted for a deleted one), so it must exist."""
    now = utcnow()
    await store.ensure_assistant({
        "assistant_id": ASSISTANT_ID, "graph_id": GRAPH_ID, "name": GRAPH_ID,
        "description": None, "config": {}, "context": {}, "metadata": {}, "version": 1,
        "created_at": now, "updated_at": now})


async def admit(store: Store, thread_id: str | None = None, *, strategy: str = "enqueue",
                if_not_exists: str = "create", not_before: datetime.datetime | None = None,
                start: tuple[str, Any] | None = None) -> CreatedRun:
    """Admit one run (on a new thread unless `thread_id` is given)."""
    thread_id = thread_id or new_id()
    return await store.create_run(
        run_row(thread_id, strategy=strategy, not_before=not_before),
        if_not_exists=if_not_exists, thread_defaults=thread_row(thread_id), start=start)


async def admit_running(store: Store, thread_id: str | None = None, *,
                        worker_id: str = WORKER, lease_seconds: float = 30.0) -> Any:
    """A run admitted and started in the same transaction, leased to `worker_id`; the
    running row. (On a thread with no active run: `start` is refused otherwise.)"""
    created = await admit(store, thread_id, start=(worker_id, seconds_from_now(lease_seconds)))
    assert created.started is not None, "the admission did not start the run"
    return created.started


async def settle(store: Store, run: Any, proposed: RunStatus = RunStatus.SUCCESS, *,
                 worker_id: str = WORKER, values: Any = None,
                 thread_status: ThreadStatus = ThreadStatus.IDLE) -> SettleResult:
    """The executor's proposal for a running run, as Supervision._settle makes it."""
    reason = StopReason.COMPLETED if proposed is RunStatus.SUCCESS else StopReason.GRAPH_ERROR
    error = None if proposed is RunStatus.SUCCESS else {"error": "Boom", "message": "boom"}
    return await store.settle_run(
        field(run, "run_id"), thread_id=field(run, "thread_id"), worker_id=worker_id,
        proposed=proposed, stop_reason=reason, error=error, thread_status=thread_status,
        values=values if values is not None else {"done": True}, interrupts={})


async def status_of(store: Store, run: Any) -> str | None:
    """The run's stored status (None: no such row)."""
    row = await store.get_run(field(run, "thread_id"), field(run, "run_id"))
    return None if row is None else field(row, "status")


async def thread_status(store: Store, thread_id: str) -> str:
    thread = await store.get_thread(thread_id)
    assert thread is not None
    return field(thread, "status")


async def eventually(check: Callable[[], Awaitable[bool]], what: str,
                     timeout: float = 3.0) -> None:
    """Poll `check` until it holds; fail saying `what` did not happen within `timeout`.
    For outcomes that need the event loop's other tasks to run: the bound is generous
    for this machine, far below anything that could pass by accident (the dispatcher's
    periodic recheck is turned off in these tests)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.005)
