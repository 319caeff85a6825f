"""The contract's cancel table, row by row, against a real server.

`POST /threads/{thread_id}/runs/{run_id}/cancel?wait=&action=` for both actions and
every spelling of `wait` (the SDK sends 1/0; true/false are checked raw), with the
bodies and the final outcome of each row; then the bulk `POST /runs/cancel`.
The rows that need a server of their own (a cancel landing while the run is still
stopping, the bulk cancel by status) are in test_cancel_contract_linger.
See docs/run-contract.md.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from contract_support import (
    ACTIONS,
    WAIT_SPELLINGS,
    cancel_url,
    eventually,
    get_run,
    history_run_ids,
    snapshot,
    wait_final,
    wait_status,
    wait_ticks,
)

pytest_plugins = ("contract_fixtures",)
pytestmark = pytest.mark.usefixtures("no_server_errors")

LONG = {"steps": 100_000, "delay": 0.02}  # a sleepy run that only a cancel ends


def accepted_code(wait: bool) -> int:
    return 200 if wait else 202


async def busy_thread(client: Any, new_thread: Any) -> tuple[str, dict, dict]:
    """A thread with one finished run (history to protect) and a long run that has
    written checkpoints of its own: (thread_id, the running run, snapshot before it)."""
    thread_id = await new_thread()
    await client.runs.wait(thread_id, "sleepy", input={"steps": 2, "delay": 0})
    before = await snapshot(client, thread_id)
    run = await client.runs.create(thread_id, "sleepy", input=LONG)
    await wait_ticks(client, thread_id, 4)
    return thread_id, run, before


async def assert_rolled_back(client: Any, ahttp: httpx.AsyncClient, thread_id: str,
                             run_id: str, before: dict) -> None:
    """Removed, its tombstone answers 202, the thread exactly as before it, and idle."""
    assert await get_run(client, thread_id, run_id) is None
    assert run_id not in [r["run_id"] for r in await client.runs.list(thread_id, limit=100)]
    assert await snapshot(client, thread_id) == before
    assert run_id not in await history_run_ids(client, thread_id)
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "idle", thread
    again = await ahttp.post(cancel_url(thread_id, run_id), params={"wait": "0"})
    assert again.status_code == 202, again.text


# --------------------------------------------------------------- pending / running


@pytest.fixture(scope="module")
async def never_started(server) -> AsyncIterator[list[tuple[Any, str, str, str]]]:
    """The cancelled pending runs of test_cancel_pending_run, (client, action, thread_id,
    run_id), each on a thread that was then freed: checked once, after the module's
    tests (one wait for all of them), none must ever have started. One list per
    session server: hence `server`, unused otherwise."""
    cancelled: list[tuple[Any, str, str, str]] = []
    yield cancelled
    await asyncio.sleep(0.2)
    for client, action, thread_id, run_id in cancelled:
        again = await get_run(client, thread_id, run_id)
        if action == "interrupt":
            assert again is not None and again["status"] == "interrupted", (run_id, again)
        else:
            assert again is None, (run_id, again)
        assert run_id not in await history_run_ids(client, thread_id)
        assert (await client.threads.get(thread_id))["status"] == "idle", thread_id


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("wait_raw,wait", WAIT_SPELLINGS)
async def test_cancel_pending_run(client, ahttp, new_thread, never_started, action, wait_raw,
                                  wait):
    thread_id = await new_thread()
    blocker = await client.runs.create(thread_id, "sleepy", input=LONG)
    await wait_status(client, thread_id, blocker["run_id"], "running")
    queued = await client.runs.create(thread_id, "sleepy", input={"steps": 1, "delay": 0},
                                      multitask_strategy="enqueue")
    assert queued["status"] == "pending"

    resp = await ahttp.post(cancel_url(thread_id, queued["run_id"]),
                            params={"wait": wait_raw, "action": action})
    assert resp.status_code == accepted_code(wait), resp.text
    body = resp.json()
    assert body["run_id"] == queued["run_id"] and body["thread_id"] == thread_id
    assert body["cancel_action"] == action
    # A pending run stops at the instant the cancel lands: already final in the body.
    assert body["status"] == "interrupted", body

    # The run on the thread is untouched.
    running = await client.runs.get(thread_id, blocker["run_id"])
    assert running["status"] == "running" and running["cancel_action"] is None

    if action == "interrupt":
        final = await client.runs.get(thread_id, queued["run_id"])
        assert final["status"] == "interrupted"
        assert final["stop_reason"] == "cancelled" and final["cancel_reason"] == "user"
    else:
        assert await get_run(client, thread_id, queued["run_id"]) is None

    # Free the thread: the cancelled run must never start (`never_started` checks).
    done = await client.runs.cancel(thread_id, blocker["run_id"], wait=True)
    assert done["status"] == "interrupted"
    never_started.append((client, action, thread_id, queued["run_id"]))


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("wait_raw,wait", WAIT_SPELLINGS)
async def test_cancel_running_run(client, ahttp, new_thread, action, wait_raw, wait):
    thread_id, run, before = await busy_thread(client, new_thread)
    run_id = run["run_id"]

    resp = await ahttp.post(cancel_url(thread_id, run_id),
                            params={"wait": wait_raw, "action": action})
    assert resp.status_code == accepted_code(wait), resp.text
    body = resp.json()
    assert body["run_id"] == run_id and body["thread_id"] == thread_id
    assert body["cancel_action"] == action
    if wait:
        # wait=true answers once the run is terminal, with its final state.
        assert body["status"] == "interrupted", body
        assert body["stop_reason"] == "cancelled"
    else:
        # The run as the store holds it at the instant the cancel was recorded.
        assert body["status"] == "running", body

    if action == "interrupt":
        final = await wait_final(client, thread_id, run_id)
        assert final is not None, "an interrupt must not remove the run"
        assert final["status"] == "interrupted"
        assert final["stop_reason"] == "cancelled"
        assert final["cancel_action"] == "interrupt" and final["cancel_reason"] == "user"
        if wait:  # the answer is the run exactly as the store holds it at its end
            assert {k: v for k, v in body.items() if k != "cancel_outcome"} == final
        after = await snapshot(client, thread_id)
        # interrupt keeps the checkpoints written so far, and all earlier ones.
        assert set(before["history"]) < set(after["history"])
        assert after["values"]["ticks"] >= 4
        assert (await client.threads.get(thread_id))["status"] == "idle"
    else:
        await eventually(lambda: _gone(client, thread_id, run_id),
                         what="rollback to remove the run")
        await assert_rolled_back(client, ahttp, thread_id, run_id, before)


async def _gone(client: Any, thread_id: str, run_id: str) -> bool:
    return await get_run(client, thread_id, run_id) is None


async def test_rollback_of_a_threads_first_run_leaves_it_empty(client, ahttp, new_thread):
    """No earlier checkpoint: the rollback leaves the thread with no state at all."""
    thread_id = await new_thread()
    before = await snapshot(client, thread_id)
    run = await client.runs.create(thread_id, "sleepy", input=LONG)
    await wait_ticks(client, thread_id, 2)
    final = await client.runs.cancel(thread_id, run["run_id"], wait=True, action="rollback")
    assert final["cancel_action"] == "rollback"
    await assert_rolled_back(client, ahttp, thread_id, run["run_id"], before)
    assert before["history"] == [] and before["values"] in ({}, None)


async def test_sdk_cancel_spellings(client, new_thread):
    """The SDK's own calls (wait=1/0) get the run back as JSON."""
    thread_id, run, _ = await busy_thread(client, new_thread)
    body = await client.runs.cancel(thread_id, run["run_id"])
    assert body["run_id"] == run["run_id"] and body["cancel_action"] == "interrupt"
    body = await client.runs.cancel(thread_id, run["run_id"], wait=True, action="rollback")
    assert body["status"] == "interrupted" and body["cancel_action"] == "interrupt"


