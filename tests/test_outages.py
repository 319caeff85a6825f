"""PostgreSQL and Redis restarting under load: requests fail with a clear 503 (never a
500) while a service is down, the workers recover by themselves, and no run is lost
or left `running`.

The services restarted are private instances of the machine's PostgreSQL and Redis
(tests/private_services.py), so nothing else is disturbed."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cluster import Cluster
from private_services import PrivatePostgres, PrivateRedis, missing_binaries

pytestmark = [pytest.mark.scaleout, pytest.mark.outage]

LEASE = 2.0


@pytest.fixture(scope="module")
def services() -> Iterator[tuple[PrivatePostgres, PrivateRedis]]:
    missing = missing_binaries()
    if missing:
        message = f"outage tests need {', '.join(missing)}"
        if os.environ.get("RUNLANE_REQUIRE_SERVICES"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    postgres = PrivatePostgres().start()
    redis = PrivateRedis().start()
    yield postgres, redis
    redis.stop()
    postgres.stop()


def _deployment(services: tuple[PrivatePostgres, PrivateRedis],
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    postgres, redis = services
    deployment = Cluster(Path(tmp_path_factory.mktemp("outage")), 2,
                         "--lease-seconds", str(LEASE), admin_url=postgres.url,
                         redis_url=redis.url)
    deployment.start()
    yield deployment
    deployment.close()


@pytest.fixture(scope="module")
def cluster(services: tuple[PrivatePostgres, PrivateRedis],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from _deployment(services, tmp_path_factory)


@pytest.fixture
def fresh_cluster(services: tuple[PrivatePostgres, PrivateRedis],
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Workers that have seen no outage yet: each retry loop's first failure is then
    this test's (the module's shared workers may still be backing off from the
    previous test's outage, which their log already reported)."""
    yield from _deployment(services, tmp_path_factory)


async def _load(urls: list[str], stop: asyncio.Event, codes: dict[int, int],
                runs: list[tuple[str, str]]) -> None:
    """Keep creating short runs through every worker, and reading their threads' state,
    until told to stop."""
    async with httpx.AsyncClient(timeout=10) as http:
        i = 0
        while not stop.is_set():
            base = urls[i % len(urls)]
            i += 1
            try:
                thread = await http.post(f"{base}/threads", json={})
                codes[thread.status_code] = codes.get(thread.status_code, 0) + 1
                if thread.status_code != 200:
                    await asyncio.sleep(0.05)
                    continue
                tid = thread.json()["thread_id"]
                run = await http.post(f"{base}/threads/{tid}/runs",
                                      json={"assistant_id": "sleepy",
                                            "input": {"steps": 5, "delay": 0.05}})
                codes[run.status_code] = codes.get(run.status_code, 0) + 1
                if run.status_code == 200:
                    runs.append((tid, run.json()["run_id"]))
                # A read through the checkpointer's own pool: a connection the restart
                # cut must be replaced, never answered as a 500 (found by `make soak`).
                state = await http.get(f"{base}/threads/{tid}/state")
                codes[state.status_code] = codes.get(state.status_code, 0) + 1
            except httpx.TransportError:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.01)


async def _all_terminal(urls: list[str], runs: list[tuple[str, str]], bound: float) -> dict:
    deadline = time.monotonic() + bound
    statuses: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=10) as http:
        pending = list(runs)
        while pending and time.monotonic() < deadline:
            still = []
            for tid, rid in pending:
                try:
                    answer = await http.get(f"{urls[0]}/threads/{tid}/runs/{rid}")
                except httpx.TransportError:
                    still.append((tid, rid))
                    continue
                if answer.status_code == 200 and answer.json()["status"] in (
                        "pending", "running"):
                    still.append((tid, rid))
                elif answer.status_code == 200:
                    statuses[rid] = answer.json()["status"]
                elif answer.status_code == 503:
                    still.append((tid, rid))
                else:
                    statuses[rid] = f"http {answer.status_code}"
            pending = still
            if pending:
                await asyncio.sleep(0.2)
    assert not pending, f"{len(pending)} runs never finished: {pending[:5]}"
    return statuses


