"""The thread stream (GET /threads/{id}/stream) is woken by notifications, not by
polling: on a server whose fallback poll is ten minutes (RUNLANE_THREAD_STREAM_POLL),
it still follows consecutive runs as they are admitted (on the cluster, on other
workers than the stream's) and ends when the thread is deleted, well within that;
and while it waits between runs it reads nothing from the store
(`runlane_thread_stream_reads_total`, every worker's, added up). Both backends:
SQLite (one process, in-process notifications) and 3 PostgreSQL workers (NOTIFY)."""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from conftest import BACKENDS, ServerProcess
from sse_gauge import sse_streams, streams_opened

FALLBACK_POLL = 600.0  # seconds: far beyond any bound below
# How long a run may take to show up in the stream: generous for a loaded 2-core
# machine, and still twenty times shorter than the fallback poll.
SHOWS_UP_WITHIN = 30.0


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest) -> Iterator[Any]:
    env = {"RUNLANE_THREAD_STREAM_POLL": str(FALLBACK_POLL)}
    with tempfile.TemporaryDirectory(prefix="runlane-wakeups-") as tmp:
        if request.param == "sqlite":
            proc = ServerProcess(Path(tmp), env=env).start()
            try:
                yield proc
            finally:
                proc.stop()
            return
        from cluster import Cluster, require_services

        require_services()
        cluster = Cluster(Path(tmp), 3, env=env)
        try:
            yield cluster.start()
        finally:
            cluster.close()


def _urls(server: Any) -> list[str]:
    return list(getattr(server, "urls", None) or [server.url])


async def _reads(server: Any) -> dict[str, float]:
    """runlane_thread_stream_reads_total by cause, summed over the workers."""
    total: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=30) as http:
        for url in _urls(server):
            for line in (await http.get(f"{url}/metrics")).text.splitlines():
                if line.startswith("runlane_thread_stream_reads_total{"):
                    cause = line.split('cause="', 1)[1].split('"', 1)[0]
                    total[cause] = total.get(cause, 0.0) + float(line.rsplit(" ", 1)[1])
    return total


async def _follow(url: str, thread_id: str, into: asyncio.Queue[Any]) -> None:
    """The thread stream read from the worker at `url`, every part into `into`; None
    when it ends."""
    client = get_client(url=url, timeout=httpx.Timeout(30, read=None))
    stream: AsyncIterator[Any] = await client.threads.join_stream(thread_id)
    async for part in stream:
        await into.put(part)
    await into.put(None)


async def _run_done(parts: asyncio.Queue[Any], run_id: str) -> list[Any]:
    """The parts up to the run_done of `run_id`, within SHOWS_UP_WITHIN seconds."""
    seen: list[Any] = []
    deadline = time.monotonic() + SHOWS_UP_WITHIN
    while True:
        part = await asyncio.wait_for(parts.get(), max(deadline - time.monotonic(), 0.01))
        assert part is not None, f"the stream ended before run {run_id}: {seen}"
        seen.append(part)
        if part.event == "metadata" and part.data == {"status": "run_done", "run_id": run_id}:
            return seen


