"""Human in the loop: a graph paused at interrupt() (or interrupt_before/after)
finishes its *run* as `success`; the *thread* shows `interrupted` until resumed.
A paused graph is never an "already cancelled" answer: cancelling its run is 409."""

from __future__ import annotations

import pytest

from contract_support import cancel_url, wait_final

pytest_plugins = ("contract_fixtures",)
pytestmark = pytest.mark.usefixtures("no_server_errors")


async def test_interrupt_then_resume(client, ahttp, new_thread):
    thread_id = await new_thread()
    run = await client.runs.create(thread_id, "hitl", input={"question": "deploy?"})
    final = await wait_final(client, thread_id, run["run_id"])
    assert final is not None
    assert final["status"] == "success" and final["stop_reason"] == "completed"
    assert final["cancel_action"] is None

    thread = await client.threads.get(thread_id)
    assert thread["status"] == "interrupted"
    interrupts = [i for group in thread["interrupts"].values() for i in group]
    assert [i["value"] for i in interrupts] == [{"question": "deploy?"}]

    state = await client.threads.get_state(thread_id)
    assert state["next"] == ["ask"]
    assert [i["value"] for t in state["tasks"] for i in t["interrupts"]] == [
        {"question": "deploy?"}]
    assert "answer" not in state["values"]

    # The paused run finished: a cancel is refused, and says so.
    resp = await ahttp.post(cancel_url(thread_id, run["run_id"]))
    assert resp.status_code == 409 and resp.json()["status"] == "success"

    result = await client.runs.wait(thread_id, "hitl", command={"resume": "yes"})
    assert result == {"question": "deploy?", "answer": "yes", "done": True}
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "idle" and thread["interrupts"] == {}
    state = await client.threads.get_state(thread_id)
    assert state["next"] == [] and state["values"]["done"] is True


async def test_wait_reports_the_interrupt(client, new_thread):
    thread_id = await new_thread()
    result = await client.runs.wait(thread_id, "hitl", input={"question": "ok?"})
    assert [i["value"] for i in result["__interrupt__"]] == [{"question": "ok?"}]


async def test_stream_shows_the_interrupt(client, new_thread):
    thread_id = await new_thread()
    parts = [p async for p in client.runs.stream(thread_id, "hitl", input={"question": "q"},
                                                  stream_mode="updates")]
    interrupts = [p.data["__interrupt__"] for p in parts
                  if p.event == "updates" and "__interrupt__" in p.data]
    assert [i["value"] for group in interrupts for i in group] == [{"question": "q"}]


async def test_interrupt_before_then_continue(client, new_thread):
    thread_id = await new_thread()
    await client.runs.wait(thread_id, "hitl", input={"question": "q"})
    # Resume the interrupt() but stop again before `finish`.
    result = await client.runs.wait(thread_id, "hitl", command={"resume": "yes"},
                                    interrupt_before=["finish"])
    assert result["answer"] == "yes" and "done" not in result
    assert (await client.threads.get(thread_id))["status"] == "interrupted"
    assert (await client.threads.get_state(thread_id))["next"] == ["finish"]
    # Continue with no input: `finish` runs.
    result = await client.runs.wait(thread_id, "hitl", input=None)
    assert result["done"] is True
    assert (await client.threads.get(thread_id))["status"] == "idle"


@pytest.mark.parametrize("where", ["interrupt_before", "interrupt_after"])
async def test_static_interrupts_on_another_graph(client, new_thread, where):
    thread_id = await new_thread()
    node = "second" if where == "interrupt_before" else "first"
    run = await client.runs.create(thread_id, "quick", input={"n": 0}, **{where: [node]})
    final = await wait_final(client, thread_id, run["run_id"])
    assert final is not None and final["status"] == "success"
    assert (await client.threads.get(thread_id))["status"] == "interrupted"
    state = await client.threads.get_state(thread_id)
    assert state["values"] == {"n": 1} and state["next"] == ["second"]
    result = await client.runs.wait(thread_id, "quick", input=None)
    assert result == {"n": 2}
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_interrupt_before_all_nodes(client, new_thread):
    thread_id = await new_thread()
    result = await client.runs.wait(thread_id, "quick", input={"n": 5}, interrupt_before="*")
    assert result.get("n") == 5
    assert (await client.threads.get_state(thread_id))["next"] == ["first"]
