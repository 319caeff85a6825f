"""A worker's checkpoint writes are fenced by its lease (store/checkpoint_fence.py),
on each backend's saver, in this process: a worker stopped past its lease (SIGSTOP)
must not write one more checkpoint of a run that was taken over meanwhile (found by
the fourth `make soak`: the thread's checkpoints interleaved two runs).

The gap is simulated with the lease keeper's clock; a takeover by the real store's
reaper. Each saver is the one runlane gives graphs, on the store's own database."""

from __future__ import annotations

import asyncio
import operator
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from langgraph.graph import END, START, StateGraph

from fast.support import OTHER_WORKER, WORKER, admit_running, field, seconds_from_now
from runlane.errors import RunFenced
from runlane.executor.leases import LeaseKeeper
from runlane.serde import utcnow
from runlane.store import Store
from runlane.store.checkpoint_fence import WriteFence
from runlane.store.checkpoints import CheckpointBackend, PostgresCheckpoints, open_checkpoints

LEASE = 4.0


class Clock:
    """The keeper's monotonic clock; `stop(seconds)` is the process being stopped."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def stop(self, seconds: float) -> None:
        self.offset += seconds


class Executor:
    """What LeaseKeeper reads of the executor: the runs it executes, and what it is
    told to fence (a fenced run stays listed until its supervisor ends)."""

    worker_id = WORKER

    def __init__(self, *run_ids: str) -> None:
        self.local_run_ids = set(run_ids)
        self.fenced_run_ids: set[str] = set()
        self.settling: set[str] = set()
        self.claimed: dict[str, float] = {}

    def lease_until(self) -> Any:
        return seconds_from_now(LEASE)

    def leased_at(self, run_id: str) -> float | None:
        return self.claimed.get(run_id)

    def fence(self, run_id: str) -> None:
        self.fenced_run_ids.add(run_id)

    def deliver_cancel(self, run_id: str) -> None:
        raise AssertionError(f"no cancel was recorded for {run_id}")


async def nothing(run: Any) -> None:
    raise AssertionError("nothing to reap or adopt here")


def keeper_for(store: Store, executor: Executor, clock: Clock) -> LeaseKeeper:
    return LeaseKeeper(store=store, executor=executor, lease_seconds=LEASE, grace_seconds=0.0,
                       on_reaped=nothing, complete_rollback=nothing, clock=clock)


@pytest.fixture
async def checkpoints(store: Store, tmp_path: Path) -> AsyncIterator[CheckpointBackend]:
    """The checkpointer that goes with the store's database."""
    url = store.db.url.render_as_string(hide_password=False)
    backend = open_checkpoints(url, str(tmp_path / "checkpoints.sqlite"))
    await backend.setup()
    yield backend
    await backend.close()


class Ticks(TypedDict, total=False):
    ticks: Annotated[list[int], operator.add]


class Ticker:
    """A run that ticks `steps` times, one checkpoint a tick, and waits inside its
    second tick until the test lets it go on (the moment its worker is stopped)."""

    def __init__(self, saver: BaseCheckpointSaver, steps: int = 4) -> None:
        self.paused, self.resume = asyncio.Event(), asyncio.Event()
        self.steps = steps
        self.graph = (StateGraph(Ticks).add_node("tick", self.tick)
                      .add_edge(START, "tick")
                      .add_conditional_edges("tick", self.more, ["tick", END])
                      .compile(checkpointer=saver))

    async def tick(self, state: Ticks) -> dict[str, Any]:
        done = len(state.get("ticks") or [])
        if done == 1:
            self.paused.set()
            await self.resume.wait()
        return {"ticks": [done + 1]}

    def more(self, state: Ticks) -> str:
        return "tick" if len(state.get("ticks") or []) < self.steps else END

    async def run_paused(self, config: dict[str, Any]) -> asyncio.Task[Any]:
        """Start the run; return once it is paused in its second tick."""
        task = asyncio.create_task(self.graph.ainvoke({"ticks": []}, config))
        await asyncio.wait({task, asyncio.create_task(self.paused.wait())},
                           return_when=asyncio.FIRST_COMPLETED)
        assert not task.done(), task
        settled = getattr(self.graph.checkpointer, "writes_settled", None)
        if settled is not None:  # PostgreSQL: the step's checkpoint is written meanwhile
            await settled(config["configurable"]["thread_id"])
        return task


