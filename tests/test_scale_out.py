"""Scale-out under faults: three real worker processes on the machine's PostgreSQL and
Redis. Cross-worker cancel, a killed owner (kill -9), a paused owner (SIGSTOP past
its lease, then SIGCONT: it must not write)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from langgraph_sdk import get_client

from cluster import Cluster, RoundRobinTransport, require_services, wait_status

pytestmark = pytest.mark.scaleout

LEASE = 1.0
GRACE = 0.5
# A dead owner's run is finished within lease + grace, plus one reaper interval.
TAKEOVER_BOUND = LEASE + GRACE + LEASE / 3 + 2.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_services()
    os.environ["RUNLANE_LEASE_GRACE"] = str(GRACE)
    deployment = Cluster(Path(tmp_path_factory.mktemp("cluster")), 3,
                         "--lease-seconds", str(LEASE))
    for index, worker in enumerate(deployment.workers):
        worker.env["RUNLANE_WORKER_NAME"] = f"w{index}"
    deployment.start()
    yield deployment
    deployment.close()


@pytest.fixture
def spread(cluster: Cluster):
    client = get_client(url=cluster.url, timeout=30)
    client.http.client._transport = RoundRobinTransport(cluster.urls)
    return client


def owner_of(cluster: Cluster, run_id: str) -> int:
    with psycopg.connect(cluster.database_url) as conn:
        row = conn.execute("SELECT worker_id FROM runs WHERE run_id = %s", (run_id,)).fetchone()
    assert row and row[0], f"run {run_id} has no owner"
    return int(row[0].split("-")[0].removeprefix("w"))


def ensure_running(cluster: Cluster) -> None:
    for worker in cluster.workers:
        if worker.proc is None or worker.proc.poll() is not None:
            worker.start()


async def start_long_run(client, graph: str = "sleepy", **input_: object) -> tuple[str, str]:
    thread = await client.threads.create()
    run = await client.runs.create(
        thread["thread_id"], graph, input=input_ or {"steps": 100_000, "delay": 0.01}
    )
    await wait_status(client, thread["thread_id"], run["run_id"], {"running"}, 10)
    return thread["thread_id"], run["run_id"]


async def test_cancel_through_every_worker(cluster: Cluster, spread) -> None:
    ensure_running(cluster)
    for _ in range(9):
        thread_id, run_id = await start_long_run(spread)
        started = time.monotonic()
        final = await spread.runs.cancel(thread_id, run_id, wait=True)
        assert final["status"] == "interrupted"
        assert time.monotonic() - started < 2.0
        # Duplicates, through other workers, still 202 and never change the outcome.
        again = await spread.runs.cancel(thread_id, run_id)
        assert again["status"] == "interrupted"


async def test_killed_owner_run_is_finished_by_a_survivor(cluster: Cluster, spread) -> None:
    ensure_running(cluster)
    thread_id, run_id = await start_long_run(spread)
    owner = owner_of(cluster, run_id)
    cluster.workers[owner].kill()
    started = time.monotonic()
    final = await wait_status(spread, thread_id, run_id, {"error", "interrupted", "success"},
                              TAKEOVER_BOUND + 5)
    assert final["status"] == "error"
    assert final["stop_reason"] == "worker_lost"
    assert time.monotonic() - started < TAKEOVER_BOUND
    # The thread is usable again, served by the survivors.
    result = await spread.runs.wait(thread_id, "sleepy", input={"steps": 1})
    assert result["ticks"] >= 1
    cluster.workers[owner].start()


async def test_killed_owner_with_recorded_cancel_ends_interrupted(cluster: Cluster, spread) -> None:
    ensure_running(cluster)
    # A synchronous node ignores cancellation: the cancel is recorded, the run keeps
    # running, and then its worker dies.
    thread_id, run_id = await start_long_run(spread, "stubborn", delay=30.0)
    owner = owner_of(cluster, run_id)
    accepted = await spread.runs.cancel(thread_id, run_id)
    assert accepted["cancel_action"] == "interrupt"
    cluster.workers[owner].kill()
    final = await wait_status(spread, thread_id, run_id, {"error", "interrupted", "success"},
                              TAKEOVER_BOUND + 5)
    assert final["status"] == "interrupted"
    cluster.workers[owner].start()


async def test_paused_owner_never_writes_after_takeover(cluster: Cluster, spread) -> None:
    ensure_running(cluster)
    thread_id, run_id = await start_long_run(spread, steps=30, delay=0.1)
    index = owner_of(cluster, run_id)
    owner = cluster.workers[index]
    # A stopped process still accepts connections (the kernel does) but never answers:
    # talk to a survivor, as a load balancer's health check would make us do.
    survivor = get_client(url=cluster.urls[(index + 1) % len(cluster.urls)], timeout=30)
    assert owner.proc is not None
    owner.proc.send_signal(signal.SIGSTOP)
    try:
        reaped = await wait_status(survivor, thread_id, run_id,
                                   {"error", "success", "interrupted"}, TAKEOVER_BOUND + 5)
        assert reaped["status"] == "error" and reaped["stop_reason"] == "worker_lost"
    finally:
        owner.proc.send_signal(signal.SIGCONT)
    # The paused worker wakes with a run it no longer owns: it must not write.
    await asyncio.sleep(LEASE * 2 + 3.5)  # longer than the run would have needed
    after = await survivor.runs.get(thread_id, run_id)
    assert after["status"] == "error"
    assert after["updated_at"] == reaped["updated_at"]


def checkpoints_of(cluster: Cluster, thread_id: str) -> list[tuple[str, str, int]]:
    """(checkpoint id, run id, pending writes) of the thread's root checkpoints, in the
    order of its history (oldest first)."""
    with psycopg.connect(cluster.database_url) as conn:
        rows = conn.execute(
            "SELECT c.checkpoint_id, c.metadata->>'run_id', "
            "  (SELECT count(*) FROM checkpoint_writes w WHERE w.thread_id = c.thread_id "
            "   AND w.checkpoint_ns = c.checkpoint_ns AND w.checkpoint_id = c.checkpoint_id) "
            "FROM checkpoints c WHERE c.thread_id = %s AND c.checkpoint_ns = '' "
            "ORDER BY c.checkpoint_id", (thread_id,)).fetchall()
    return [(cid, run_id, writes) for cid, run_id, writes in rows]


def runs_in(history: list[tuple[str, str, int]]) -> list[str]:
    """The runs that wrote the history, one entry per uninterrupted block."""
    blocks: list[str] = []
    for _, run_id, _ in history:
        if not blocks or blocks[-1] != run_id:
            blocks.append(run_id)
    return blocks


@pytest.mark.parametrize("attempt", range(6))
async def test_a_stopped_owner_writes_no_checkpoint_after_its_run_was_reaped(
        cluster: Cluster, attempt: int) -> None:
    """The fourth soak's finding: a worker SIGSTOPped past its lease is reaped and the
    thread's next run starts on another worker; when the stopped worker is continued,
    its graph task (a tick every 20 ms, a checkpoint each) must not write one more
    checkpoint, nor pending writes, for the reaped run: it stops by its own clock
    before its keeper renews, and each write checks its run in its transaction."""
    ensure_running(cluster)
    client = get_client(url=cluster.urls[attempt % len(cluster.urls)], timeout=30)
    thread_id, run_id = await start_long_run(client, steps=100_000, delay=0.02)
    index = owner_of(cluster, run_id)
    owner = cluster.workers[index]
    survivor = get_client(url=cluster.urls[(index + 1) % len(cluster.urls)], timeout=30)
    while len(checkpoints_of(cluster, thread_id)) < 5:  # it is ticking
        await asyncio.sleep(0.05)
    assert owner.proc is not None
    owner.proc.send_signal(signal.SIGSTOP)
    try:
        reaped = await wait_status(survivor, thread_id, run_id,
                                   {"error", "success", "interrupted"}, TAKEOVER_BOUND + 5)
        assert reaped["stop_reason"] == "worker_lost", reaped
        at_reap = checkpoints_of(cluster, thread_id)
        ticks = (await survivor.threads.get_state(thread_id))["values"]["ticks"]
        # The next run ticks 60 more times (`steps` counts the thread's ticks).
        nxt = await survivor.runs.create(thread_id, "sleepy",
                                         input={"steps": ticks + 60, "delay": 0.02})
        await wait_status(survivor, thread_id, nxt["run_id"], {"running", "success"}, 10)
    finally:
        owner.proc.send_signal(signal.SIGCONT)
    # The continued worker's graph task wakes at once (its tick's sleep is long over);
    # give it time to write if it would.
    await asyncio.sleep(LEASE * 2)
    final = await wait_status(survivor, thread_id, nxt["run_id"],
                              {"success", "error", "interrupted"}, 30)
    assert final["status"] == "success", final
    history = checkpoints_of(cluster, thread_id)
    reaped_run = [c for c in history if c[1] == run_id]
    assert reaped_run == [c for c in at_reap if c[1] == run_id], (
        "the reaped run wrote after its reap")
    assert runs_in(history) == [run_id, nxt["run_id"]], runs_in(history)
    state = await survivor.threads.get_state(thread_id)
    assert state["values"]["ticks"] == ticks + 60
