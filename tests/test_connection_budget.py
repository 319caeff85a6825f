"""PostgreSQL connections per worker stay within the stated budget (docs/scale-out.md):
3 real workers serve a mixed load (runs writing checkpoints, store items, reads of
state and history, searches) while pg_stat_activity is sampled for the cluster's
database; the peak never passes workers x connections_per_worker, which leaves room
for 10 more workers under PostgreSQL's default max_connections. Smaller pools, set by
flags, hold too, and the same load still succeeds on them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from langgraph_sdk import get_client

from cluster import (
    POSTGRES_ADMIN_URL,
    REDIS_URL,
    Cluster,
    RoundRobinTransport,
    require_services,
)
from conftest import GRAPHS_CONFIG
from runlane.settings import Settings

pytestmark = pytest.mark.scaleout

WORKERS = 3
# PostgreSQL's defaults: max_connections 100, of which superuser_reserved_connections 3.
DEFAULT_USABLE = 100 - 3


class ConnectionSampler:
    """Counts the connections to one database every few milliseconds, from a
    connection to another database (so it never counts itself)."""

    def __init__(self, database_url: str) -> None:
        self.database = database_url.rsplit("/", 1)[1]
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            while not self._stop.is_set():
                row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                   (self.database,)).fetchone()
                assert row is not None
                self.peak = max(self.peak, int(row[0]))
                self.samples += 1
                self._stop.wait(0.01)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


async def serve_load(cluster: Cluster) -> None:
    """A mixed load spread over the workers; every request must succeed."""
    client = get_client(url=cluster.url, timeout=60)
    client.http.client._transport = RoundRobinTransport(cluster.urls)
    threads = [(await client.threads.create())["thread_id"] for _ in range(24)]

    async def ticking(tid: str) -> None:
        result = await client.runs.wait(tid, "sleepy", input={"steps": 8, "delay": 0.01})
        assert result["ticks"] == 8, result
        await client.threads.get_state(tid)
        await client.threads.get_history(tid, limit=5)

    async def remembering(i: int) -> None:
        result = await client.runs.wait(None, "memory", input={
            "namespace": ["budget"], "key": f"k{i}", "write": {"i": i}})
        assert "seen" in result, result
        await client.store.search_items(["budget"], limit=5)
        await client.threads.search(limit=5)

    await asyncio.gather(*(ticking(tid) for tid in threads),
                         *(remembering(i) for i in range(24)))


@pytest.fixture
def sampled_cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    require_services()
    deployment = Cluster(tmp_path, WORKERS, *request.param)
    for worker in deployment.workers:
        # Three workers import and migrate at once; a busy machine must not fail this.
        worker.start_timeout = 300.0
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.close()


def test_the_default_budget_leaves_room_for_ten_more_workers() -> None:
    per_worker = Settings().connections_per_worker()
    assert per_worker == 3 + 2 + 1 + 1  # database threads, checkpointer, item store, LISTEN
    assert (WORKERS + 10) * per_worker <= DEFAULT_USABLE


@pytest.mark.parametrize(("sampled_cluster", "per_worker"), [
    ((), Settings().connections_per_worker()),
    (("--db-pool-size", "1", "--checkpoint-pool-size", "1", "--item-pool-size", "1"), 4),
], indirect=["sampled_cluster"], ids=["defaults", "smallest-pools"])
async def test_three_workers_stay_within_the_budget_under_load(sampled_cluster: Cluster,
                                                               per_worker: int) -> None:
    with ConnectionSampler(sampled_cluster.database_url) as sampler:
        await serve_load(sampled_cluster)
        await serve_load(sampled_cluster)
    budget = WORKERS * per_worker
    assert sampler.samples > 50, "the sampler barely ran"
    # Each worker holds at least its LISTEN connection and a database thread's.
    assert 2 * WORKERS <= sampler.peak <= budget, (
        f"peak {sampler.peak} connections for {WORKERS} workers; budget {budget}")


def test_a_redis_pool_of_no_connections_stops_start_up_with_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "runlane.cli", "serve", "--config", str(GRAPHS_CONFIG),
         "--port", "1", "--database-url", f"{POSTGRES_ADMIN_URL}_none", "--redis-url",
         REDIS_URL],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "COLUMNS": "400", "RUNLANE_REDIS_MAX_READ_CONNECTIONS": "0"})
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot start" in lines[0], done.stderr
    assert "RUNLANE_REDIS_MAX_READ_CONNECTIONS: 0 is not a positive" in lines[0], done.stderr