def run_config(run: Any, **extra: Any) -> dict[str, Any]:
    return {"configurable": {"thread_id": field(run, "thread_id"),
                             "run_id": field(run, "run_id"), "checkpoint_ns": "", **extra}}


async def history(saver: BaseCheckpointSaver, run: Any) -> list[tuple[str, Any]]:
    """(checkpoint id, run id) of the thread's checkpoints, oldest first."""
    config = {"configurable": {"thread_id": field(run, "thread_id")}}
    return [(c.config["configurable"]["checkpoint_id"], c.metadata.get("run_id"))
            async for c in saver.alist(config)][::-1]


async def test_a_write_after_a_gap_longer_than_the_lease_is_refused(
        store: Store, checkpoints: CheckpointBackend) -> None:
    """The stopped worker's case: its last renewal is older than a lease by its own
    clock (which counts the stop) and its keeper has not run yet. The graph's next
    step writes nothing, the run is fenced, and RunFenced stops the graph."""
    run = await admit_running(store, lease_seconds=LEASE)
    run_id = field(run, "run_id")
    executor, clock = Executor(run_id), Clock()
    keeper = keeper_for(store, executor, clock)
    refused: list[str] = []
    checkpoints.fence_writes(WriteFence(WORKER, keeper.lease_held, refused.append))
    saver = checkpoints.saver
    run_ = Ticker(saver)
    task = await run_.run_paused(run_config(run))
    written = await history(saver, run)
    assert written and {r for _, r in written} == {run_id}

    clock.stop(LEASE + 0.5)  # SIGSTOP past the lease, then SIGCONT
    assert not keeper.lease_held(run_id)
    run_.resume.set()  # the graph task resumes before the keeper does
    with pytest.raises(RunFenced, match="lease is not held"):
        await task
    assert refused and set(refused) == {run_id}
    assert await history(saver, run) == written  # not one checkpoint more

    # Both write paths, directly: a checkpoint and a task's pending writes.
    latest = await saver.aget_tuple(run_config(run))
    assert latest is not None
    with pytest.raises(RunFenced):
        await saver.aput(run_config(run), empty_checkpoint(), {"run_id": run_id}, {})
    with pytest.raises(RunFenced):
        await saver.aput_writes(latest.config | run_config(
            run, checkpoint_id=latest.config["configurable"]["checkpoint_id"]),
            [("ticks", [99])], "task-late")
    after = await saver.aget_tuple(run_config(run))
    assert after is not None and after.config == latest.config
    assert not [w for w in after.pending_writes if w[0] == "task-late"]

    # A write that is no run's (PATCH state, a thread copy) is no lease's business.
    await saver.aput({"configurable": {"thread_id": field(run, "thread_id"),
                                       "checkpoint_ns": ""}}, empty_checkpoint(), {}, {})


