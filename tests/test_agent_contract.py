"""The run contract on a real-shaped agent: the ReAct agent of examples/agents.

The contract's cases (tests/test_cancel_contract.py, test_rollback_exact.py,
test_multitask.py, test_races.py run them on toy graphs) on `react_agent` (LangGraph's
prebuilt agent, a streaming fake model, a slow search tool) and `research_agent` (many
tool rounds), on each backend:

- a cancel while a tool runs: the run ends `interrupted`, the thread keeps the AI
  message with the tool call (its checkpoint was written before the cancel) and has no
  ToolMessage from the cancelled tool; the next message works;
- a cancel mid-token-stream: the stream ends, the run is `interrupted`, the cancel
  answers 202 (200 with wait), every repeat the same;
- a rollback after tool calls: the run and its checkpoints are gone, the thread's
  state and history are exactly as before the run, earlier runs' history intact;
- double-texting during a tool call, per multitask strategy;
- many concurrent cancels of one agent run at randomized moments (during tokens,
  during a tool), over several repetitions.

The moments are awaited (a checkpoint with the tool call, tokens received), never slept.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import pytest

from contract_support import (
    cancel_url,
    eventually,
    get_run,
    history_run_ids,
    snapshot,
    wait_final,
)

pytest_plugins = ("contract_fixtures",)
pytestmark = pytest.mark.usefixtures("no_server_errors")

# Tokens stream fast; a search takes long enough that only a cancel ends it.
SLOW_TOOL = {"token_delay": 0.001, "search_seconds": 60}
# A long answer at ~100 tokens a second: a cancel lands mid-stream.
LONG_ANSWER = {"token_delay": 0.01, "reply_tokens": 3000}
FAST = {"token_delay": 0.001, "search_seconds": 0.05}
SEARCH = "search for runlane"


def user(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def kinds(messages: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """(type, text or the tool calls' names) for each message."""
    return [(m["type"], [c["name"] for c in m["tool_calls"]] if m.get("tool_calls")
             else m["content"]) for m in messages]


def answer_to_dangling(call_id: str, text: str) -> dict[str, Any]:
    """A new message after a stopped tool call, as chat UIs send it: a ToolMessage
    closing the call that never got its result (the prebuilt agent refuses a history
    with an unanswered tool call), then the user's message."""
    return {"messages": [
        {"role": "tool", "tool_call_id": call_id, "content": "stopped by the user"},
        {"role": "user", "content": text}]}


async def messages_of(client: Any, thread_id: str) -> list[dict[str, Any]]:
    return ((await client.threads.get_state(thread_id))["values"] or {}).get("messages", [])


async def tool_running(client: Any, thread_id: str, rounds: int = 1) -> dict:
    """Wait until the thread's checkpoint holds the `rounds`-th AI message with tool calls
    and its tools node is next: from then on the tool runs (the checkpoint is written
    before the tools node starts). The state then."""

    async def probe() -> dict | None:
        state = await client.threads.get_state(thread_id)
        messages = (state["values"] or {}).get("messages", [])
        calls = [m for m in messages if m["type"] == "ai" and m.get("tool_calls")]
        ready = len(calls) >= rounds and messages[-1] is calls[-1] and state["next"] == [
            "tools"]
        return state if ready else None

    return await eventually(probe, what=f"tool call {rounds} to run on {thread_id}",
                            timeout=30)


class TokenStream:
    """A run streamed with `messages-tuple` in the background: how many tokens arrived,
    and an event set once `n` have."""

    def __init__(self, client: Any, thread_id: str, **run: Any) -> None:
        self.tokens = 0
        self.events: list[str] = []
        self.run_id: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters: list[tuple[int, asyncio.Event]] = []
        self.task = asyncio.ensure_future(self._read(client, thread_id, run))

    async def _read(self, client: Any, thread_id: str, run: dict[str, Any]) -> None:
        async for part in client.runs.stream(thread_id, "react_agent",
                                             stream_mode="messages-tuple", **run):
            self.events.append(part.event)
            if part.event == "metadata" and not self.run_id.done():
                self.run_id.set_result(part.data["run_id"])
            if part.event == "messages" and part.data[0].get("content"):
                self.tokens += 1
                for n, event in self._waiters:
                    if self.tokens >= n:
                        event.set()

    async def after(self, n: int) -> None:
        event = asyncio.Event()
        self._waiters.append((n, event))
        if self.tokens >= n:
            event.set()
        waiter = asyncio.ensure_future(event.wait())
        await asyncio.wait({waiter, self.task}, timeout=30,
                           return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        assert event.is_set(), (f"the stream gave {self.tokens} tokens, not {n} "
                                f"(ended: {self.task.done()})")


# ------------------------------------------------------------------ cancel during a tool


@pytest.mark.parametrize("wait", [False, True])
async def test_cancel_while_a_tool_runs(client, spread_http, new_thread, wait):
    thread_id = await new_thread()
    run = await client.runs.create(thread_id, "react_agent", input=user(SEARCH),
                                   context=SLOW_TOOL)
    state = await tool_running(client, thread_id)
    [call] = state["values"]["messages"][-1]["tool_calls"]
    assert call["name"] == "slow_search"

    resp = await spread_http.post(cancel_url(thread_id, run["run_id"]),
                                  params={"wait": "1" if wait else "0"})
    assert resp.status_code == (200 if wait else 202), resp.text
    assert resp.json()["cancel_outcome"] == "recorded"
    final = await wait_final(client, thread_id, run["run_id"])
    assert final is not None and final["status"] == "interrupted", final
    assert final["stop_reason"] == "cancelled" and final["cancel_reason"] == "user"

    # `interrupt` keeps the checkpoints the run wrote: the AI message asking for the
    # tool stays, and the tool that was stopped answered nothing.
    after = await client.threads.get_state(thread_id)
    messages = after["values"]["messages"]
    assert kinds(messages) == [("human", SEARCH), ("ai", ["slow_search"])]
    assert after["next"] == ["tools"]
    assert (await client.threads.get(thread_id))["status"] == "idle"

    # The next message works (with the stopped call closed, as chat UIs send it).
    result = await client.runs.wait(thread_id, "react_agent",
                                    input=answer_to_dangling(call["id"], "hello"),
                                    context=SLOW_TOOL)
    assert kinds(result["messages"])[-3:] == [
        ("tool", "stopped by the user"), ("human", "hello"), ("ai", "You said: hello")]
    assert not [m for m in result["messages"]
                if m["type"] == "tool" and m["content"] != "stopped by the user"]


async def test_a_stopped_tool_call_runs_again_when_the_thread_continues(client, new_thread):
    """Continuing the thread (no input) after a cancel during a tool runs the tool that
    was stopped, from its checkpoint, and the agent answers from its result."""
    thread_id = await new_thread()
    run = await client.runs.create(thread_id, "react_agent", input=user(SEARCH),
                                   context=SLOW_TOOL)
    await tool_running(client, thread_id)
    await client.runs.cancel(thread_id, run["run_id"], wait=True)
    result = await client.runs.wait(thread_id, "react_agent", input=None, context=FAST)
    assert kinds(result["messages"]) == [
        ("human", SEARCH), ("ai", ["slow_search"]),
        ("tool", "3 results for 'search for runlane': runlane docs, LangGraph docs, "
                 "a blog post"),
        ("ai", "Here is what I found. slow_search: 3 results for 'search for runlane': "
               "runlane docs, LangGraph docs, a blog post")]


# ------------------------------------------------------------------ cancel mid-stream


async def test_cancel_mid_token_stream(client, spread_http, new_thread):
    thread_id = await new_thread()
    stream = TokenStream(client, thread_id, input=user("tell me a story"),
                         context=LONG_ANSWER)
    await stream.after(20)
    run_id = await stream.run_id

    first = await spread_http.post(cancel_url(thread_id, run_id), params={"wait": "0"})
    assert first.status_code == 202, first.text
    assert first.json()["cancel_outcome"] == "recorded"
    # Repeated cancels, at once and after: the same answers, one stop.
    repeats = await asyncio.gather(*(
        spread_http.post(cancel_url(thread_id, run_id), params={"wait": w})
        for w in ("0", "1", "false", "true")))
    assert [r.status_code for r in repeats] == [202, 200, 202, 200], [r.text for r in repeats]
    assert {r.json()["cancel_outcome"] for r in repeats} <= {"already_recorded",
                                                             "already_interrupted"}
    assert {r.json()["cancel_action"] for r in repeats} == {"interrupt"}

    await asyncio.wait_for(stream.task, 30)  # the stream ends
    assert stream.tokens < 3000, "the answer streamed to its end despite the cancel"
    final = await client.runs.get(thread_id, run_id)
    assert final["status"] == "interrupted" and final["stop_reason"] == "cancelled"
    again = await spread_http.post(cancel_url(thread_id, run_id), params={"wait": "1"})
    assert again.status_code == 200 and again.json()["cancel_outcome"] == "already_interrupted"

    # The model's node never finished: no half answer in the state.
    assert kinds(await messages_of(client, thread_id)) == [("human", "tell me a story")]
    result = await client.runs.wait(thread_id, "react_agent", input=user("hello"),
                                    context=FAST)
    assert kinds(result["messages"]) == [("human", "tell me a story"), ("human", "hello"),
                                         ("ai", "You said: hello")]


# ------------------------------------------------------------------ rollback


async def test_rollback_after_tool_calls(client, spread_http, new_thread):
    thread_id = await new_thread()
    # An earlier run whose history must survive: a tool call and its answer.
    await client.runs.wait(thread_id, "research_agent", input=user("weather in Paris"),
                           context=FAST)
    earlier = await history_run_ids(client, thread_id)
    before = await snapshot(client, thread_id)

    # Rounds of a search each: the cancel lands once the first one has answered, well
    # before the second one does.
    run = await client.runs.create(
        thread_id, "research_agent", input=user("research cancellation"),
        context={"token_delay": 0.001, "research_steps": 5, "search_seconds": 1.5})
    run_id = run["run_id"]

    async def after_a_tool_answered() -> bool:
        messages = await messages_of(client, thread_id)
        return sum(m["type"] == "tool" for m in messages) >= 2  # the earlier one, and one

    await eventually(after_a_tool_answered, what="a tool of the run to answer", timeout=30)
    resp = await spread_http.post(cancel_url(thread_id, run_id),
                                  params={"wait": "1", "action": "rollback"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["cancel_action"] == "rollback"

    # The run and its checkpoints are gone; the thread is exactly as before the run.
    assert await get_run(client, thread_id, run_id) is None
    assert run_id not in [r["run_id"] for r in await client.runs.list(thread_id, limit=100)]
    assert await snapshot(client, thread_id) == before
    assert await history_run_ids(client, thread_id) == earlier
    assert run_id not in earlier
    assert (await client.threads.get(thread_id))["status"] == "idle"
    tombstone = await spread_http.post(cancel_url(thread_id, run_id), params={"wait": "0"})
    assert tombstone.status_code == 202 and tombstone.json()["cancel_outcome"] == "rolled_back"

    # The thread goes on from where it was.
    result = await client.runs.wait(thread_id, "research_agent", input=user("hello"),
                                    context=FAST)
    assert kinds(result["messages"])[-2:] == [("human", "hello"), ("ai", "You said: hello")]
    assert kinds(result["messages"])[:2] == [("human", "weather in Paris"),
                                             ("ai", ["get_weather"])]


# ------------------------------------------------------------------ double-texting


async def busy_with_a_tool(client: Any, new_thread: Any, context: dict) -> tuple[str, str,
                                                                                str, dict]:
    """A thread whose agent run is inside its slow tool: (thread, run, call id, snapshot
    from before the run)."""
    thread_id = await new_thread()
    before = await snapshot(client, thread_id)
    run = await client.runs.create(thread_id, "react_agent", input=user(SEARCH),
                                   context=context)
    state = await tool_running(client, thread_id)
    return thread_id, run["run_id"], state["values"]["messages"][-1]["tool_calls"][0]["id"], \
        before


async def test_double_text_reject(client, spread_http, new_thread):
    thread_id, run_id, _, _ = await busy_with_a_tool(
        client, new_thread, {"token_delay": 0.001, "search_seconds": 1.5})
    during = await snapshot(client, thread_id)
    resp = await spread_http.post(f"/threads/{thread_id}/runs", json={
        "assistant_id": "react_agent", "input": user("hello"), "multitask_strategy": "reject"})
    assert resp.status_code == 409, resp.text
    assert run_id in resp.json()["detail"]
    # Nothing changed: no new run, the thread as it was, the tool still running.
    assert [r["run_id"] for r in await client.runs.list(thread_id)] == [run_id]
    assert await snapshot(client, thread_id) == during
    assert (await client.runs.get(thread_id, run_id))["status"] == "running"
    result = await client.runs.join(thread_id, run_id)
    assert [k for k, _ in kinds(result["messages"])] == ["human", "ai", "tool", "ai"]
    assert (await client.runs.get(thread_id, run_id))["status"] == "success"


async def test_double_text_interrupt(client, new_thread):
    thread_id, run_id, call_id, _ = await busy_with_a_tool(client, new_thread, SLOW_TOOL)
    second = await client.runs.create(thread_id, "react_agent",
                                      input=answer_to_dangling(call_id, "hello"),
                                      context=FAST, multitask_strategy="interrupt")
    first = await wait_final(client, thread_id, run_id)
    assert first is not None and first["status"] == "interrupted"
    assert first["cancel_reason"] == "multitask_interrupt"
    result = await client.runs.join(thread_id, second["run_id"])
    # The first run's tool call stays, its tool never answered; the second run goes on.
    assert kinds(result["messages"]) == [
        ("human", SEARCH), ("ai", ["slow_search"]), ("tool", "stopped by the user"),
        ("human", "hello"), ("ai", "You said: hello")]
    assert (await client.runs.get(thread_id, second["run_id"]))["status"] == "success"
    order = [r for r in await history_run_ids(client, thread_id) if r]
    assert order.index(run_id) < order.index(second["run_id"])


async def test_double_text_rollback(client, new_thread):
    thread_id, run_id, _, before = await busy_with_a_tool(client, new_thread, SLOW_TOOL)
    second = await client.runs.create(thread_id, "react_agent", input=user("hello"),
                                      context=FAST, multitask_strategy="rollback")
    result = await client.runs.join(thread_id, second["run_id"])
    # The first run never happened: not in the runs, not in the history, not in the state.
    assert await get_run(client, thread_id, run_id) is None
    assert kinds(result["messages"]) == [("human", "hello"), ("ai", "You said: hello")]
    history = await history_run_ids(client, thread_id)
    assert run_id not in history and second["run_id"] in history
    assert before["history"] == []  # a new thread: everything there is the second run's
    assert set(history) == {second["run_id"]}


async def test_double_text_enqueue(client, new_thread):
    thread_id, run_id, _, _ = await busy_with_a_tool(
        client, new_thread, {"token_delay": 0.001, "search_seconds": 1.0})
    second = await client.runs.create(thread_id, "react_agent", input=user("hello"),
                                      context=FAST, multitask_strategy="enqueue")
    assert second["status"] == "pending"
    third = await client.runs.create(thread_id, "react_agent", input=user("calculate 6 * 7"),
                                     context=FAST)
    result = await client.runs.join(thread_id, third["run_id"])
    # In order, each on the state the previous one left.
    assert kinds(result["messages"]) == [
        ("human", SEARCH), ("ai", ["slow_search"]),
        ("tool", "3 results for 'search for runlane': runlane docs, LangGraph docs, "
                 "a blog post"),
        ("ai", "Here is what I found. slow_search: 3 results for 'search for runlane': "
               "runlane docs, LangGraph docs, a blog post"),
        ("human", "hello"), ("ai", "You said: hello"),
        ("human", "calculate 6 * 7"), ("ai", ["calculator"]), ("tool", "6 * 7 = 42"),
        ("ai", "Here is what I found. calculator: 6 * 7 = 42")]
    for rid in (run_id, second["run_id"], third["run_id"]):
        assert (await client.runs.get(thread_id, rid))["status"] == "success"
    order = [r for r in await history_run_ids(client, thread_id) if r]
    firsts = [order.index(r) for r in (run_id, second["run_id"], third["run_id"])]
    assert firsts == sorted(firsts)
    assert (await client.threads.get(thread_id))["status"] == "idle"


# ------------------------------------------------------------------ races

REPETITIONS = 6
CANCELS = (6, 12)  # concurrent cancels per repetition, drawn in this range


async def _race_once(client: Any, http: httpx.AsyncClient, thread_id: str,
                     moment: str) -> tuple[str, str]:
    """One agent run, stopped at a random moment of `moment` (tokens or tool) by many
    concurrent cancels with random actions and waits; every answer checked."""
    if moment == "tokens":
        stream = TokenStream(client, thread_id, input=user("tell me a story"),
                             context=LONG_ANSWER)
        await stream.after(random.randint(1, 40))
        run_id = await stream.run_id
    else:
        run = await client.runs.create(thread_id, "react_agent", input=user(SEARCH),
                                       context=SLOW_TOOL)
        run_id = run["run_id"]
        await tool_running(client, thread_id)
        await asyncio.sleep(random.uniform(0, 0.2))  # anywhere inside the tool's run
    before_run_ids = await history_run_ids(client, thread_id)

    async def cancel() -> httpx.Response:
        await asyncio.sleep(random.uniform(0, 0.02))
        params = {"wait": random.choice(["0", "1", "true", "false"]),
                  "action": random.choice(["interrupt", "rollback"])}
        resp = await http.post(cancel_url(thread_id, run_id), params=params)
        assert resp.status_code == (200 if params["wait"] in ("1", "true") else 202), (
            params, resp.status_code, resp.text)
        return resp

    answers = await asyncio.gather(*(cancel() for _ in range(random.randint(*CANCELS))))
    bodies = [a.json() for a in answers]
    outcomes = [b["cancel_outcome"] for b in bodies]
    assert outcomes.count("recorded") == 1, outcomes  # one cancel won
    assert set(outcomes) <= {"recorded", "already_recorded", "already_interrupted",
                             "rolled_back"}, outcomes
    # The first action wins, and every answer says which.
    [action] = {b["cancel_action"] for b in bodies}
    final = await wait_final(client, thread_id, run_id)
    if action == "interrupt":
        assert final is not None and final["status"] == "interrupted", final
    else:
        assert final is None
        assert run_id not in await history_run_ids(client, thread_id)
    if moment == "tokens":
        await asyncio.wait_for(stream.task, 30)
    assert (await client.threads.get(thread_id))["status"] == "idle"
    # Nothing from before the run was lost.
    after = await history_run_ids(client, thread_id)
    assert [r for r in after if r != run_id] == [r for r in before_run_ids if r != run_id]
    return moment, action


async def test_concurrent_cancels_of_an_agent_run(client, spread_http, new_thread, capsys):
    """Several repetitions of many concurrent cancels of one agent run, at random
    moments during its tokens and during its tool, two threads at once."""
    results: list[tuple[str, str]] = []

    async def lane(moments: list[str]) -> None:
        thread_id = await new_thread()
        for moment in moments:
            results.append(await _race_once(client, spread_http, thread_id, moment))
            # The thread still works after every race (a stopped tool call closed first).
            messages = await messages_of(client, thread_id)
            dangling = messages[-1].get("tool_calls") if messages else None
            ping = answer_to_dangling(dangling[0]["id"], "ping") if dangling else user("ping")
            done = await client.runs.wait(thread_id, "react_agent", input=ping, context=FAST)
            assert done["messages"][-1]["content"] == "You said: ping", done

    moments = ["tokens", "tool"] * (REPETITIONS // 2)
    random.shuffle(moments)
    half = len(moments) // 2
    await asyncio.gather(lane(moments[:half]), lane(moments[half:]))
    with capsys.disabled():
        print(f"\n[agent race] {len(results)} repetitions: {sorted(results)}")
    assert {m for m, _ in results} == {"tokens", "tool"}
