"""Changes to a thread's checkpoints outside a run race the runs starting on it.

A state update (POST /threads/{id}/state) and a TTL `keep_latest` prune may change a
thread's checkpoints only between runs. Each test here races many changes against
runs being admitted (started in their admission, as one SQLite process does, or
claimed by a dispatcher) with randomized timings, on each backend, and checks that
no run was running on the thread at any instant of a change, and that a change
refused as busy found a run that was really active.
"""

from __future__ import annotations

import asyncio
import datetime
import random
import types
from collections.abc import Awaitable, Callable
from typing import Any

from fast.support import WORKER, admit, field, new_id, seconds_from_now, settle, thread_row
from runlane.background.ttl_sweeper import TTLSweeper
from runlane.contract import RunStatus
from runlane.errors import Conflict
from runlane.serde import utcnow
from runlane.service.thread_holds import between_runs
from runlane.store import Store

REPETITIONS = 40


async def _running_on(store: Store, thread_id: str) -> list[str]:
    rows = await store.list_runs(thread_id, limit=100, offset=0, status=None)
    return [field(r, "run_id") for r in rows if field(r, "status") == RunStatus.RUNNING.value]


async def _jitter() -> None:
    # Randomized interleavings: from "no yield at all" to a few event-loop turns and
    # database round trips.
    if random.random() < 0.3:
        return
    await asyncio.sleep(random.uniform(0, 0.004))


async def _start_a_run(store: Store, thread_id: str, started: list[str]) -> None:
    """Admit a run and try to start it: in its admission (half the time) or by claims."""
    await _jitter()
    lease = seconds_from_now(30)
    use_start = random.random() < 0.5
    created = await admit(store, thread_id, start=(WORKER, lease) if use_start else None)
    if created.started is not None:
        started.append(field(created.started, "run_id"))
        return
    for _ in range(3):
        await _jitter()
        claimed, _due = await store.claim(WORKER, lease, 10)
        started.extend(field(r, "run_id") for r in claimed or [])


async def _finish_everything(store: Store, thread_id: str) -> None:
    """Settle the thread's runs (claiming what waits), so the next repetition's claims
    find nothing of this one."""
    for _ in range(20):
        rows = await store.list_runs(thread_id, limit=100, offset=0, status=None)
        active = [r for r in rows if field(r, "status") in ("pending", "running")]
        if not active:
            return
        for row in active:
            if field(row, "status") == "running":
                await settle(store, row)
        await store.claim(WORKER, seconds_from_now(30), 10)
    raise AssertionError(f"runs on thread {thread_id} never finished")


async def _race(store: Store, thread_id: str,
                change: Callable[[Callable[[], Awaitable[None]]], Awaitable[None]]
                ) -> tuple[bool, list[str]]:
    """Race one change (run through `change`, which calls the body it is given while
    it may touch the checkpoints) against one run starting. Returns whether the change
    ran, and the violations seen."""
    violations: list[str] = []
    started: list[str] = []
    ran = False

    async def body() -> None:
        nonlocal ran
        ran = True
        for _ in range(3):  # a change that takes a few turns, as a checkpoint write does
            running = await _running_on(store, thread_id)
            if running:
                violations.append(f"run {running} running during the change")
            await _jitter()

    async def changer() -> None:
        await _jitter()
        await change(body)

    await asyncio.gather(changer(), _start_a_run(store, thread_id, started))
    await _finish_everything(store, thread_id)
    return ran, violations


async def _idle_thread(store: Store, **extra: Any) -> str:
    thread_id = new_id()
    await store.create_thread({**thread_row(thread_id), **extra}, "raise")
    return thread_id


async def test_state_update_never_overlaps_a_run(store: Store) -> None:
    random.seed(15)
    changed = refused = 0
    violations: list[str] = []
    for _ in range(REPETITIONS):
        thread_id = await _idle_thread(store)

        async def change(body: Callable[[], Awaitable[None]], thread_id: str = thread_id
                         ) -> None:
            nonlocal refused
            try:
                await between_runs(store, thread_id, body)
            except Conflict:
                refused += 1

        ran, seen = await _race(store, thread_id, change)
        changed += ran
        violations += seen
    assert violations == [], violations
    # Both sides of the race were exercised: some updates ran, some found a run first.
    assert changed > 0 and refused > 0, (changed, refused)


async def test_ttl_keep_latest_prune_never_overlaps_a_run(store: Store) -> None:
    random.seed(16)
    pruned = 0
    violations: list[str] = []
    for _ in range(REPETITIONS):
        ttl = {"strategy": "keep_latest", "ttl": 1}
        thread_id = await _idle_thread(store, ttl=ttl)
        # Due: the sweeper looks at it "two minutes later".
        now = utcnow() + datetime.timedelta(minutes=2)

        async def change(body: Callable[[], Awaitable[None]], thread_id: str = thread_id,
                         now: datetime.datetime = now) -> None:
            service = types.SimpleNamespace(store=store, executor=types.SimpleNamespace(
                wake=lambda: None))
            sweeper = TTLSweeper(service,
                                 wakeup=asyncio.Event(), prune=lambda _thread_id: body())
            await sweeper.expire(thread_id, now)

        ran, seen = await _race(store, thread_id, change)
        pruned += ran
        violations += seen
    assert violations == [], violations
    assert pruned > 0
