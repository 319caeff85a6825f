"""Restart recovery: SIGKILL the server mid-run, start it again on the same database.

Runs left `running` or `pending` end `error` (stop_reason `server_restarted`); a run
whose cancel was already recorded ends `interrupted`, or is rolled back; threads,
earlier runs and checkpoints survive, and no thread is left `busy`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from conftest import ServerProcess
from contract_fixtures import SERVER_FAILURES
from contract_support import (
    CONTRACT_CONFIG,
    cancel_url,
    eventually,
    get_run,
    snapshot,
    wait_final,
    wait_status,
    wait_ticks,
)


@pytest.fixture
def killable(tmp_path: Path) -> Iterator[ServerProcess]:
    """Like `fresh_server`, but also serving `linger` (a node that ignores cancellation,
    to hold a cancelled run in `running` until the kill)."""
    proc = ServerProcess(tmp_path, "--config", str(CONTRACT_CONFIG)).start()
    yield proc
    proc.stop()
    assert_no_failures(proc)


def assert_no_failures(proc: ServerProcess) -> None:
    logged = proc.log()
    failures = [line for line in logged.splitlines()
                if any(marker in line for marker in SERVER_FAILURES)]
    assert not failures, "the server logged internal failures:\n" + logged[-5000:]


async def lingering(client: Any, delay: float) -> tuple[str, dict, dict]:
    thread_id = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread_id, "linger", input={"delay": 0})
    before = await snapshot(client, thread_id)
    run = await client.runs.create(thread_id, "linger", input={"delay": delay})

    async def node_started() -> bool:
        state = await client.threads.get_state(thread_id)
        return state["next"] == ["linger"] and state["metadata"].get("run_id") == run["run_id"]

    await eventually(node_started, what="the linger node to start")
    return thread_id, run, before


async def test_kill_and_restart(killable):
    client = get_client(url=killable.url, timeout=60)
    raw = httpx.AsyncClient(base_url=killable.url, timeout=60)

    # Thread A: a finished run, then one running and one queued behind it.
    thread_a = (await client.threads.create(metadata={"name": "a"}))["thread_id"]
    done = await client.runs.create(thread_a, "sleepy", input={"steps": 2, "delay": 0})
    assert (await wait_final(client, thread_a, done["run_id"]))["status"] == "success"
    running = await client.runs.create(thread_a, "sleepy", input={"steps": 100_000, "delay": 0.02})
    await wait_ticks(client, thread_a, 4)
    queued = await client.runs.create(thread_a, "sleepy", input={"steps": 1, "delay": 0})
    assert queued["status"] == "pending"
    before_kill_a = await snapshot(client, thread_a)

    # Thread B: a run whose interrupt was recorded, still stopping when the kill lands.
    thread_b, stopping, _ = await lingering(client, delay=60)
    resp = await raw.post(cancel_url(thread_b, stopping["run_id"]), params={"wait": "0"})
    assert resp.status_code == 202 and resp.json()["status"] == "running"

    # Thread C: a run whose rollback was recorded, still stopping when the kill lands.
    thread_c, rolling, before_c = await lingering(client, delay=60)
    resp = await raw.post(cancel_url(thread_c, rolling["run_id"]),
                          params={"wait": "0", "action": "rollback"})
    assert resp.status_code == 202 and resp.json()["status"] == "running"
    assert (await client.threads.get(thread_c))["status"] == "busy"
    await raw.aclose()

    killable.kill()
    killable.start()
    client = get_client(url=killable.url, timeout=60)
    raw = httpx.AsyncClient(base_url=killable.url, timeout=60)
    try:
        # Active runs without a cancel: error, because the server restarted.
        for run in (running, queued):
            got = await client.runs.get(thread_a, run["run_id"])
            assert got["status"] == "error", got
            assert got["stop_reason"] == "server_restarted"
        # The earlier run and every checkpoint survive; the thread is free again.
        assert (await client.runs.get(thread_a, done["run_id"]))["status"] == "success"
        thread = await client.threads.get(thread_a)
        assert thread["status"] != "busy" and thread["metadata"]["name"] == "a"
        after = await snapshot(client, thread_a)
        # (The running run kept ticking until the kill: a superset, from where it was.)
        assert set(before_kill_a["history"]) <= set(after["history"])
        assert after["values"]["ticks"] >= before_kill_a["values"]["ticks"]
        # The thread takes new runs, from where it was.
        ticks = after["values"]["ticks"]
        result = await client.runs.wait(thread_a, "sleepy", input={"steps": ticks + 1, "delay": 0})
        assert result["ticks"] == ticks + 1

        # A recorded interrupt: interrupted, not error.
        got = await client.runs.get(thread_b, stopping["run_id"])
        assert got["status"] == "interrupted", got
        assert got["cancel_action"] == "interrupt" and got["stop_reason"] == "cancelled"
        assert (await client.threads.get(thread_b))["status"] != "busy"
        again = await raw.post(cancel_url(thread_b, stopping["run_id"]), params={"wait": "1"})
        assert again.status_code == 200 and again.json()["status"] == "interrupted"

        # A recorded rollback: completed at startup.
        assert await get_run(client, thread_c, rolling["run_id"]) is None
        assert await snapshot(client, thread_c) == before_c
        assert (await client.threads.get(thread_c))["status"] == "idle"
        tomb = await raw.post(cancel_url(thread_c, rolling["run_id"]), params={"wait": "0"})
        assert tomb.status_code == 202, tomb.text

        # join / wait on recovered runs answer at once.
        joined = await asyncio.wait_for(client.runs.join(thread_a, running["run_id"]), 5)
        assert joined["__error__"]["error"] == "ServerRestarted"
        parts = await asyncio.wait_for(
            _collect(client.runs.join_stream(thread_a, running["run_id"])), 5)
        assert all(p.event != "heartbeat" for p in parts)
        # And a cancel of a run that errored at restart is refused with its status.
        refused = await raw.post(cancel_url(thread_a, queued["run_id"]))
        assert refused.status_code == 409 and refused.json()["status"] == "error"
    finally:
        await raw.aclose()


async def _collect(stream: Any) -> list:
    return [p async for p in stream]


async def test_restart_keeps_threads_runs_and_history(fresh_server):
    client = get_client(url=fresh_server.url, timeout=60)
    threads = []
    for text in ("x", "y"):
        thread_id = (await client.threads.create(metadata={"text": text}))["thread_id"]
        await client.runs.wait(thread_id, "echo", input={"text": text})
        await client.runs.wait(thread_id, "echo", input={"text": text + "2"})
        threads.append((thread_id, await snapshot(client, thread_id),
                        await client.runs.list(thread_id)))
    interrupted_thread = (await client.threads.create())["thread_id"]
    long_run = await client.runs.create(interrupted_thread, "sleepy",
                                        input={"steps": 100_000, "delay": 0.02})
    await wait_status(client, interrupted_thread, long_run["run_id"], "running")
    await client.runs.cancel(interrupted_thread, long_run["run_id"], wait=True)

    fresh_server.kill()
    fresh_server.start()
    client = get_client(url=fresh_server.url, timeout=60)
    for thread_id, before, runs in threads:
        assert await snapshot(client, thread_id) == before
        assert await client.runs.list(thread_id) == runs
        thread = await client.threads.get(thread_id)
        assert thread["status"] == "idle"
        assert thread["values"] == before["values"]
    got = await client.runs.get(interrupted_thread, long_run["run_id"])
    assert got["status"] == "interrupted"
    # Nothing active is left anywhere.
    assert await client.threads.search(status="busy") == []
    assert_no_failures(fresh_server)