@pytest.mark.parametrize("service", ["postgres", "redis"])
async def test_service_restart_under_load(cluster: Cluster, services, service: str) -> None:
    postgres, redis = services
    restart = postgres.restart if service == "postgres" else redis.restart
    stop = asyncio.Event()
    codes: dict[int, int] = {}
    runs: list[tuple[str, str]] = []
    load = asyncio.create_task(_load(cluster.urls, stop, codes, runs))
    await asyncio.sleep(1.5)
    await asyncio.to_thread(restart)
    await asyncio.sleep(3.0)  # keep the load on while the workers recover
    stop.set()
    await load
    print(f"[outage {service}] answers {codes}, runs {len(runs)}")
    assert 500 not in codes, f"a 500 during the outage: {codes}"
    assert set(codes) <= {200, 503}, codes
    statuses = await _all_terminal(cluster.urls, runs, bound=LEASE * 3 + 30)
    assert runs, "no run was created"
    assert all(s in ("success", "error", "interrupted") for s in statuses.values()), statuses
    # Recovered: a fresh run through every worker succeeds.
    async with httpx.AsyncClient(timeout=30) as http:
        for base in cluster.urls:
            tid = (await http.post(f"{base}/threads", json={})).json()["thread_id"]
            result = await http.post(f"{base}/threads/{tid}/runs/wait",
                                     json={"assistant_id": "sleepy", "input": {"steps": 1}})
            assert result.status_code == 200, result.text
    assert "unexpected error" not in cluster.log()  # what the 500 handler logs


async def test_thread_reads_right_after_a_postgres_restart(cluster: Cluster, services) -> None:
    """The checkpointer's pooled connections, cut by the restart, are replaced at their
    next use: the state and history reads on every worker right after PostgreSQL is
    back never answer 500 (AdminShutdown; found by `make soak`). A 503 (the store's
    own connection, cut too, is replaced after it) is retried, as a client does."""
    postgres, _ = services
    async with httpx.AsyncClient(timeout=60) as http:
        threads = []
        for base in cluster.urls:  # every worker's checkpointer pool holds a connection
            tid = (await http.post(f"{base}/threads", json={})).json()["thread_id"]
            done = await http.post(f"{base}/threads/{tid}/runs/wait",
                                   json={"assistant_id": "sleepy", "input": {"steps": 1}})
            assert done.status_code == 200, done.text
            threads.append(tid)
        await asyncio.to_thread(postgres.restart)
        answers: list[tuple[int, str]] = []
        for base, tid in zip(cluster.urls, threads, strict=True):
            for _ in range(20):
                state = await http.get(f"{base}/threads/{tid}/state")
                history = await http.post(f"{base}/threads/{tid}/history", json={"limit": 10})
                answers += [(state.status_code, state.text), (history.status_code, history.text)]
                if state.status_code == history.status_code == 200:
                    break
                await asyncio.sleep(0.2)
        assert not [a for a in answers if a[0] not in (200, 503)], answers
        assert answers[-1][0] == 200, answers


async def test_thread_reads_while_postgres_is_down_answer_503(cluster: Cluster, services) -> None:
    """While PostgreSQL is down, a state or history read (the checkpointer's, not the
    store's) answers 503 with Retry-After, never 500 with the driver's OperationalError
    (found by `make soak`)."""
    postgres, _ = services
    async with httpx.AsyncClient(timeout=60) as http:
        base = cluster.urls[0]
        tid = (await http.post(f"{base}/threads", json={})).json()["thread_id"]
        done = await http.post(f"{base}/threads/{tid}/runs/wait",
                               json={"assistant_id": "sleepy", "input": {"steps": 1}})
        assert done.status_code == 200, done.text
        outage = asyncio.create_task(asyncio.to_thread(postgres.restart, 4.0))
        # A read every 0.1 s through the whole outage, each on its own (a read may wait
        # for the pool until PostgreSQL is back, and then answer 200: that is fine).
        reads = []
        while not outage.done():
            reads.append(asyncio.create_task(http.get(f"{base}/threads/{tid}/state")))
            reads.append(asyncio.create_task(
                http.post(f"{base}/threads/{tid}/history", json={"limit": 10})))
            await asyncio.sleep(0.1)
        await outage
        answers = [(r.status_code, r.text) for r in await asyncio.gather(*reads)]
        assert len(answers) > 40, len(answers)  # reads were made while it was down
        assert not [a for a in answers if a[0] not in (200, 503)], answers


