"""The cancel contract's rows that need a server of their own (test_cancel_contract
has the rest): a cancel already recorded while the run is still stopping, which
needs `linger` (an async node that ignores cancellation) to hold a cancelled run in
`running`; and the bulk cancel by status, which selects runs server-wide.

This server is one SQLite process whatever the backend, so these tests run once,
not once per session server; its log is checked for internal failures as
`no_server_errors` checks the session server's. See docs/run-contract.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from conftest import ServerProcess
from contract_support import (
    ACTIONS,
    CONTRACT_CONFIG,
    assert_no_server_failures,
    cancel_url,
    eventually,
    get_run,
    snapshot,
    wait_final,
    wait_status,
)

LONG = {"steps": 100_000, "delay": 0.02}  # a sleepy run that only a cancel ends


@pytest.fixture(scope="module")
def linger_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server that also serves `linger` (an async node that ignores cancellation),
    to hold a cancelled run in `running` while duplicates arrive. Invariant 6 (no
    5xx): it logged no internal failure while this module's tests ran."""
    proc = ServerProcess(tmp_path_factory.mktemp("linger"), "--config", str(CONTRACT_CONFIG))
    proc.start()
    try:
        yield proc
        assert_no_server_failures(proc.log())
    finally:
        proc.stop()


@pytest.fixture
async def lclient(linger_server):
    return get_client(url=linger_server.url, timeout=60)


@pytest.fixture
async def lhttp(linger_server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=linger_server.url, timeout=60) as session:
        yield session


async def _gone(client: Any, thread_id: str, run_id: str) -> bool:
    return await get_run(client, thread_id, run_id) is None


# ------------------------------------------------ a cancel already recorded (still stopping)


async def lingering_run(client: Any, delay: float) -> tuple[str, dict, dict]:
    """A thread with one finished run, then a `linger` run whose node is executing."""
    thread_id = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread_id, "linger", input={"delay": 0})
    before = await snapshot(client, thread_id)
    run = await client.runs.create(thread_id, "linger", input={"delay": delay})

    async def node_started() -> bool:
        state = await client.threads.get_state(thread_id)
        return state["next"] == ["linger"] and state["metadata"].get("run_id") == run["run_id"]

    await eventually(node_started, what="the linger node to start")
    await asyncio.sleep(0.05)
    return thread_id, run, before


@pytest.mark.parametrize("first,second", [(a, b) for a in ACTIONS for b in ACTIONS])
async def test_duplicate_cancel_while_stopping(lclient, lhttp, first, second):
    thread_id, run, before = await lingering_run(lclient, delay=1.0)
    url = cancel_url(thread_id, run["run_id"])

    resp = await lhttp.post(url, params={"wait": "0", "action": first})
    assert resp.status_code == 202, resp.text
    assert resp.json()["cancel_action"] == first and resp.json()["status"] == "running"

    for wait_raw in ("0", "false"):
        dup = await lhttp.post(url, params={"wait": wait_raw, "action": second})
        assert dup.status_code == 202, dup.text
        body = dup.json()
        assert body["status"] == "running", "the run should still be stopping"
        assert body["cancel_action"] == first, "the first action wins"
        assert body["cancel_outcome"] == "already_recorded"

    final_wait = "true" if first == second else "1"
    waited = await lhttp.post(url, params={"wait": final_wait, "action": second})
    assert waited.status_code == 200, waited.text
    body = waited.json()
    assert body["cancel_action"] == first
    assert body["status"] == "interrupted"

    if first == "interrupt":
        final = await lclient.runs.get(thread_id, run["run_id"])
        assert final["status"] == "interrupted" and final["cancel_action"] == "interrupt"
        assert final["stop_reason"] == "cancelled"
    else:
        assert await get_run(lclient, thread_id, run["run_id"]) is None
        assert await snapshot(lclient, thread_id) == before
    assert (await lclient.threads.get(thread_id))["status"] == "idle"
    # And later still: accepted, unchanged.
    for action in ACTIONS:
        later = await lhttp.post(url, params={"wait": "0", "action": action})
        assert later.status_code == 202 and later.json()["cancel_action"] == first


async def test_concurrent_duplicate_cancels_all_accepted_and_stop_once(lclient, lhttp):
    thread_id, run, before = await lingering_run(lclient, delay=0.6)
    url = cancel_url(thread_id, run["run_id"])
    params = [{"wait": w, "action": a} for a in ACTIONS for w in ("0", "false", "1", "true")]
    responses = await asyncio.gather(*(lhttp.post(url, params=p) for p in params * 2))
    for p, resp in zip(params * 2, responses, strict=True):
        assert resp.status_code == (200 if p["wait"] in ("1", "true") else 202), resp.text
    winners = {r.json()["cancel_action"] for r in responses}
    assert len(winners) == 1, f"every answer must name the same first action: {winners}"
    winner = winners.pop()
    for p, resp in zip(params * 2, responses, strict=True):
        if p["wait"] in ("1", "true"):
            assert resp.json()["status"] == "interrupted"
    if winner == "interrupt":
        final = await lclient.runs.get(thread_id, run["run_id"])
        assert final["status"] == "interrupted"
    else:
        assert await get_run(lclient, thread_id, run["run_id"]) is None
        assert await snapshot(lclient, thread_id) == before