async def test_invalid_cancel_never_touches_the_run(client, ahttp, new_thread):
    """422s are decided before anything is recorded: the run keeps running."""
    thread_id, run, _ = await busy_thread(client, new_thread)
    for params in ({"action": "bogus"}, {"wait": "maybe"}, {"action": "bogus", "wait": "1"},
                   {"action": "rollback", "wait": "maybe"}):
        resp = await ahttp.post(cancel_url(thread_id, run["run_id"]), params=params)
        assert resp.status_code == 422, (params, resp.text)
    current = await client.runs.get(thread_id, run["run_id"])
    assert current["status"] == "running" and current["cancel_action"] is None


async def test_cancel_via_another_thread_does_not_touch_the_run(client, ahttp, new_thread):
    thread_id, run, _ = await busy_thread(client, new_thread)
    other = await new_thread()
    for action in ACTIONS:
        for wait_raw, _wait in WAIT_SPELLINGS:
            resp = await ahttp.post(cancel_url(other, run["run_id"]),
                                    params={"wait": wait_raw, "action": action})
            assert resp.status_code == 404, resp.text
    current = await client.runs.get(thread_id, run["run_id"])
    assert current["status"] == "running" and current["cancel_action"] is None


# ------------------------------------------------------- terminal rows (shared runs)


