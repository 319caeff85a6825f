"""Restart recovery: SIGKILL the server mid-run, start it again on the same database.

Runs left `running` or `pending` end `error` (stop_reason `server_restarted`); a run
whose cancel was already recorded ends `interrupted`, or is rolled back; threads,
earlier runs and checkpoints survive, and no thread is left `busy`.

One server is set up with every case at once, killed, and restarted (server starts
are the slow part); each test then checks one promise about the restarted server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from conftest import ServerProcess
from contract_support import (
    CONTRACT_CONFIG,
    assert_no_server_failures,
    cancel_url,
    eventually,
    get_run,
    snapshot,
    wait_final,
    wait_status,
    wait_ticks,
)

LONG = {"steps": 100_000, "delay": 0.02}


async def lingering(client: Any, delay: float) -> tuple[str, dict, dict]:
    """A thread with a finished run, then a `linger` run (a node that ignores
    cancellation) whose node is executing."""
    thread_id = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread_id, "linger", input={"delay": 0})
    before = await snapshot(client, thread_id)
    run = await client.runs.create(thread_id, "linger", input={"delay": delay})

    async def node_started() -> bool:
        state = await client.threads.get_state(thread_id)
        return state["next"] == ["linger"] and state["metadata"].get("run_id") == run["run_id"]

    await eventually(node_started, what="the linger node to start")
    return thread_id, run, before


@pytest.fixture(scope="module")
async def restarted(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, Any]]:
    proc = ServerProcess(tmp_path_factory.mktemp("restart"), "--config", str(CONTRACT_CONFIG))
    proc.start()
    try:
        client = get_client(url=proc.url, timeout=60)
        raw = httpx.AsyncClient(base_url=proc.url, timeout=60)
        case: dict[str, Any] = {"server": proc}

        # Thread A: a finished run, then one running and one queued behind it.
        thread_a = (await client.threads.create(metadata={"name": "a"}))["thread_id"]
        done = await client.runs.create(thread_a, "sleepy", input={"steps": 2, "delay": 0})
        assert (await wait_final(client, thread_a, done["run_id"]))["status"] == "success"
        history_a = await snapshot(client, thread_a)
        running = await client.runs.create(thread_a, "sleepy", input=LONG)
        await wait_ticks(client, thread_a, 4)
        queued = await client.runs.create(thread_a, "sleepy", input={"steps": 1, "delay": 0})
        assert queued["status"] == "pending"
        case["a"] = {"thread_id": thread_a, "done": done, "running": running, "queued": queued,
                     "before_run": history_a, "before_kill": await snapshot(client, thread_a)}

        # Thread B: a run whose interrupt was recorded, still stopping at the kill.
        thread_b, stopping, _ = await lingering(client, delay=60)
        resp = await raw.post(cancel_url(thread_b, stopping["run_id"]), params={"wait": "0"})
        assert resp.status_code == 202 and resp.json()["status"] == "running"
        case["b"] = {"thread_id": thread_b, "run": stopping}

        # Thread C: a run whose rollback was recorded, still stopping at the kill.
        thread_c, rolling, before_c = await lingering(client, delay=60)
        resp = await raw.post(cancel_url(thread_c, rolling["run_id"]),
                              params={"wait": "0", "action": "rollback"})
        assert resp.status_code == 202 and resp.json()["status"] == "running"
        assert (await client.threads.get(thread_c))["status"] == "busy"
        case["c"] = {"thread_id": thread_c, "run": rolling, "before": before_c}

        # Threads D: finished runs only; and E: a run interrupted before the kill.
        finished = []
        for text in ("x", "y"):
            thread_id = (await client.threads.create(metadata={"text": text}))["thread_id"]
            await client.runs.wait(thread_id, "echo", input={"text": text})
            await client.runs.wait(thread_id, "echo", input={"text": text + "2"})
            finished.append({"thread_id": thread_id, "snapshot": await snapshot(client, thread_id),
                             "runs": await client.runs.list(thread_id),
                             "thread": await client.threads.get(thread_id)})
        case["d"] = finished
        thread_e = (await client.threads.create())["thread_id"]
        stopped = await client.runs.create(thread_e, "sleepy", input=LONG)
        await wait_status(client, thread_e, stopped["run_id"], "running")
        await client.runs.cancel(thread_e, stopped["run_id"], wait=True)
        case["e"] = {"thread_id": thread_e, "run": stopped}
        await raw.aclose()

        proc.kill()
        proc.start()
        yield case
    finally:
        proc.stop()


@pytest.fixture
async def rclient(restarted):
    return get_client(url=restarted["server"].url, timeout=60)


@pytest.fixture
async def rhttp(restarted) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=restarted["server"].url, timeout=60) as session:
        yield session


async def test_active_runs_end_error_server_restarted(restarted, rclient):
    a = restarted["a"]
    for run in (a["running"], a["queued"]):
        got = await rclient.runs.get(a["thread_id"], run["run_id"])
        assert got["status"] == "error", got
        assert got["stop_reason"] == "server_restarted"
        assert got["error"]["error"] == "ServerRestarted"


async def test_earlier_runs_threads_and_checkpoints_survive(restarted, rclient):
    a = restarted["a"]
    got = await rclient.runs.get(a["thread_id"], a["done"]["run_id"])
    assert got["status"] == "success"
    thread = await rclient.threads.get(a["thread_id"])
    assert thread["metadata"]["name"] == "a"
    after = await snapshot(rclient, a["thread_id"])
    # Every checkpoint from before the kill is still there (the running run kept
    # ticking until the kill, so there may be a few more than in the snapshot).
    assert set(a["before_kill"]["history"]) <= set(after["history"])
    assert after["history"][-len(a["before_run"]["history"]):] == a["before_run"]["history"]
    assert after["values"]["ticks"] >= a["before_kill"]["values"]["ticks"]
    for d in restarted["d"]:
        assert await snapshot(rclient, d["thread_id"]) == d["snapshot"]
        assert await rclient.runs.list(d["thread_id"]) == d["runs"]
        assert await rclient.threads.get(d["thread_id"]) == d["thread"]
    e = restarted["e"]
    got = await rclient.runs.get(e["thread_id"], e["run"]["run_id"])
    assert got["status"] == "interrupted" and got["stop_reason"] == "cancelled"


async def test_recorded_interrupt_ends_interrupted(restarted, rclient, rhttp):
    b = restarted["b"]
    got = await rclient.runs.get(b["thread_id"], b["run"]["run_id"])
    assert got["status"] == "interrupted", got
    assert got["cancel_action"] == "interrupt" and got["stop_reason"] == "cancelled"
    again = await rhttp.post(cancel_url(b["thread_id"], b["run"]["run_id"]),
                             params={"wait": "1", "action": "rollback"})
    assert again.status_code == 200 and again.json()["status"] == "interrupted"
    assert again.json()["cancel_action"] == "interrupt"


async def test_recorded_rollback_is_completed(restarted, rclient, rhttp):
    c = restarted["c"]
    assert await get_run(rclient, c["thread_id"], c["run"]["run_id"]) is None
    assert await snapshot(rclient, c["thread_id"]) == c["before"]
    tomb = await rhttp.post(cancel_url(c["thread_id"], c["run"]["run_id"]), params={"wait": "0"})
    assert tomb.status_code == 202, tomb.text
    assert tomb.json()["cancel_action"] == "rollback"


async def test_no_thread_left_busy(restarted, rclient):
    assert await rclient.threads.search(status="busy") == []
    for key in ("a", "b", "c", "e"):
        thread = await rclient.threads.get(restarted[key]["thread_id"])
        assert thread["status"] == "idle", (key, thread)


async def test_recovered_runs_answer_join_stream_and_cancel_at_once(restarted, rclient, rhttp):
    a = restarted["a"]
    thread_id, run_id = a["thread_id"], a["running"]["run_id"]
    joined = await asyncio.wait_for(rclient.runs.join(thread_id, run_id), 5)
    assert joined["__error__"]["error"] == "ServerRestarted"
    parts = await asyncio.wait_for(_collect(rclient.runs.join_stream(thread_id, run_id)), 5)
    assert all(p.event != "heartbeat" for p in parts)
    refused = await rhttp.post(cancel_url(thread_id, a["queued"]["run_id"]))
    assert refused.status_code == 409 and refused.json()["status"] == "error"


async def test_threads_take_new_runs_after_restart(restarted, rclient):
    a = restarted["a"]
    ticks = (await rclient.threads.get_state(a["thread_id"]))["values"]["ticks"]
    result = await rclient.runs.wait(a["thread_id"], "sleepy",
                                     input={"steps": ticks + 1, "delay": 0})
    assert result["ticks"] == ticks + 1  # continued from the last checkpoint
    for key in ("b", "c"):
        result = await rclient.runs.wait(restarted[key]["thread_id"], "linger",
                                         input={"delay": 0})
        assert result["ticks"] >= 1


async def test_no_internal_failures_logged(restarted, rclient):
    assert_no_server_failures(restarted["server"].log())


async def _collect(stream: Any) -> list:
    return [p async for p in stream]
