"""A synchronous node outliving its run (docs/run-contract.md, "Nodes that outlive
their run").

langgraph runs a synchronous node in a thread, which a cancel cannot stop. The
cancelled run still ends `interrupted` at once, but:

- the thread's next run does not start until the abandoned node has returned, or
  until RUNLANE_ABANDONED_NODE_GRACE has passed since the run ended;
- nothing the abandoned node writes lands on the thread once its run's end is
  recorded (its checkpoints: the `sync_worker` node invokes a subgraph, which
  writes checkpoints of the run, every step);
- the run's worker logs that the node was abandoned, with the run and the node.

On both backends: one SQLite process, and 3 workers on PostgreSQL + Redis. The
`sync_worker` node appends `start`/`end` lines with wall-clock times to a file, so
the test sees when each run's node executed, also after its run was cancelled.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langgraph_sdk import get_client

from cluster import Cluster, RoundRobinTransport, require_services
from conftest import BACKENDS, ServerProcess
from contract_support import assert_no_server_failures, eventually

GRACE = 4.0  # RUNLANE_ABANDONED_NODE_GRACE of these servers
GRAPH = "sync_worker"


class Deployment:
    """A server (or cluster) and how to count a run's checkpoints in its database."""

    def __init__(self, server: Any, checkpoints_of: Callable[[str, str], int]) -> None:
        self.server = server
        self.checkpoints_of = checkpoints_of
        self.urls: list[str] = getattr(server, "urls", [server.url])

    def client(self) -> Any:
        client = get_client(url=self.urls[0], timeout=60)
        client.http.client._transport = RoundRobinTransport(self.urls)
        return client

    def log(self) -> str:
        return self.server.log()


def _sqlite_counter(path: Path) -> Callable[[str, str], int]:
    def count(thread_id: str, run_id: str) -> int:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return conn.execute(
                "SELECT count(*) FROM checkpoints WHERE thread_id = ? "
                "AND json_extract(CAST(metadata AS TEXT), '$.run_id') = ?",
                (thread_id, run_id)).fetchone()[0]
    return count


def _postgres_counter(url: str) -> Callable[[str, str], int]:
    def count(thread_id: str, run_id: str) -> int:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM checkpoints WHERE thread_id = %s "
                               "AND metadata->>'run_id' = %s", (thread_id, run_id)).fetchone()
        assert row is not None
        return int(row[0])
    return count


@pytest.fixture(scope="module", params=BACKENDS)
def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    env = {"RUNLANE_ABANDONED_NODE_GRACE": str(GRACE)}
    with tempfile.TemporaryDirectory(prefix="runlane-abandoned-") as tmp:
        if request.param == "sqlite":
            server = ServerProcess(Path(tmp), env=env).start()
            try:
                yield Deployment(server, _sqlite_counter(
                    Path(tmp) / "runlane-checkpoints.sqlite"))
            finally:
                server.stop()
            return
        require_services()
        cluster = Cluster(Path(tmp), 3, env=env)
        try:
            cluster.start()
            yield Deployment(cluster, _postgres_counter(cluster.database_url))
        finally:
            cluster.close()


def node_times(path: Path) -> dict[tuple[str, str], float]:
    """{(event, run_id): time} from the nodes' `start`/`end` lines."""
    times = {}
    for line in path.read_text().splitlines():
        event, run_id, at = line.split()
        times[(event, run_id)] = float(at)
    return times


async def start_mid_node(client: Any, deployment: Deployment, thread_id: str, log: Path,
                         steps: int, delay: float) -> str:
    """A sync_worker run whose node is executing (and has written checkpoints)."""
    run = await client.runs.create(thread_id, GRAPH,
                                   input={"steps": steps, "delay": delay, "log_path": str(log)})
    run_id = run["run_id"]

    async def mid_node() -> bool:
        return await asyncio.to_thread(deployment.checkpoints_of, thread_id, run_id) >= 2

    await eventually(mid_node, what="the node to be executing", timeout=60)
    return run_id


async def cancel_and_run_next(client: Any, deployment: Deployment, thread_id: str,
                              run_id: str, log: Path) -> tuple[float, int, dict]:
    """Cancel the run mid-node, then at once run the thread's next run to its end.
    (When the cancel was sent, the cancelled run's checkpoints then, the next run.)"""
    cancelled_at = time.time()
    final = await client.runs.cancel(thread_id, run_id, wait=True)
    assert final["status"] == "interrupted" and final["stop_reason"] == "cancelled", final
    written = deployment.checkpoints_of(thread_id, run_id)
    after = await client.runs.wait(thread_id, GRAPH,
                                   input={"steps": 1, "delay": 0, "log_path": str(log)})
    return cancelled_at, written, after


async def assert_no_late_writes(client: Any, deployment: Deployment, thread_id: str,
                                run_id: str, written: int, after: dict, log: Path) -> None:
    async def returned() -> bool:
        return ("end", run_id) in node_times(log)

    await eventually(returned, what="the abandoned node to return", timeout=60)
    await asyncio.sleep(0.5)  # anything it would still write
    assert deployment.checkpoints_of(thread_id, run_id) == written, \
        "the abandoned node's checkpoints landed after its run ended"
    state = await client.threads.get_state(thread_id)
    assert state["values"]["done"] == after["done"]
    assert run_id not in state["values"]["done"]
    abandoned = [line for line in deployment.log().splitlines()
                 if run_id in line and "abandoned" in line and "work" in line]
    assert abandoned, "no log line says the node was abandoned"


async def test_the_next_run_waits_for_the_abandoned_node(deployment: Deployment,
                                                         tmp_path: Path) -> None:
    """The node returns within the grace: the next run starts after it returned."""
    client = deployment.client()
    log = tmp_path / "nodes.log"
    thread_id = (await client.threads.create())["thread_id"]
    # About 1.5 s of node, well within the grace.
    run_id = await start_mid_node(client, deployment, thread_id, log, steps=15, delay=0.1)
    _, written, after = await cancel_and_run_next(client, deployment, thread_id, run_id, log)

    times = node_times(log)
    next_id = after["done"][0]
    assert ("end", run_id) in times, f"the next run started before the node returned: {times}"
    assert times[("start", next_id)] >= times[("end", run_id)], times
    await assert_no_late_writes(client, deployment, thread_id, run_id, written, after, log)
    assert any(run_id in line and "returned after" in line
               for line in deployment.log().splitlines())


async def test_the_next_run_starts_after_the_grace(deployment: Deployment,
                                                   tmp_path: Path) -> None:
    """The node runs on far past the grace: the next run starts once the grace has
    passed (not before), while the node still executes; its writes stay dropped."""
    client = deployment.client()
    log = tmp_path / "nodes.log"
    thread_id = (await client.threads.create())["thread_id"]
    run_id = await start_mid_node(client, deployment, thread_id, log, steps=60, delay=0.25)
    cancelled_at, written, after = await cancel_and_run_next(client, deployment, thread_id,
                                                             run_id, log)
    times = node_times(log)
    next_id = after["done"][0]
    # The run ended after the cancel was sent; the grace runs from its end.
    assert times[("start", next_id)] >= cancelled_at + GRACE, times
    # ~15 s of node against a 4 s grace: the next run did not wait for it.
    assert ("end", run_id) not in times or times[("start", next_id)] < times[("end", run_id)]
    await assert_no_late_writes(client, deployment, thread_id, run_id, written, after, log)
    assert any(run_id in line and "still executing after" in line
               for line in deployment.log().splitlines())


async def test_no_internal_failures_logged(deployment: Deployment) -> None:
    assert_no_server_failures(deployment.log())