@pytest.fixture(scope="module")
async def mclient(server):
    return get_client(url=server.url, timeout=60)


@pytest.fixture(scope="module")
async def interrupted_run(mclient) -> dict:
    thread_id = (await mclient.threads.create())["thread_id"]
    run = await mclient.runs.create(thread_id, "sleepy", input=LONG)
    await wait_ticks(mclient, thread_id, 2)
    final = await mclient.runs.cancel(thread_id, run["run_id"], wait=True)
    assert final["status"] == "interrupted"
    return {"thread_id": thread_id, "run_id": run["run_id"],
            "snapshot": await snapshot(mclient, thread_id)}


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("wait_raw,wait", WAIT_SPELLINGS)
async def test_cancel_already_interrupted(client, ahttp, interrupted_run, action, wait_raw, wait):
    thread_id, run_id = interrupted_run["thread_id"], interrupted_run["run_id"]
    resp = await ahttp.post(cancel_url(thread_id, run_id),
                            params={"wait": wait_raw, "action": action})
    assert resp.status_code == accepted_code(wait), resp.text
    body = resp.json()
    assert body["run_id"] == run_id and body["status"] == "interrupted"
    assert body["cancel_action"] == "interrupt", "the first action wins, even over a rollback"
    # Unchanged: not removed, not rolled back.
    final = await client.runs.get(thread_id, run_id)
    assert final["status"] == "interrupted" and final["cancel_action"] == "interrupt"
    assert await snapshot(client, thread_id) == interrupted_run["snapshot"]


@pytest.fixture(scope="module")
async def rolled_back_run(mclient) -> dict:
    thread_id = (await mclient.threads.create())["thread_id"]
    await mclient.runs.wait(thread_id, "sleepy", input={"steps": 2, "delay": 0})
    before = await snapshot(mclient, thread_id)
    run = await mclient.runs.create(thread_id, "sleepy", input=LONG)
    await wait_ticks(mclient, thread_id, 4)
    await mclient.runs.cancel(thread_id, run["run_id"], wait=True, action="rollback")
    assert await snapshot(mclient, thread_id) == before
    return {"thread_id": thread_id, "run_id": run["run_id"], "snapshot": before}


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("wait_raw,wait", WAIT_SPELLINGS)
async def test_cancel_rolled_back_answers_from_tombstone(client, ahttp, rolled_back_run, action,
                                                         wait_raw, wait):
    thread_id, run_id = rolled_back_run["thread_id"], rolled_back_run["run_id"]
    resp = await ahttp.post(cancel_url(thread_id, run_id),
                            params={"wait": wait_raw, "action": action})
    assert resp.status_code == accepted_code(wait), resp.text
    body = resp.json()
    assert body["run_id"] == run_id and body["thread_id"] == thread_id
    assert body["cancel_action"] == "rollback"
    assert body["status"] not in ("pending", "running"), body
    assert await get_run(client, thread_id, run_id) is None
    assert await snapshot(client, thread_id) == rolled_back_run["snapshot"]