async def test_a_stream_joined_while_redis_is_down_is_cut_not_ended(
        cluster: Cluster, services) -> None:
    """A join of a finished run's stream while Redis is down (its events are there)
    must not end cleanly with nothing: a client (langgraph_sdk) takes a clean end of a
    finished run's stream as all there is, and would lose every event after its
    Last-Event-ID. The response is cut instead, so the client resumes later (found by
    `make soak`)."""
    _, redis = services
    async with httpx.AsyncClient(timeout=60) as http:
        base = cluster.urls[0]
        tid = (await http.post(f"{base}/threads", json={})).json()["thread_id"]
        done = await http.post(f"{base}/threads/{tid}/runs/wait",
                               json={"assistant_id": "sleepy", "stream_resumable": True,
                                     "input": {"steps": 3, "delay": 0.01}})
        assert done.status_code == 200, done.text
        rid = (await http.get(f"{base}/threads/{tid}/runs")).json()[0]["run_id"]
        await asyncio.to_thread(redis.stop)
        try:
            for url in cluster.urls:
                events: list[str] = []
                cut = False
                try:
                    async with http.stream("GET", f"{url}/threads/{tid}/runs/{rid}/stream",
                                           headers={"Last-Event-ID": "1"}) as resp:
                        async for line in resp.aiter_lines():
                            if line.startswith("id:"):
                                events.append(line)
                except httpx.RemoteProtocolError:
                    cut = True
                assert cut or events, f"{url}: the stream ended cleanly with no event"
        finally:
            await asyncio.to_thread(redis.start)


def _cpu_seconds(pid: int) -> float:
    """The process's CPU time so far (user + system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


DOWN = 20.0  # seconds PostgreSQL stays down


async def test_a_worker_whose_postgres_is_gone_backs_off_then_serves_again(
        fresh_cluster: Cluster, services) -> None:
    """A worker left without its database must not spin: a soak left one behind whose
    PostgreSQL was gone, using most of a core for an hour. Every retry loop backs off
    (runlane/backoff.py). A resource bound, not a latency one: over DOWN seconds with
    PostgreSQL stopped, each worker's CPU time grows by less than a fifth of that.
    Each loop logs the outage once, not once per attempt. Then PostgreSQL comes back
    and every worker serves runs again."""
    postgres, _ = services
    async with httpx.AsyncClient(timeout=60) as http:
        for base in fresh_cluster.urls:  # a run in flight on each worker when it goes
            tid = (await http.post(f"{base}/threads", json={})).json()["thread_id"]
            started = await http.post(f"{base}/threads/{tid}/runs", json={
                "assistant_id": "sleepy", "input": {"steps": 100, "delay": 0.1}})
            assert started.status_code == 200, started.text
    logged = [len(w.log()) for w in fresh_cluster.workers]
    pids = [w.proc.pid for w in fresh_cluster.workers if w.proc is not None]
    await asyncio.to_thread(postgres._ctl, "stop", "-m", "fast")
    try:
        await asyncio.sleep(2.0)  # the outage's first moments: runs stopping, first errors
        before = [_cpu_seconds(pid) for pid in pids]
        await asyncio.sleep(DOWN)
        used = [_cpu_seconds(pid) - b for pid, b in zip(pids, before, strict=True)]
        during = [w.log()[offset:] for w, offset in zip(fresh_cluster.workers, logged, strict=True)]
    finally:
        await asyncio.to_thread(postgres.start)
    print(f"[outage] CPU seconds per worker over {DOWN:g}s without PostgreSQL: {used}")
    assert all(u < DOWN / 5 for u in used), used
    for text in during:
        assert text.count("claiming runs failed (") == 1, text[-3000:]
        assert text.count("the LISTEN connection failed (") == 1, text[-3000:]
    # Back: every worker serves (503s while its connections come back are retried).
    async with httpx.AsyncClient(timeout=60) as http:
        for base in fresh_cluster.urls:
            deadline = time.monotonic() + 90
            while True:
                answer = await http.post(f"{base}/threads", json={})
                if answer.status_code == 200:
                    tid = answer.json()["thread_id"]
                    answer = await http.post(f"{base}/threads/{tid}/runs/wait", json={
                        "assistant_id": "sleepy", "input": {"steps": 1}})
                    if answer.status_code == 200:
                        break
                assert answer.status_code == 503 and time.monotonic() < deadline, (
                    answer.status_code, answer.text)
                await asyncio.sleep(0.5)