async def test_the_keeper_fences_before_it_renews_after_a_gap(store: Store) -> None:
    """On resuming, the keeper stops the runs whose lease lapsed before it talks to
    the database, and renews only the others (a run claimed since the gap keeps
    going); then the lease is held again."""
    lapsed = await admit_running(store, lease_seconds=LEASE)
    fresh = await admit_running(store, lease_seconds=LEASE)
    executor = Executor(field(lapsed, "run_id"), field(fresh, "run_id"))
    clock = Clock()
    keeper = keeper_for(store, executor, clock)
    clock.stop(LEASE + 0.5)
    executor.claimed[field(fresh, "run_id")] = clock()  # claimed after the gap
    renewed: list[set[str]] = []
    real_renew = store.renew_leases

    async def renew_leases(worker_id: str, lease_until: Any, only: Any = None) -> Any:
        renewed.append(set(only))
        assert executor.fenced_run_ids == {field(lapsed, "run_id")}, "fence first"
        return await real_renew(worker_id, lease_until, only=only)

    store.renew_leases = renew_leases  # type: ignore[method-assign]
    try:
        await keeper.renew()
    finally:
        del store.renew_leases
    assert renewed == [{field(fresh, "run_id")}]
    assert keeper.lease_held(field(fresh, "run_id"))
    row = await store.get_run(field(lapsed, "thread_id"), field(lapsed, "run_id"))
    assert field(row, "lease_expires_at") == field(lapsed, "lease_expires_at")  # left to lapse


async def test_postgres_refuses_a_reaped_runs_write_in_its_transaction(
        store: Store, checkpoints: CheckpointBackend) -> None:
    """No clock involved: the worker still believes it holds its lease (its clock
    says so), but the run was reaped. The write's own transaction finds the run is no
    longer this worker's and lands nothing (checkpoint and blobs alike)."""
    if not isinstance(checkpoints, PostgresCheckpoints):
        pytest.skip("the in-transaction guard is PostgreSQL's (SQLite has one process)")
    mine = await admit_running(store, lease_seconds=LEASE)
    reaped = await admit_running(store, lease_seconds=-5)  # its lease already ended
    refused: list[str] = []
    checkpoints.fence_writes(WriteFence(WORKER, lambda run_id: True, refused.append))
    saver = checkpoints.saver
    other, late = Ticker(saver), Ticker(saver)
    other_task = await other.run_paused(run_config(mine))
    task = await late.run_paused(run_config(reaped))
    before = await history(saver, reaped)
    assert before and {r for _, r in before} == {field(reaped, "run_id")}

    finished, _ = await store.reap_expired(utcnow(), OTHER_WORKER, seconds_from_now(30))
    assert [field(r, "run_id") for r in finished] == [field(reaped, "run_id")]
    blobs_before = await count_blobs(checkpoints, field(reaped, "thread_id"))
    late.resume.set()
    with pytest.raises(RunFenced, match="no longer running on this worker"):
        await task
    assert set(refused) == {field(reaped, "run_id")}
    assert await history(saver, reaped) == before
    assert await count_blobs(checkpoints, field(reaped, "thread_id")) == blobs_before
    # The worker's other run writes on (the pool's connections are fine).
    other.resume.set()
    assert (await other_task)["ticks"] == [1, 2, 3, 4]
    assert len(await history(saver, mine)) == 6  # input, loop start, 4 ticks


async def count_blobs(checkpoints: Any, thread_id: str) -> int:
    async with checkpoints.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM checkpoint_blobs WHERE thread_id = %s", (thread_id,))
        row = await cur.fetchone()
    return int(row["n"])


async def test_a_failing_renewal_is_retried_at_the_keepers_pace() -> None:
    """Renewals are paced from the last one *sent* (a slow reap must not age the
    leases), so one that fails, with the database down, must not be retried at once
    in a loop while the lease it never renewed ages."""
    attempts: list[float] = []

    class Down:
        async def renew_leases(self, *args: Any, **kwargs: Any) -> Any:
            attempts.append(time.monotonic())
            raise ConnectionRefusedError("database down")

        async def reap_expired(self, *args: Any) -> Any:
            raise ConnectionRefusedError("database down")

    keeper = LeaseKeeper(store=Down(), executor=Executor(), lease_seconds=0.6,  # type: ignore[arg-type]
                         grace_seconds=0.0, on_reaped=nothing, complete_rollback=nothing)
    keeper.start()
    await asyncio.sleep(1.0)
    await keeper.stop()
    assert 2 <= len(attempts) <= 6, f"{len(attempts)} renewals in 1 s, every 0.2 s expected"