@pytest.fixture(scope="module")
async def finished_runs(mclient) -> dict[str, dict]:
    runs = {}
    for status, graph, payload in (("success", "echo", {"text": "x"}),
                                   ("error", "failing", {"x": 1})):
        thread_id = (await mclient.threads.create())["thread_id"]
        run = await mclient.runs.create(thread_id, graph, input=payload)
        final = await wait_final(mclient, thread_id, run["run_id"])
        assert final is not None and final["status"] == status
        runs[status] = {"thread_id": thread_id, "run_id": run["run_id"],
                        "snapshot": await snapshot(mclient, thread_id)}
    return runs


@pytest.mark.parametrize("status", ["success", "error"])
@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("wait_raw,wait", WAIT_SPELLINGS)
async def test_cancel_finished_run_is_409(client, ahttp, finished_runs, status, action,
                                          wait_raw, wait):
    target = finished_runs[status]
    thread_id, run_id = target["thread_id"], target["run_id"]
    resp = await ahttp.post(cancel_url(thread_id, run_id),
                            params={"wait": wait_raw, "action": action})
    assert resp.status_code == 409, resp.text
    body = resp.json()
    assert body["status"] == status, body
    assert status in body["detail"]
    final = await client.runs.get(thread_id, run_id)
    assert final["status"] == status and final["cancel_action"] is None
    assert await snapshot(client, thread_id) == target["snapshot"]


async def test_sdk_cancel_of_finished_run_raises_409(client, finished_runs):
    target = finished_runs["success"]
    with pytest.raises(httpx.HTTPStatusError) as info:
        await client.runs.cancel(target["thread_id"], target["run_id"], wait=True)
    assert info.value.response.status_code == 409


# ------------------------------------------------------------------------ 404 rows


@pytest.fixture(scope="module")
async def missing_targets(mclient, server) -> dict[str, tuple[str, str]]:
    """(thread_id, run_id) pairs that must all answer 404."""
    c = mclient
    thread_a = (await c.threads.create())["thread_id"]
    finished = await c.runs.create(thread_a, "echo", input={"text": "a"})
    await wait_final(c, thread_a, finished["run_id"])
    thread_b = (await c.threads.create())["thread_id"]

    # A finished run, then deleted by its user.
    deleted = await c.runs.create(thread_a, "echo", input={"text": "b"})
    await wait_final(c, thread_a, deleted["run_id"])
    await c.runs.delete(thread_a, deleted["run_id"])

    # A rolled-back run (tombstone) on thread C...
    thread_c = (await c.threads.create())["thread_id"]
    rolled = await c.runs.create(thread_c, "sleepy", input=LONG)
    await wait_status(c, thread_c, rolled["run_id"], "running")
    await c.runs.cancel(thread_c, rolled["run_id"], wait=True, action="rollback")
    # ... and one whose tombstone its user then deleted.
    rolled_deleted = await c.runs.create(thread_c, "sleepy", input=LONG)
    await wait_status(c, thread_c, rolled_deleted["run_id"], "running")
    await c.runs.cancel(thread_c, rolled_deleted["run_id"], wait=True, action="rollback")
    async with httpx.AsyncClient(base_url=server.url) as raw:
        before = await raw.post(cancel_url(thread_c, rolled_deleted["run_id"]))
        assert before.status_code == 202, "the tombstone answers until the user deletes it"
        gone = await raw.delete(f"/threads/{thread_c}/runs/{rolled_deleted['run_id']}")
        assert gone.status_code == 204, gone.text

    # A thread deleted with its finished run.
    thread_d = (await c.threads.create())["thread_id"]
    on_deleted_thread = await c.runs.create(thread_d, "echo", input={"text": "d"})
    await wait_final(c, thread_d, on_deleted_thread["run_id"])
    await c.threads.delete(thread_d)

    return {
        "unknown-run": (thread_a, str(uuid.uuid4())),
        "unknown-thread": (str(uuid.uuid4()), finished["run_id"]),
        "run-on-another-thread": (thread_b, finished["run_id"]),
        "tombstone-on-another-thread": (thread_b, rolled["run_id"]),
        "deleted-finished-run": (thread_a, deleted["run_id"]),
        "deleted-rolled-back-run": (thread_c, rolled_deleted["run_id"]),
        "deleted-thread": (thread_d, on_deleted_thread["run_id"]),
    }


