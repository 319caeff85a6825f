"""Invariant 5: a rollback restores exactly the thread state from before the run,
including when the run resumed a paused graph and so wrote onto a checkpoint that
predates it (its resume value, its task's pending writes)."""

from __future__ import annotations

import asyncio


async def _wait_status(client, thread_id: str, run_id: str, status: str) -> None:
    for _ in range(400):
        if (await client.runs.get(thread_id, run_id))["status"] == status:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"run {run_id} never became {status}")


def _comparable(state: dict) -> dict:
    return {
        "values": state["values"],
        "next": state["next"],
        "checkpoint_id": state["checkpoint_id"],
        "interrupts": [i["value"] for t in state["tasks"] for i in t["interrupts"]],
    }


async def test_rollback_of_a_resume_restores_the_paused_state(client):
    thread = await client.threads.create()
    tid = thread["thread_id"]
    await client.runs.wait(tid, "slow_hitl", input={"delay": 0.5})
    paused = await client.threads.get_state(tid)
    assert paused["next"] == ["ask"], paused
    history_before = await client.threads.get_history(tid, limit=100)

    resume = await client.runs.create(tid, "slow_hitl", command={"resume": "first"})
    await _wait_status(client, tid, resume["run_id"], "running")
    await asyncio.sleep(0.1)  # the resume value is now a pending write on the old checkpoint
    final = await client.runs.cancel(tid, resume["run_id"], wait=True, action="rollback")
    assert final["cancel_action"] == "rollback"

    restored = await client.threads.get_state(tid)
    assert _comparable(restored) == _comparable(paused)
    history_after = await client.threads.get_history(tid, limit=100)
    assert [s["checkpoint_id"] for s in history_after] == [
        s["checkpoint_id"] for s in history_before
    ]
    assert (await client.threads.get(tid))["status"] == "interrupted"

    # The rolled-back resume value is gone: continuing without one pauses again,
    # rather than consuming "first".
    again = await client.runs.wait(tid, "slow_hitl", input=None)
    assert not again.get("answers") and again["__interrupt__"], again
    assert (await client.threads.get_state(tid))["next"] == ["ask"]

    # The thread resumes as if the rolled-back attempt never happened.
    result = await client.runs.wait(tid, "slow_hitl", command={"resume": "second"})
    assert result["answers"] == ["second"]


async def test_rollback_of_a_fresh_run_keeps_earlier_history(client):
    thread = await client.threads.create()
    tid = thread["thread_id"]
    await client.runs.wait(tid, "sleepy", input={"steps": 2})
    before = await client.threads.get_state(tid)
    history_before = await client.threads.get_history(tid, limit=100)

    run = await client.runs.create(tid, "sleepy", input={"steps": 500, "delay": 0.005})
    await _wait_status(client, tid, run["run_id"], "running")
    await asyncio.sleep(0.1)
    await client.runs.cancel(tid, run["run_id"], wait=True, action="rollback")

    assert _comparable(await client.threads.get_state(tid)) == _comparable(before)
    history_after = await client.threads.get_history(tid, limit=100)
    assert [s["checkpoint_id"] for s in history_after] == [
        s["checkpoint_id"] for s in history_before
    ]