@pytest.mark.parametrize("action", ACTIONS)
async def test_cancel_recorded_before_the_last_step_returns(lclient, lhttp, action):
    """The graph's last (and only) step returns normally *after* the cancel landed:
    the executor's completion CAS fails and the run ends interrupted / rolled back."""
    thread_id, run, before = await lingering_run(lclient, delay=0.4)
    resp = await lhttp.post(cancel_url(thread_id, run["run_id"]),
                            params={"wait": "0", "action": action})
    assert resp.status_code == 202 and resp.json()["status"] == "running"
    final = await wait_final(lclient, thread_id, run["run_id"])
    if action == "interrupt":
        assert final is not None and final["status"] == "interrupted", final
        assert final["stop_reason"] == "cancelled"
        # The step did return and its checkpoint was kept (interrupt keeps progress).
        state = await lclient.threads.get_state(thread_id)
        assert state["values"]["ticks"] == before["values"]["ticks"] + 1
    else:
        assert final is None
        assert await snapshot(lclient, thread_id) == before


async def test_cancel_stubborn_sync_node_ends_promptly(lclient, lhttp):
    """A synchronous node cannot be interrupted mid-call; the run still ends
    interrupted within the grace, and the thread is usable again."""
    thread_id = (await lclient.threads.create())["thread_id"]
    run = await lclient.runs.create(thread_id, "stubborn", input={"delay": 1.0})
    await wait_status(lclient, thread_id, run["run_id"], "running")
    await asyncio.sleep(0.1)
    body = await lclient.runs.cancel(thread_id, run["run_id"], wait=True)
    assert body["status"] == "interrupted"
    nxt = await lclient.runs.wait(thread_id, "stubborn", input={"delay": 0})
    assert nxt["ticks"] >= 1


async def test_wait_true_client_gone_the_cancel_stands(lclient, lhttp):
    """wait=true blocks until the run is terminal; a client that stops waiting does
    not take its cancel back."""
    thread_id, run, _ = await lingering_run(lclient, delay=0.6)
    with pytest.raises(httpx.TimeoutException):
        await lhttp.post(cancel_url(thread_id, run["run_id"]), params={"wait": "1"},
                         timeout=0.2)
    final = await wait_final(lclient, thread_id, run["run_id"])
    assert final is not None and final["status"] == "interrupted"
    assert final["cancel_reason"] == "user"


# ------------------------------------------------------------------- bulk cancel


async def test_bulk_cancel_by_status(lclient):
    """Status selects runs server-wide: done on the module's own (linger) server, where
    nothing else is active at this point."""
    client = lclient
    thread_x = (await client.threads.create())["thread_id"]
    thread_y = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread_x, "sleepy", input={"steps": 1, "delay": 0})
    before_x = await snapshot(client, thread_x)
    before_y = await snapshot(client, thread_y)
    run_x = await client.runs.create(thread_x, "sleepy", input=LONG)
    run_y = await client.runs.create(thread_y, "sleepy", input=LONG)
    await wait_status(client, thread_x, run_x["run_id"], "running")
    await wait_status(client, thread_y, run_y["run_id"], "running")
    pending_x = await client.runs.create(thread_x, "sleepy", input={"steps": 1, "delay": 0})

    await client.runs.cancel_many(status="pending")
    assert (await client.runs.get(thread_x, pending_x["run_id"]))["status"] == "interrupted"
    for thread_id, run in ((thread_x, run_x), (thread_y, run_y)):
        current = await client.runs.get(thread_id, run["run_id"])
        assert current["status"] == "running" and current["cancel_action"] is None

    await client.runs.cancel_many(status="running", action="rollback")
    for thread_id, run, before in ((thread_x, run_x, before_x), (thread_y, run_y, before_y)):
        await eventually(lambda t=thread_id, r=run: _gone(client, t, r["run_id"]),
                         what="status bulk rollback to remove the run")
        assert await snapshot(client, thread_id) == before
        assert (await client.threads.get(thread_id))["status"] == "idle"
    # The interrupted pending run was not running: untouched by the second call.
    assert (await client.runs.get(thread_x, pending_x["run_id"]))["status"] == "interrupted"