NOT_FOUND_CASES = ["unknown-run", "unknown-thread", "run-on-another-thread",
                   "tombstone-on-another-thread", "deleted-finished-run",
                   "deleted-rolled-back-run", "deleted-thread"]


@pytest.mark.parametrize("case", NOT_FOUND_CASES)
@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("wait_raw,wait", WAIT_SPELLINGS)
async def test_cancel_not_found_is_404(ahttp, missing_targets, case, action, wait_raw, wait):
    thread_id, run_id = missing_targets[case]
    resp = await ahttp.post(cancel_url(thread_id, run_id),
                            params={"wait": wait_raw, "action": action})
    assert resp.status_code == 404, resp.text
    body = resp.json()
    # Nothing leaks: the answer for a run that exists elsewhere reads exactly like the
    # answer for one that never existed.
    assert body == {"detail": f"run {run_id} not found on thread {thread_id}"}


async def test_finished_run_is_409_until_deleted_then_404(client, ahttp, new_thread):
    thread_id = await new_thread()
    run = await client.runs.create(thread_id, "echo", input={"text": "x"})
    await wait_final(client, thread_id, run["run_id"])
    url = cancel_url(thread_id, run["run_id"])
    assert (await ahttp.post(url)).status_code == 409
    await client.runs.delete(thread_id, run["run_id"])
    assert (await ahttp.post(url)).status_code == 404
    assert (await ahttp.post(url, params={"wait": "1", "action": "rollback"})).status_code == 404


async def test_cancel_after_thread_deleted_mid_run(client, ahttp, new_thread):
    """A user's delete of the thread takes its running run with it: no tombstone, 404."""
    thread_id, run, _ = await busy_thread(client, new_thread)
    await client.threads.delete(thread_id)
    for action in ACTIONS:
        for wait_raw, _wait in WAIT_SPELLINGS:
            resp = await ahttp.post(cancel_url(thread_id, run["run_id"]),
                                    params={"wait": wait_raw, "action": action})
            assert resp.status_code == 404, resp.text
    assert (await ahttp.get(f"/threads/{thread_id}/runs/{run['run_id']}")).status_code == 404


# ------------------------------------------------------------------------ 422 rows


VALID = str(uuid.uuid4())

INVALID_CASES = [
    pytest.param("not-a-uuid", VALID, {}, ["thread_id"], id="malformed-thread-id"),
    pytest.param(VALID, "12345", {}, ["run_id"], id="malformed-run-id"),
    pytest.param(VALID, VALID, {"action": "bogus"}, ["action", "bogus"], id="action-bogus"),
    pytest.param(VALID, VALID, {"action": ""}, ["action"], id="action-empty"),
    pytest.param(VALID, VALID, {"action": "INTERRUPTED"}, ["action"], id="action-unknown"),
    pytest.param(VALID, VALID, {"wait": "maybe"}, ["wait", "maybe"], id="wait-maybe"),
    pytest.param(VALID, VALID, {"wait": ""}, ["wait"], id="wait-empty"),
    pytest.param(VALID, VALID, {"wait": "2"}, ["wait"], id="wait-2"),
    pytest.param(VALID, VALID, {"wait": "yes", "action": "rollback"}, ["wait"], id="wait-yes"),
    pytest.param("x", "y", {"wait": "maybe", "action": "bogus"},
                 ["thread_id", "run_id", "wait", "action"], id="everything-wrong"),
]