async def test_consecutive_runs_wake_the_stream_from_any_worker(server: Any) -> None:
    """Runs admitted one after another, each after the stream went idle, each on the
    next worker (the stream is served by the first): every run shows up, in order,
    long before the fallback poll could have found it; no fallback poll happens, and
    the idle stream makes no store read at all while it waits."""
    urls = _urls(server)
    async with httpx.AsyncClient(timeout=60) as http:
        tid = (await http.post(f"{urls[0]}/threads", json={})).json()["thread_id"]
        parts: asyncio.Queue[Any] = asyncio.Queue()
        before = await sse_streams(server)
        reader = asyncio.ensure_future(_follow(urls[0], tid, parts))
        try:
            await streams_opened(server, before)
            start_reads = await _reads(server)
            took = []
            for i in range(6):
                # Idle for a while first, so the stream is really waiting between runs:
                # no read of the store at all meanwhile.
                await asyncio.sleep(random.uniform(0.3, 1.0))
                idle_before = await _reads(server)
                await asyncio.sleep(random.uniform(1.0, 2.0))
                assert await _reads(server) == idle_before, "an idle thread stream read the store"
                url = urls[(i + 1) % len(urls)]  # another worker than the stream's (cluster)
                began = time.monotonic()
                created = await http.post(f"{url}/threads/{tid}/runs", json={
                    "assistant_id": "emitter", "input": {"count": 2},
                    "stream_mode": ["custom"]})
                assert created.status_code == 200, created.text
                run_id = created.json()["run_id"]
                seen = await _run_done(parts, run_id)
                took.append(time.monotonic() - began)
                assert seen[0].event == "metadata" and seen[0].data["run_id"] == run_id, seen
                assert [p.data for p in seen if p.event == "custom"] == [{"i": 0}, {"i": 1}]
            reads = await _reads(server)
            print(f"\nruns shown after (s): {[round(t, 2) for t in took]}; reads {start_reads}"
                  f" -> {reads}")
            assert reads.get("poll", 0) == start_reads.get("poll", 0), reads
            # Each run: one notified read that found it, one after it ended (and, at
            # most, a duplicate wake-up from the admitting worker and NOTIFY both).
            assert reads["notified"] - start_reads["notified"] >= 6, reads
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


async def test_deleting_the_thread_ends_the_stream_at_once(server: Any) -> None:
    """Deleted through another worker: the stream ends without waiting for the
    fallback poll (it used to notice only on one of its polls)."""
    urls = _urls(server)
    async with httpx.AsyncClient(timeout=60) as http:
        for attempt in range(3):  # randomized timings, repeated
            tid = (await http.post(f"{urls[0]}/threads", json={})).json()["thread_id"]
            parts: asyncio.Queue[Any] = asyncio.Queue()
            before = await sse_streams(server)
            reader = asyncio.ensure_future(_follow(urls[0], tid, parts))
            await streams_opened(server, before)
            await asyncio.sleep(random.uniform(0, 0.5))
            deleted = await http.delete(f"{urls[(attempt + 1) % len(urls)]}/threads/{tid}")
            assert deleted.status_code == 204, deleted.text
            await asyncio.wait_for(reader, SHOWS_UP_WITHIN)
            assert await parts.get() is None  # ended, without any event


async def test_concurrent_streams_on_many_threads_each_see_their_own_runs(server: Any) -> None:
    """Many streams wait at once on several threads (some on the same thread); runs
    admitted concurrently on all the threads through every worker: each stream sees
    exactly its thread's runs, none of the others', promptly."""
    urls = _urls(server)
    async with httpx.AsyncClient(timeout=60) as http:
        tids = [(await http.post(f"{urls[0]}/threads", json={})).json()["thread_id"]
                for _ in range(3)]
        queues = {(tid, k): asyncio.Queue() for tid in tids for k in range(2)}
        before = await sse_streams(server)
        readers = [asyncio.ensure_future(_follow(urls[k % len(urls)], tid, q))
                   for (tid, k), q in queues.items()]
        try:
            await streams_opened(server, before, count=len(readers))

            async def admit(i: int, tid: str) -> str:
                await asyncio.sleep(random.uniform(0, 0.3))
                created = await http.post(f"{urls[i % len(urls)]}/threads/{tid}/runs", json={
                    "assistant_id": "echo", "input": {"text": str(i)},
                    "multitask_strategy": "enqueue"})
                assert created.status_code == 200, created.text
                return str(created.json()["run_id"])

            admitted = await asyncio.gather(*(admit(i, tid) for tid in tids for i in range(3)))
            runs = {tid: admitted[3 * n:3 * n + 3] for n, tid in enumerate(tids)}
            for (tid, _), q in queues.items():
                done: list[str] = []
                while len(done) < len(runs[tid]):
                    part = await asyncio.wait_for(q.get(), SHOWS_UP_WITHIN)
                    assert part is not None
                    if part.event == "metadata" and part.data.get("status") == "run_done":
                        done.append(part.data["run_id"])
                assert sorted(done) == sorted(runs[tid]), (tid, done, runs)
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
