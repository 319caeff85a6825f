"""A rollback completed by another process than the run's own is exact too.

A run that resumes a paused graph writes its resume value onto the paused checkpoint,
which predates the run; its rollback must put that checkpoint's pending writes back
as they were (the run's *restore point*). The restore point is kept in the store
from before the graph starts, so a rollback completed after the run's process died
restores it exactly:

- PostgreSQL + Redis, 3 workers: the run's owner is killed (kill -9), the rollback is
  recorded through a survivor, and the worker that adopts the dead worker's run
  completes it;
- one SQLite process: the rollback is recorded while the run is still stopping, the
  process is killed, and the next start completes it.

Either way the thread's state and history are exactly what they were before the run,
the resume value is gone (continuing without one pauses again), and the thread
resumes as if the rolled-back attempt never happened.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from langgraph_sdk import get_client

from cluster import Cluster, RoundRobinTransport, require_services
from conftest import BACKENDS, ServerProcess
from contract_support import (
    assert_no_server_failures,
    cancel_url,
    eventually,
    get_run,
    snapshot,
)

LEASE = 3.0
LEASE_GRACE = 2.0
# RESUME in langgraph: the channel of a resume value's pending write.
RESUME = "__resume__"


def _resume_writes_sqlite(path: Path) -> Callable[[str], int]:
    def count(thread_id: str) -> int:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT count(*) FROM writes WHERE thread_id = ? AND channel = ?",
                                (thread_id, RESUME)).fetchone()[0]
    return count


def _resume_writes_postgres(url: str) -> Callable[[str], int]:
    def count(thread_id: str) -> int:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM checkpoint_writes WHERE thread_id = %s "
                               "AND channel = %s", (thread_id, RESUME)).fetchone()
        assert row is not None
        return int(row[0])
    return count


GRAPH = "linger_hitl"


async def paused_thread(client: Any) -> tuple[str, dict]:
    """A thread paused at interrupt(), and its snapshot (state and every checkpoint)."""
    thread_id = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread_id, GRAPH, input={})
    before = await snapshot(client, thread_id)
    assert before["next"] == ["ask"], before
    return thread_id, before


async def resume_until_written(client: Any, thread_id: str,
                               resume_writes: Callable[[str], int]) -> str:
    """Start a run resuming the thread (its node then ignores cancellation for two
    minutes); return its id once its resume value is a pending write on the paused
    checkpoint (the write its rollback must undo)."""
    assert resume_writes(thread_id) == 0
    run = await client.runs.create(thread_id, GRAPH,
                                   command={"resume": {"answer": "first", "delay": 120}})

    async def written() -> bool:
        return await asyncio.to_thread(resume_writes, thread_id) > 0

    await eventually(written, what="the resume value to be written", timeout=30)
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "running"
    return run["run_id"]


async def assert_exactly_restored(client: Any, thread_id: str, run_id: str, before: dict,
                                  resume_writes: Callable[[str], int]) -> None:
    assert await get_run(client, thread_id, run_id) is None  # removed, a tombstone left
    assert await snapshot(client, thread_id) == before
    assert resume_writes(thread_id) == 0, "the rolled-back resume value is still there"
    assert (await client.threads.get(thread_id))["status"] == "interrupted"
    # Continuing without a resume value pauses again, rather than consuming "first".
    again = await client.runs.wait(thread_id, GRAPH, input=None)
    assert not again.get("answers") and again["__interrupt__"], again
    # And the thread resumes as if the rolled-back attempt never happened.
    result = await client.runs.wait(thread_id, GRAPH, command={"resume": "second"})
    assert result["answers"] == ["second"], result


# ------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if "postgres" not in BACKENDS:
        pytest.skip("RUNLANE_TEST_BACKENDS leaves out postgres")
    require_services()
    deployment = Cluster(Path(tmp_path_factory.mktemp("rollback-crash")), 3,
                         "--lease-seconds", str(LEASE))
    for index, worker in enumerate(deployment.workers):
        # An environment of each worker's own (a name that says which one it is).
        worker.env = {"RUNLANE_LEASE_GRACE": str(LEASE_GRACE),
                      "RUNLANE_WORKER_NAME": f"w{index}"}
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.close()


def owner_of(cluster: Cluster, run_id: str) -> int:
    with psycopg.connect(cluster.database_url) as conn:
        row = conn.execute("SELECT worker_id FROM runs WHERE run_id = %s", (run_id,)).fetchone()
    assert row and row[0], f"run {run_id} has no owner"
    return int(row[0].split("-")[0].removeprefix("w"))


def restore_points(cluster: Cluster) -> int:
    with psycopg.connect(cluster.database_url) as conn:
        row = conn.execute("SELECT count(*) FROM run_restore_points").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.scaleout
@pytest.mark.parametrize("attempt", range(2))
async def test_a_dead_owners_rollback_restores_the_pending_writes(cluster: Cluster,
                                                                  attempt: int) -> None:
    for worker in cluster.workers:
        if worker.proc is None or worker.proc.poll() is not None:
            worker.start()
    client = get_client(url=cluster.url, timeout=60)
    client.http.client._transport = RoundRobinTransport(cluster.urls)
    resume_writes = _resume_writes_postgres(cluster.database_url)
    thread_id, before = await paused_thread(client)
    run_id = await resume_until_written(client, thread_id, resume_writes)
    assert restore_points(cluster) == 1

    owner = owner_of(cluster, run_id)
    cluster.workers[owner].kill()
    # Recorded through a survivor (the transport skips the dead worker) while the dead
    # owner's lease still holds: the run is running, its rollback recorded.
    accepted = await client.runs.cancel(thread_id, run_id, action="rollback")
    assert accepted["status"] == "running" and accepted["cancel_action"] == "rollback", accepted

    # A survivor adopts the run once the lease has expired and completes the rollback.
    async def removed() -> bool:
        return await get_run(client, thread_id, run_id) is None

    await eventually(removed, what="the adopted rollback to complete",
                     timeout=LEASE + LEASE_GRACE + 30)
    # Completed by a survivor that adopted it, not by the dead owner.
    adopted = [line for index, worker in enumerate(cluster.workers) if index != owner
               for line in worker.log().splitlines()
               if run_id in line and "rolled_back=True" in line and "taken_over_by" in line]
    assert len(adopted) == 1, cluster.log()[-4000:]
    await assert_exactly_restored(client, thread_id, run_id, before, resume_writes)
    tomb = await client.runs.cancel(thread_id, run_id)
    assert tomb["cancel_outcome"] == "rolled_back", tomb
    assert restore_points(cluster) == 0  # none outlives its run
    cluster.workers[owner].start()
    for index, worker in enumerate(cluster.workers):
        if index != owner:
            assert_no_server_failures(worker.log())


# ----------------------------------------------------------------- SQLite


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[ServerProcess]:
    if "sqlite" not in BACKENDS:
        pytest.skip("RUNLANE_TEST_BACKENDS leaves out sqlite")
    # The node ignores cancellation; a long cancel grace keeps the run `running`, its
    # rollback recorded, until the kill.
    proc = ServerProcess(tmp_path, env={"RUNLANE_CANCEL_GRACE": "120"})
    proc.start()
    yield proc
    proc.stop()


async def test_a_restart_completes_the_rollback_exactly(sqlite_server: ServerProcess) -> None:
    client = get_client(url=sqlite_server.url, timeout=60)
    resume_writes = _resume_writes_sqlite(sqlite_server.workdir / "runlane-checkpoints.sqlite")
    thread_id, before = await paused_thread(client)
    run_id = await resume_until_written(client, thread_id, resume_writes)

    async with httpx.AsyncClient(base_url=sqlite_server.url, timeout=60) as raw:
        resp = await raw.post(cancel_url(thread_id, run_id),
                              params={"wait": "0", "action": "rollback"})
    assert resp.status_code == 202, resp.text
    assert resp.json()["status"] == "running", resp.json()  # still stopping
    sqlite_server.kill()
    sqlite_server.start()

    client = get_client(url=sqlite_server.url, timeout=60)
    await assert_exactly_restored(client, thread_id, run_id, before, resume_writes)
    assert_no_server_failures(sqlite_server.log())