@pytest.mark.parametrize("thread_id,run_id,params,mentions", INVALID_CASES)
async def test_cancel_invalid_request_is_422(ahttp, thread_id, run_id, params, mentions):
    resp = await ahttp.post(f"/threads/{thread_id}/runs/{run_id}/cancel", params=params)
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert isinstance(detail, str)
    for word in mentions:
        assert word in detail, (word, detail)


# ------------------------------------------------------------------- bulk cancel


async def test_bulk_cancel_by_thread_interrupt(client, new_thread):
    thread_id = await new_thread()
    first = await client.runs.create(thread_id, "sleepy", input=LONG)
    await wait_status(client, thread_id, first["run_id"], "running")
    queued = [await client.runs.create(thread_id, "sleepy", input={"steps": 1, "delay": 0})
              for _ in range(2)]
    await client.runs.cancel_many(thread_id=thread_id)
    for run in (first, *queued):
        final = await wait_final(client, thread_id, run["run_id"])
        assert final is not None and final["status"] == "interrupted", final
        assert final["cancel_action"] == "interrupt"
    ran = set(await history_run_ids(client, thread_id))
    assert not ran & {q["run_id"] for q in queued}, "cancelled pending runs never start"
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_bulk_cancel_by_thread_rollback(client, ahttp, new_thread):
    thread_id, first, before = await busy_thread(client, new_thread)
    queued = await client.runs.create(thread_id, "sleepy", input={"steps": 1, "delay": 0})
    await client.runs.cancel_many(thread_id=thread_id, action="rollback")
    for run in (first, queued):
        await eventually(lambda r=run: _gone(client, thread_id, r["run_id"]),
                         what="bulk rollback to remove the run")
    await assert_rolled_back(client, ahttp, thread_id, first["run_id"], before)
    await assert_rolled_back(client, ahttp, thread_id, queued["run_id"], before)


async def test_bulk_cancel_by_run_ids(client, new_thread):
    thread_id = await new_thread()
    first = await client.runs.create(thread_id, "sleepy", input=LONG)
    await wait_status(client, thread_id, first["run_id"], "running")
    second = await client.runs.create(thread_id, "sleepy", input={"steps": 1, "delay": 0})
    third = await client.runs.create(thread_id, "sleepy", input={"steps": 1, "delay": 0})
    await client.runs.cancel_many(thread_id=thread_id, run_ids=[second["run_id"]])
    assert (await client.runs.get(thread_id, second["run_id"]))["status"] == "interrupted"
    assert (await client.runs.get(thread_id, third["run_id"]))["status"] == "pending"
    current = await client.runs.get(thread_id, first["run_id"])
    assert current["status"] == "running" and current["cancel_action"] is None

    await client.runs.cancel_many(thread_id=thread_id, run_ids=[first["run_id"]],
                                  action="rollback")
    await eventually(lambda: _gone(client, thread_id, first["run_id"]),
                     what="the rolled-back run to be removed")
    final = await wait_final(client, thread_id, third["run_id"])
    assert final is not None and final["status"] == "success", "the untouched run still runs"
    assert second["run_id"] not in await history_run_ids(client, thread_id)


async def test_bulk_cancel_invalid_requests(client, ahttp, new_thread):
    thread_id, run, _ = await busy_thread(client, new_thread)
    cases = [
        ({"thread_id": thread_id}, {"action": "bogus"}, 422),
        ({"status": "bogus"}, {}, 422),
        ({}, {}, 422),
        ({"thread_id": "nope"}, {}, 422),
        ({"thread_id": thread_id, "run_ids": [run["run_id"], str(uuid.uuid4())]}, {}, 404),
    ]
    for body, params, code in cases:
        resp = await ahttp.post("/runs/cancel", json=body, params=params)
        assert resp.status_code == code, (body, params, resp.text)
        assert "detail" in resp.json()
    # None of them cancelled anything, not even the valid id next to an unknown one.
    current = await client.runs.get(thread_id, run["run_id"])
    assert current["status"] == "running" and current["cancel_action"] is None
