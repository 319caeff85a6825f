"""join (`GET .../join`) and wait (`POST .../runs/wait`, stateful and stateless):
they answer once the run is over, with the thread's values, an `__error__` for a
failed run, and the state the run stopped at for a cancelled one."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from contract_support import snapshot, wait_final, wait_status, wait_ticks

pytest_plugins = ("contract_fixtures",)
pytestmark = pytest.mark.usefixtures("no_server_errors")

LONG = {"steps": 100_000, "delay": 0.02}


async def test_wait_stateful(client, new_thread):
    thread_id = await new_thread()
    assert await client.runs.wait(thread_id, "echo", input={"text": "a"}) == {
        "text": "a", "echoed": ["a"]}
    # The thread keeps its state: a second run adds to it.
    assert (await client.runs.wait(thread_id, "echo", input={"text": "b"}))["echoed"] == ["a", "b"]
    runs = await client.runs.list(thread_id)
    assert [r["status"] for r in runs] == ["success", "success"]
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_wait_stateless(client):
    assert await client.runs.wait(None, "echo", input={"text": "solo"}) == {
        "text": "solo", "echoed": ["solo"]}
    result = await client.runs.wait(None, "sleepy", input={"steps": 3, "delay": 0.01})
    assert result["ticks"] == 3


async def test_wait_errored(client, new_thread):
    thread_id = await new_thread()
    with pytest.raises(Exception, match="ValueError: boom"):
        await client.runs.wait(thread_id, "failing", input={"x": 1})
    result = await client.runs.wait(thread_id, "failing", input={"x": 1}, raise_error=False)
    assert result["__error__"]["error"] == "ValueError"
    assert "boom" in result["__error__"]["message"]
    runs = await client.runs.list(thread_id)
    assert [r["status"] for r in runs] == ["error", "error"]
    assert all(r["stop_reason"] == "graph_error" for r in runs)
    assert (await client.threads.get(thread_id))["status"] == "error"


async def test_wait_stateless_errored(client):
    result = await client.runs.wait(None, "failing", input={"x": 1}, raise_error=False)
    assert result["__error__"]["error"] == "ValueError"


async def test_wait_for_a_run_that_gets_cancelled(client, new_thread):
    """A wait blocked on a run answers when someone else cancels it, with the state
    the run stopped at (not an error)."""
    thread_id = await new_thread()
    waiter = asyncio.ensure_future(client.runs.wait(thread_id, "sleepy", input=LONG))
    state = await wait_ticks(client, thread_id, 3)
    run = (await client.runs.list(thread_id))[0]
    await client.runs.cancel(thread_id, run["run_id"])
    result = await asyncio.wait_for(waiter, 10)
    assert "__error__" not in result
    assert result["ticks"] >= state["values"]["ticks"]
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "interrupted"


async def test_join_success(client, new_thread):
    thread_id = await new_thread()
    run = await client.runs.create(thread_id, "sleepy", input={"steps": 3, "delay": 0.05})
    result = await client.runs.join(thread_id, run["run_id"])
    assert result["ticks"] == 3
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "success"
    # Joining again, long after the end, answers the same at once.
    again = await asyncio.wait_for(client.runs.join(thread_id, run["run_id"]), 5)
    assert again == result


async def test_join_errored(client, new_thread):
    thread_id = await new_thread()
    run = await client.runs.create(thread_id, "failing", input={"x": 1})
    result = await client.runs.join(thread_id, run["run_id"])
    assert result["__error__"]["error"] == "ValueError"
    assert "boom" in result["__error__"]["message"]


@pytest.mark.parametrize("action", ["interrupt", "rollback"])
async def test_join_cancelled(client, new_thread, action):
    thread_id = await new_thread()
    await client.runs.wait(thread_id, "sleepy", input={"steps": 1, "delay": 0})
    before = await snapshot(client, thread_id)
    run = await client.runs.create(thread_id, "sleepy", input=LONG)
    await wait_ticks(client, thread_id, 3)
    joiner = asyncio.ensure_future(client.runs.join(thread_id, run["run_id"]))
    await asyncio.sleep(0.05)
    assert not joiner.done()
    await client.runs.cancel(thread_id, run["run_id"], action=action)
    result = await asyncio.wait_for(joiner, 10)
    assert "__error__" not in result
    state = await client.threads.get_state(thread_id)
    assert result == state["values"]
    if action == "rollback":
        assert result == before["values"]
        # Joining the rolled-back run later still answers (its tombstone remains).
        assert await client.runs.join(thread_id, run["run_id"]) == before["values"]
    else:
        assert result["ticks"] >= 3


async def test_join_pending_run_cancelled_before_it_started(client, new_thread):
    thread_id = await new_thread()
    blocker = await client.runs.create(thread_id, "sleepy", input=LONG)
    await wait_status(client, thread_id, blocker["run_id"], "running")
    queued = await client.runs.create(thread_id, "sleepy", input={"steps": 1})
    joiner = asyncio.ensure_future(client.runs.join(thread_id, queued["run_id"]))
    await asyncio.sleep(0.05)
    await client.runs.cancel(thread_id, queued["run_id"])
    result = await asyncio.wait_for(joiner, 10)
    assert isinstance(result, dict) and "__error__" not in result
    await client.runs.cancel(thread_id, blocker["run_id"], wait=True)


async def test_join_unknown_run_is_404(client, new_thread):
    thread_id = await new_thread()
    with pytest.raises(httpx.HTTPStatusError) as info:
        await client.runs.join(thread_id, "00000000-0000-4000-8000-000000000000")
    assert info.value.response.status_code == 404


async def test_wait_headers(ahttp, new_thread):
    thread_id = await new_thread()
    resp = await ahttp.post(f"/threads/{thread_id}/runs/wait",
                            json={"assistant_id": "echo", "input": {"text": "h"}})
    assert resp.status_code == 200
    assert resp.json() == {"text": "h", "echoed": ["h"]}
    location = resp.headers["location"]
    assert location.startswith(f"/threads/{thread_id}/runs/") and location.endswith("/join")
    run_id = location.split("/")[-2]
    assert resp.headers["content-location"] == f"/threads/{thread_id}/runs/{run_id}"
    # The Location answers the same result.
    again = await ahttp.get(location)
    assert again.status_code == 200 and again.json() == resp.json()
    final = await wait_final_raw(ahttp, thread_id, run_id)
    assert final["status"] == "success"


async def wait_final_raw(ahttp: httpx.AsyncClient, thread_id: str, run_id: str) -> dict:
    resp = await ahttp.get(f"/threads/{thread_id}/runs/{run_id}")
    assert resp.status_code == 200
    return resp.json()


async def test_join_of_stateless_run(client):
    """A stateless run kept after completion (on_completion=keep) can be joined later."""
    run = await client.runs.create(None, "sleepy", input={"steps": 2, "delay": 0.05},
                                   on_completion="keep")
    final = await wait_final(client, run["thread_id"], run["run_id"])
    assert final is not None and final["status"] == "success"
    assert (await client.runs.join(run["thread_id"], run["run_id"]))["ticks"] == 2
