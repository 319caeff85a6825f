"""--max-concurrency: across threads, runs execute concurrently up to the limit; the
runs beyond it wait `pending` and start in creation order as slots free up.

On a server of these tests' own (one SQLite process with two slots), started once
for the module. (In test_multitask, whose module-wide `no_server_errors` ties every
test to the session servers, they ran once per backend, each time on a server of
their own like this one.)
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from langgraph_sdk import get_client

from conftest import ServerProcess
from contract_support import assert_no_server_failures, eventually, run_span


@pytest.fixture(scope="module")
def two_slots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with two run slots. Each test checks the part of its log it made."""
    server = ServerProcess(Path(tmp_path_factory.mktemp("two-slots")),
                           "--max-concurrency", "2").start()
    try:
        yield server
    finally:
        server.stop()


async def test_max_concurrency_keeps_extra_runs_pending(two_slots: ServerProcess) -> None:
    """With two slots, the third run waits `pending`, and takes the slot of the first
    run to finish (not the last: here the second runs much longer).

    Judged from the server's log, which records every status change in the order the
    one event loop made them. (Sampling the three runs with concurrent GETs is no
    snapshot: the first run can end and the third start between two of the reads, so
    a sample may show three `running` that never ran at once.)"""
    start = len(two_slots.log())
    client = get_client(url=two_slots.url, timeout=60)
    threads = [(await client.threads.create())["thread_id"] for _ in range(3)]
    runs = []
    for thread_id, delay in zip(threads, (0.3, 1.5, 0.1), strict=True):
        runs.append(await client.runs.create(thread_id, "sleepy",
                                             input={"steps": 1, "delay": delay}))
    run_ids = [r["run_id"] for r in runs]

    async def all_done() -> bool:
        got = await asyncio.gather(*(client.runs.get(t, r)
                                     for t, r in zip(threads, run_ids, strict=True)))
        return all(g["status"] == "success" for g in got)

    await eventually(all_done, what="all three runs to finish", timeout=10)
    order: list[tuple[str, str]] = []  # (run, new status), in the order they happened
    running: set[str] = set()
    peak = 0
    for match in _TRANSITION.finditer(two_slots.log()[start:]):
        run_id, old, new = match["run"], match["old"], match["new"]
        if run_id not in run_ids or old == "new":
            continue
        order.append((run_id, new))
        if new == "running":
            running.add(run_id)
            peak = max(peak, len(running))
        elif old == "running":
            running.discard(run_id)
    first, second, third = run_ids
    assert peak <= 2, f"{peak} runs ran at once with --max-concurrency 2: {order}"
    # The first two started at once; the third waited pending for a slot ...
    assert order.index((third, "running")) > order.index((first, "running"))
    assert order.index((third, "running")) > order.index((second, "running"))
    # ... took the slot of the first to finish, as soon as it was free, not the last.
    assert order.index((first, "success")) < order.index((third, "running")) \
        < order.index((second, "success")), order
    spans = [await run_span(client, t, r) for t, r in zip(threads, run_ids, strict=True)]
    assert spans[2][0] >= spans[0][1]
    assert spans[2][1] < spans[1][1], "the free slot stayed idle until another run ended"
    assert_no_server_failures(two_slots.log()[start:])


_TRANSITION = re.compile(r"run (?P<run>[0-9a-f-]{36}) (?P<old>\w+) -> (?P<new>\w+)")


@pytest.mark.race
async def test_runs_start_in_creation_order_when_slots_are_scarce(
        two_slots: ServerProcess) -> None:
    """One SQLite process may start a run inside its own admission when a slot is
    free and nothing waits for one (Executor.reserve_slot). Racing creations on a
    saturated server must still never exceed the limit, and runs must start in
    exactly the order they were created. The server's log records every status
    change in the order it happened, as one event loop made them."""
    start = len(two_slots.log())
    rng = random.Random(7)
    client = get_client(url=two_slots.url, timeout=60)
    for _trial in range(10):
        threads = [(await client.threads.create())["thread_id"] for _ in range(24)]

        async def create(thread_id: str) -> str:
            await asyncio.sleep(rng.uniform(0, 0.05))
            run = await client.runs.create(thread_id, "sleepy", input={
                "steps": 1, "delay": rng.choice([0.0, 0.0, 0.0, 0.002, 0.01])})
            return run["run_id"]

        run_ids = set(await asyncio.gather(*(create(t) for t in threads)))
        for thread_id in threads:
            for run in await client.runs.list(thread_id):
                await client.runs.join(thread_id, run["run_id"])
        created, started, running, peak = [], [], set(), 0
        for match in _TRANSITION.finditer(two_slots.log()[start:]):
            run_id, old, new = match["run"], match["old"], match["new"]
            if run_id not in run_ids:
                continue
            if old == "new":
                created.append(run_id)
            elif new == "running":
                started.append(run_id)
                running.add(run_id)
                peak = max(peak, len(running))
            elif old == "running":
                running.discard(run_id)
        assert sorted(created) == sorted(run_ids) and sorted(started) == sorted(run_ids)
        assert started == created, "a run started ahead of one created before it"
        assert peak <= 2, f"{peak} runs ran at once with --max-concurrency 2"
        assert not running
    assert_no_server_failures(two_slots.log()[start:])


async def test_one_sqlite_process_runs_a_hundred_waiting_runs_at_once_by_default(
        fresh_server: ServerProcess) -> None:
    """Without --max-concurrency, one SQLite process does not queue runs that only wait
    (as an agent run waits on its model): 100 runs sleeping at once all run, none is
    left `pending` (the default was 64: 36 of them waited for a slot)."""
    client = get_client(url=fresh_server.url, timeout=60)
    threads = await asyncio.gather(*(client.threads.create() for _ in range(100)))
    runs = await asyncio.gather(*(
        client.runs.create(t["thread_id"], "sleepy", input={"steps": 1, "delay": 60})
        for t in threads))

    async def all_running() -> bool:
        got = await asyncio.gather(*(client.runs.get(r["thread_id"], r["run_id"])
                                     for r in runs))
        return all(g["status"] == "running" for g in got)

    await eventually(all_running, what="all 100 runs to be running at once", timeout=30)
    await asyncio.gather(*(client.runs.cancel(r["thread_id"], r["run_id"], wait=True)
                           for r in runs))
    assert_no_server_failures(fresh_server.log())
