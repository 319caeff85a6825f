"""Multitask strategies (one run at a time per thread) and concurrency across threads.

A thread runs at most one run at a time; a new run on a busy thread follows its
`multitask_strategy`: reject, interrupt, rollback or enqueue (the default). Across
threads, runs execute concurrently (up to `--max-concurrency`: test_max_concurrency).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import httpx
import pytest

from contract_support import (
    cancel_url,
    get_run,
    history_run_ids,
    parse_ts,
    run_span,
    snapshot,
    wait_final,
    wait_status,
    wait_ticks,
)

pytest_plugins = ("contract_fixtures",)
pytestmark = pytest.mark.usefixtures("no_server_errors")

LONG = {"steps": 100_000, "delay": 0.02}


class StatusWatcher:
    """Samples the statuses of a thread's runs until stopped, to check that no two
    were ever `running` at once."""

    def __init__(self, client: Any, thread_id: str) -> None:
        self.client = client
        self.thread_id = thread_id
        self.samples: list[dict[str, str]] = []
        self._task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        while True:
            runs = await self.client.runs.list(self.thread_id, limit=100)
            self.samples.append({r["run_id"]: r["status"] for r in runs})
            await asyncio.sleep(0.01)

    def __enter__(self) -> StatusWatcher:
        self._task = asyncio.get_running_loop().create_task(self._loop())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()

    def max_running(self) -> int:
        return max((list(s.values()).count("running") for s in self.samples), default=0)


def blocks(run_ids: list[str | None]) -> list[str | None]:
    """Collapse consecutive equal ids: the order in which runs wrote checkpoints."""
    return [key for key, _ in itertools.groupby(run_ids)]


# -------------------------------------------------------------------------- reject


async def test_reject_answers_409_and_the_active_run_continues(client, ahttp, new_thread):
    thread_id = await new_thread()
    first = await client.runs.create(thread_id, "sleepy", input={"steps": 6, "delay": 0.05})
    await wait_status(client, thread_id, first["run_id"], "running")
    resp = await ahttp.post(f"/threads/{thread_id}/runs", json={
        "assistant_id": "sleepy", "input": {"steps": 1}, "multitask_strategy": "reject"})
    assert resp.status_code == 409, resp.text
    assert "busy" in resp.json()["detail"]
    with pytest.raises(httpx.HTTPStatusError) as info:
        await client.runs.create(thread_id, "sleepy", input={"steps": 1},
                                 multitask_strategy="reject")
    assert info.value.response.status_code == 409
    # Nothing was created, and the active run finishes normally.
    runs = await client.runs.list(thread_id)
    assert [r["run_id"] for r in runs] == [first["run_id"]]
    final = await wait_final(client, thread_id, first["run_id"])
    assert final is not None and final["status"] == "success"
    assert (await client.threads.get_state(thread_id))["values"]["ticks"] == 6
    # Once idle, reject admits the run.
    ok = await client.runs.wait(thread_id, "sleepy", input={"steps": 7, "delay": 0},
                                multitask_strategy="reject")
    assert ok["ticks"] == 7


# ----------------------------------------------------------------------- interrupt


async def test_interrupt_strategy_stops_the_active_run_then_starts(client, new_thread):
    thread_id = await new_thread()
    first = await client.runs.create(thread_id, "sleepy", input=LONG)
    state = await wait_ticks(client, thread_id, 3)
    with StatusWatcher(client, thread_id) as watcher:
        second = await client.runs.create(thread_id, "sleepy", input={"steps": 1, "delay": 0},
                                          multitask_strategy="interrupt")
        final = await wait_final(client, thread_id, second["run_id"])
        await asyncio.sleep(0.05)
    assert final is not None and final["status"] == "success"
    previous = await client.runs.get(thread_id, first["run_id"])
    assert previous["status"] == "interrupted"
    assert previous["cancel_action"] == "interrupt"
    assert previous["cancel_reason"] == "multitask_interrupt"
    assert previous["stop_reason"] == "cancelled"
    assert watcher.max_running() <= 1
    # The new run started after the interrupted one was terminal, from its last
    # checkpoint: no interleaving, and its first checkpoint follows that end.
    ran = await history_run_ids(client, thread_id)
    assert blocks(ran) == [first["run_id"], second["run_id"]]
    started, _ = await run_span(client, thread_id, second["run_id"])
    assert started >= parse_ts(previous["updated_at"])
    values = (await client.threads.get_state(thread_id))["values"]
    assert values["ticks"] > state["values"]["ticks"]
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_interrupt_strategy_also_cancels_queued_runs(client, new_thread):
    thread_id = await new_thread()
    first = await client.runs.create(thread_id, "sleepy", input=LONG)
    await wait_status(client, thread_id, first["run_id"], "running")
    queued = await client.runs.create(thread_id, "sleepy", input={"steps": 1, "delay": 0})
    last = await client.runs.create(thread_id, "sleepy", input={"steps": 1, "delay": 0},
                                    multitask_strategy="interrupt")
    final = await wait_final(client, thread_id, last["run_id"])
    assert final is not None and final["status"] == "success"
    for run in (first, queued):
        got = await client.runs.get(thread_id, run["run_id"])
        assert got["status"] == "interrupted" and got["cancel_reason"] == "multitask_interrupt"
    assert queued["run_id"] not in await history_run_ids(client, thread_id)


@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
async def test_a_strategy_that_stops_the_only_queued_run_leaves_the_thread_busy(
        client, new_thread, strategy):
    """The thread's only active run is a queued one (delayed with `after_seconds`); a
    new run with `interrupt` or `rollback` stops it and runs. The thread is busy while
    the new run is active and idle once it ended. (Found by the model-based store
    tests: stopping the queued run released the thread inside the new run's admission,
    and the thread said `idle` for the new run's whole life.)"""
    thread_id = await new_thread()
    delayed = await client.runs.create(thread_id, "sleepy", input={"steps": 1, "delay": 0},
                                       after_seconds=3600)
    assert (await client.threads.get(thread_id))["status"] == "busy"
    run = await client.runs.create(thread_id, "sleepy", input=LONG,
                                   multitask_strategy=strategy)
    await wait_status(client, thread_id, run["run_id"], "running")
    assert (await client.threads.get(thread_id))["status"] == "busy"
    stopped = await get_run(client, thread_id, delayed["run_id"])
    if strategy == "interrupt":
        assert stopped is not None and stopped["status"] == "interrupted"
    else:
        assert stopped is None  # removed, a tombstone left
    await client.runs.cancel(thread_id, run["run_id"], wait=True)
    assert (await client.threads.get(thread_id))["status"] == "idle"


# ------------------------------------------------------------------------ rollback


async def test_rollback_strategy_removes_the_active_run_and_restores(client, ahttp, new_thread):
    thread_id = await new_thread()
    await client.runs.wait(thread_id, "sleepy", input={"steps": 1, "delay": 0})
    before = await snapshot(client, thread_id)
    first = await client.runs.create(thread_id, "sleepy", input=LONG)
    await wait_ticks(client, thread_id, 4)
    with StatusWatcher(client, thread_id) as watcher:
        second = await client.runs.create(thread_id, "sleepy", input={"steps": 2, "delay": 0},
                                          multitask_strategy="rollback")
        final = await wait_final(client, thread_id, second["run_id"])
        await asyncio.sleep(0.05)
    assert final is not None and final["status"] == "success"
    assert watcher.max_running() <= 1
    assert await get_run(client, thread_id, first["run_id"]) is None
    tomb = await ahttp.post(cancel_url(thread_id, first["run_id"]))
    assert tomb.status_code == 202 and tomb.json()["cancel_reason"] == "multitask_rollback"
    # The new run started only once the rollback was complete (the tombstone's time).
    started, _ = await run_span(client, thread_id, second["run_id"])
    assert started >= parse_ts(tomb.json()["updated_at"])
    # The new run started from exactly the state before the rolled-back run: from
    # 1 tick it needed one more to reach 2 (had the 4+ ticks survived, it would be 5+).
    values = (await client.threads.get_state(thread_id))["values"]
    assert values["ticks"] == 2
    history = await history_run_ids(client, thread_id)
    assert first["run_id"] not in history
    after = await snapshot(client, thread_id)
    assert after["history"][-len(before["history"]):] == before["history"], \
        "checkpoints from before the rolled-back run survive"
    assert blocks(history)[-1] == second["run_id"]


# ------------------------------------------------------------------------- enqueue


async def test_enqueue_runs_in_creation_order_one_at_a_time(client, new_thread):
    thread_id = await new_thread()
    with StatusWatcher(client, thread_id) as watcher:
        created = []
        for _ in range(4):
            created.append(await client.runs.create(
                thread_id, "sleepy", input={"steps": 1, "delay": 0.1},
                multitask_strategy="enqueue"))
        finals = [await wait_final(client, thread_id, r["run_id"]) for r in created]
        await asyncio.sleep(0.05)
    ids = [r["run_id"] for r in created]
    assert [f["status"] for f in finals] == ["success"] * 4
    assert watcher.max_running() == 1, "never two running on a thread at once"
    # Each run wrote its checkpoints in one block, in creation order.
    assert blocks(await history_run_ids(client, thread_id)) == ids
    # And each ended before the next one started.
    spans = [await run_span(client, thread_id, run_id) for run_id in ids]
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start
    # ... and only once it was terminal in the store.
    for final, (start, _) in zip(finals, spans[1:], strict=False):
        assert parse_ts(final["updated_at"]) <= start


async def test_enqueue_is_the_default(client, new_thread):
    thread_id = await new_thread()
    first = await client.runs.create(thread_id, "sleepy", input={"steps": 3, "delay": 0.05})
    second = await client.runs.create(thread_id, "sleepy", input={"steps": 1, "delay": 0})
    assert second["status"] == "pending" and second["multitask_strategy"] == "enqueue"
    final = await wait_final(client, thread_id, second["run_id"])
    assert final is not None and final["status"] == "success"
    assert blocks(await history_run_ids(client, thread_id)) == [first["run_id"], second["run_id"]]


# --------------------------------------------------------------- across threads


async def test_many_threads_run_concurrently(client, new_thread):
    threads = [await new_thread() for _ in range(20)]
    created = await asyncio.gather(*(
        client.runs.create(t, "sleepy", input={"steps": 1, "delay": 0.5}) for t in threads))
    finals = await asyncio.gather(*(
        wait_final(client, t, r["run_id"]) for t, r in zip(threads, created, strict=True)))
    assert all(f is not None and f["status"] == "success" for f in finals)
    spans = [await run_span(client, t, r["run_id"]) for t, r in zip(threads, created, strict=True)]
    # The most runs executing at one instant (each span lies inside its run's life).
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans],
                    key=lambda x: (x[0], x[1]))
    level = peak = 0
    for _, delta in events:
        level += delta
        peak = max(peak, level)
    assert peak >= 10, f"only {peak} of 20 runs overlapped"
