"""The targeted wake on a cluster (executor/dispatch.py): the worker that admits a run
starts it in the admission's own transaction when it has a free slot, without waking
the other workers (no WAKE NOTIFY, no claim on every worker); a run it cannot start
(its slots full, a run ahead of it on its thread) is left pending, announced only when
it may be startable, and started by another worker, or by any worker once a slot
frees. Two real workers with one slot each, on the machine's PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from langgraph_sdk import get_client

from cluster import Cluster, require_services, wait_status

pytestmark = pytest.mark.scaleout

LONG = {"steps": 100_000, "delay": 0.01}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_services()
    deployment = Cluster(Path(tmp_path_factory.mktemp("targeted-wake")), 2,
                         "--max-concurrency", "1")
    for index, worker in enumerate(deployment.workers):
        worker.env["RUNLANE_WORKER_NAME"] = f"w{index}"
    deployment.start()
    yield deployment
    deployment.close()


class WakeCounter:
    """A LISTEN connection of the test's own on runlane_wake: counts deliveries."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.count = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)

    def __enter__(self) -> WakeCounter:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def _listen(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("LISTEN runlane_wake")
            self._ready.set()
            while not self._stop.is_set():
                for _note in conn.notifies(timeout=0.1):
                    self.count += 1

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def owner_of(cluster: Cluster, run_id: str) -> str:
    with psycopg.connect(cluster.database_url) as conn:
        row = conn.execute("SELECT worker_id FROM runs WHERE run_id = %s", (run_id,)).fetchone()
    assert row and row[0], f"run {run_id} has no owner"
    return str(row[0]).split("-")[0]


async def quiet(cluster: Cluster) -> None:
    """No run active anywhere, and a moment for the workers to free the slots of the
    runs that just ended (a slot is freed right after its run's end commits)."""
    deadline = time.monotonic() + 30
    while True:
        with psycopg.connect(cluster.database_url) as conn:
            row = conn.execute("SELECT count(*) FROM runs WHERE status IN ('pending', "
                               "'running')").fetchone()
        if row is not None and row[0] == 0:
            break
        assert time.monotonic() < deadline, "runs stayed active"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)


async def test_a_run_admitted_with_a_free_slot_starts_there_without_waking_anyone(
        cluster: Cluster) -> None:
    for index, url in enumerate(cluster.urls):
        await quiet(cluster)
        client = get_client(url=url, timeout=30)
        thread = await client.threads.create()
        with WakeCounter(cluster.database_url) as wakes:
            run = await client.runs.create(thread["thread_id"], "sleepy", input=LONG)
            # Running as soon as its creation is answered: started in its admission.
            assert (await client.runs.get(thread["thread_id"], run["run_id"])
                    )["status"] == "running"
            await client.runs.cancel(thread["thread_id"], run["run_id"], wait=True)
        assert owner_of(cluster, run["run_id"]) == f"w{index}"
        assert wakes.count == 0, "a run started at admission woke the other workers"


async def test_a_full_worker_leaves_the_run_to_another(cluster: Cluster) -> None:
    await quiet(cluster)
    first, second = (get_client(url=url, timeout=30) for url in cluster.urls)
    busy = await first.threads.create()
    long_run = await first.runs.create(busy["thread_id"], "sleepy", input=LONG)
    assert owner_of(cluster, long_run["run_id"]) == "w0"
    # w0's only slot is taken: the next run it admits waits, announced, and w1 takes it.
    thread = await first.threads.create()
    with WakeCounter(cluster.database_url) as wakes:
        run = await first.runs.create(thread["thread_id"], "sleepy", input=LONG)
        await wait_status(first, thread["thread_id"], run["run_id"], {"running"})
    assert wakes.count >= 1
    assert owner_of(cluster, run["run_id"]) == "w1"
    # Both full: a third run waits until a slot frees on either worker.
    third_thread = await second.threads.create()
    third = await second.runs.create(third_thread["thread_id"], "sleepy",
                                     input={"steps": 1})
    await asyncio.sleep(0.3)
    assert (await second.runs.get(third_thread["thread_id"], third["run_id"])
            )["status"] == "pending"
    await first.runs.cancel(busy["thread_id"], long_run["run_id"], wait=True)
    await wait_status(second, third_thread["thread_id"], third["run_id"], {"success"})
    await second.runs.cancel(thread["thread_id"], run["run_id"], wait=True)


async def test_a_run_queued_behind_a_running_one_is_announced_by_its_end(
        cluster: Cluster) -> None:
    await quiet(cluster)
    first, second = (get_client(url=url, timeout=30) for url in cluster.urls)
    thread = await first.threads.create()
    ahead = await first.runs.create(thread["thread_id"], "sleepy", input=LONG)
    with WakeCounter(cluster.database_url) as wakes:
        # Behind a running run it cannot start: nobody is woken for it.
        queued = await second.runs.create(thread["thread_id"], "sleepy", input={"steps": 1},
                                          multitask_strategy="enqueue")
        await asyncio.sleep(0.3)
        assert wakes.count == 0
        assert (await second.runs.get(thread["thread_id"], queued["run_id"])
                )["status"] == "pending"
        await second.runs.cancel(thread["thread_id"], ahead["run_id"], wait=True)
        final = await wait_status(second, thread["thread_id"], queued["run_id"], {"success"})
    assert final["status"] == "success"
    assert wakes.count >= 1  # the end of the run ahead announced it
