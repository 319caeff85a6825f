"""The agent corpus (examples/agents) end to end, through langgraph_sdk, on each backend.

Each real-shaped graph runs to the end state its scripted model makes deterministic:
which tools were called, the ToolMessages answering them, the final text. Streaming
gives the model's tokens in order under one message id, human-in-the-loop agents stop
and resume (approve, edit, reject), subgraph events are namespaced, a raising node ends
its run `error`. Knobs come from the run's context, so runs stay short.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest_plugins = ("contract_fixtures",)
pytestmark = pytest.mark.usefixtures("no_server_errors")

FAST = {"token_delay": 0.001}


def user(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def shape(messages: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """(type, content or the tool calls' names) for each message."""
    return [(m["type"], [c["name"] for c in m["tool_calls"]] if m.get("tool_calls")
             else m["content"]) for m in messages]


async def messages_of(client, thread_id: str) -> list[dict[str, Any]]:
    return (await client.threads.get_state(thread_id))["values"]["messages"]


async def test_react_agent_calls_tools_and_answers_from_them(client, new_thread):
    thread_id = await new_thread()
    result = await client.runs.wait(
        thread_id, "react_agent", input=user("What's the weather in Tokyo? And 12 * 7?"),
        context=FAST)
    messages = result["messages"]
    assert shape(messages) == [
        ("human", "What's the weather in Tokyo? And 12 * 7?"),
        ("ai", ["get_weather", "calculator"]),
        ("tool", "clear, 25 °C in Tokyo"),
        ("tool", "12 * 7 = 84"),
        ("ai", "Here is what I found. get_weather: clear, 25 °C in Tokyo calculator: 12 * 7 = 84"),
    ]
    calls = messages[1]["tool_calls"]
    assert calls[0]["args"] == {"city": "Tokyo"} and calls[1]["args"] == {"expression": "12 * 7"}
    assert [m["tool_call_id"] for m in messages[2:4]] == [c["id"] for c in calls]
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_react_agent_takes_its_system_prompt_from_the_context(client, new_thread):
    thread_id = await new_thread()
    result = await client.runs.wait(thread_id, "react_agent",
                                    input=user("What are your instructions?"),
                                    context={**FAST, "user_name": "Ada"})
    assert result["messages"][-1]["content"] == (
        "My instructions are: You are a helpful assistant talking to Ada.")
    # A second turn on the thread with another prompt: the context is per run.
    result = await client.runs.wait(
        thread_id, "react_agent", input=user("What are your instructions?"),
        context={**FAST, "system_prompt": "You are a pirate, {user_name}.", "user_name": "Bo"})
    assert result["messages"][-1]["content"] == "My instructions are: You are a pirate, Bo."


async def test_react_agent_runs_with_no_context_at_all(client, new_thread):
    # Neither the run nor the assistant gives a context: every knob takes its default.
    thread_id = await new_thread()
    result = await client.runs.wait(thread_id, "react_agent",
                                    input=user("What are your instructions?"))
    assert result["messages"][-1]["content"] == (
        "My instructions are: You are a helpful assistant talking to a user.")


async def test_messages_stream_gives_the_tokens_in_order(client, new_thread):
    thread_id = await new_thread()
    chunks = []
    async for part in client.runs.stream(thread_id, "react_agent", input=user("hello"),
                                         stream_mode="messages-tuple",
                                         context={**FAST, "reply_tokens": 40}):
        if part.event == "messages":
            message, metadata = part.data
            assert metadata["langgraph_node"] == "agent"
            chunks.append(message)
    words = [c["content"] for c in chunks if c["content"]]
    assert len(words) == 40
    final = (await messages_of(client, thread_id))[-1]
    assert "".join(words) == final["content"]
    assert words[:3] == ["Once", " upon", " a"] and words[9] == " a(10)"
    # One model call, one message: every chunk has the id of the message the state keeps.
    assert {c["id"] for c in chunks} == {final["id"]}
    assert final["id"].startswith("lc_run-")


async def test_tool_calls_stream_as_tool_call_chunks(client, new_thread):
    thread_id = await new_thread()
    pieces = []
    tools = []
    async for part in client.runs.stream(thread_id, "react_agent",
                                         input=user("weather in London"),
                                         stream_mode="messages-tuple", context=FAST):
        if part.event == "messages":
            message = part.data[0]
            if message["type"] == "tool":
                tools.append(message["content"])
            pieces += message.get("tool_call_chunks") or []
    assert pieces[0]["name"] == "get_weather" and pieces[0]["id"] == "call_0_0"
    assert "".join(p["args"] for p in pieces) == '{"city": "London"}'
    assert tools == ["light rain, 14 °C in London"]


@pytest.mark.parametrize(("resume", "tool_result"), [
    ({"decisions": [{"type": "approve"}]}, "Email sent to grace@example.com with subject 'Hello'"),
    ({"decisions": [{"type": "edit", "edited_action": {
        "name": "send_email", "args": {"to": "linus@example.com", "subject": "Hi", "body": "b"}}}]},
     "Email sent to linus@example.com with subject 'Hi'"),
    ({"decisions": [{"type": "reject", "message": "not now"}]},
     "User rejected the tool call for `send_email` with reason: not now"),
], ids=["approve", "edit", "reject"])
async def test_lc_agent_asks_before_sending_an_email(client, new_thread, resume, tool_result):
    thread_id = await new_thread()
    result = await client.runs.wait(thread_id, "lc_agent",
                                    input=user("email Grace about the launch"), context=FAST)
    [interrupt] = result["__interrupt__"]
    [request] = interrupt["value"]["action_requests"]
    assert request["name"] == "send_email" and request["args"]["to"] == "grace@example.com"
    assert interrupt["value"]["review_configs"][0]["allowed_decisions"] == [
        "approve", "edit", "reject"]
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "interrupted"
    # Nothing was sent yet: the tool call waits for the decision.
    assert shape(await messages_of(client, thread_id))[-1] == ("ai", ["send_email"])

    result = await client.runs.wait(thread_id, "lc_agent", command={"resume": resume},
                                    context=FAST)
    tool_message, answer = result["messages"][-2:]
    assert tool_message["type"] == "tool" and tool_message["content"].endswith(tool_result)
    assert answer["content"] == f"Here is what I found. send_email: {tool_message['content']}"
    assert (await client.threads.get(thread_id))["status"] == "idle"


@pytest.mark.parametrize(("resume", "outcome"), [
    (True, "Transferred 50 to Alice"),
    (False, "Transfer of 50 to Alice cancelled by the user"),
], ids=["approve", "reject"])
async def test_a_tool_that_interrupts_is_resumed(client, new_thread, resume, outcome):
    thread_id = await new_thread()
    result = await client.runs.wait(thread_id, "hitl_agent", input=user("transfer 50 to Alice"),
                                    context=FAST)
    assert [i["value"] for i in result["__interrupt__"]] == [{
        "question": "Transfer 50 to Alice?", "action": "transfer_money",
        "args": {"amount": 50.0, "to": "Alice"}}]
    assert (await client.threads.get_state(thread_id))["next"] == ["tools"]
    result = await client.runs.wait(thread_id, "hitl_agent", command={"resume": resume},
                                    context=FAST)
    assert shape(result["messages"])[-2:] == [
        ("tool", outcome), ("ai", f"Here is what I found. transfer_money: {outcome}")]


async def test_research_agent_searches_for_the_rounds_asked(client, new_thread):
    thread_id = await new_thread()
    result = await client.runs.wait(
        thread_id, "research_agent", input=user("research cancellation"),
        context={**FAST, "research_steps": 3, "search_seconds": 0.05})
    messages = result["messages"]
    searches = [c for m in messages for c in m.get("tool_calls") or []]
    assert [c["args"]["query"] for c in searches] == [
        "research cancellation", "research cancellation (angle 2)",
        "research cancellation (angle 3)"]
    assert [m["content"] for m in messages if m["type"] == "ai"][:3] == [
        "Step 1 of 3: searching.", "Step 2 of 3: searching more.", "Step 3 of 3: searching more."]
    assert sum(m["type"] == "tool" for m in messages) == 3
    assert messages[-1]["content"].startswith("Here is what I found. slow_search: 3 results")


async def test_subgraph_events_are_namespaced(client, new_thread):
    thread_id = await new_thread()
    namespaces: set[str] = set()
    async for part in client.runs.stream(thread_id, "subgraph_agent", input=user("hi"),
                                         stream_mode=["updates", "messages-tuple"],
                                         stream_subgraphs=True):
        if "|" in part.event:
            mode, _, namespace = part.event.partition("|")
            namespaces.add(f"{mode}|{namespace.split(':')[0]}")
    # The compiled graph added as a node, and the one invoked inside `write`.
    assert {"updates|researcher", "messages|researcher", "updates|write",
            "messages|write"} <= namespaces
    state = await client.threads.get_state(thread_id)
    assert state["values"]["report"] == "Report. You said: Notes: You said: hi"


async def test_subgraph_events_stay_at_the_top_without_stream_subgraphs(client, new_thread):
    thread_id = await new_thread()
    events = {part.event async for part in client.runs.stream(
        thread_id, "subgraph_agent", input=user("hi"), stream_mode="updates")}
    assert events == {"metadata", "updates"}


async def test_map_reduce_combines_every_branch(client, new_thread):
    thread_id = await new_thread()
    result = await client.runs.wait(thread_id, "map_reduce",
                                    input={"topics": ["owls", "cats", "bees"]})
    assert sorted(result["notes"]) == [
        "bees: You said: bees", "cats: You said: cats", "owls: You said: owls"]
    assert result["summary"] == (
        "owls: You said: owls | cats: You said: cats | bees: You said: bees")


async def test_commands_route_with_goto(client, new_thread):
    thread_id = await new_thread()
    result = await client.runs.wait(thread_id, "commands", input=user("weather please"))
    assert result["route"] == ["triage", "weather"]
    assert result["messages"][-1]["content"] == "Paris: sunny, 21 °C"


@pytest.mark.parametrize(("resume", "route", "answer"), [
    ("approve", "refund", "Your refund is on its way."),
    ("no", "decline", "The refund was not approved."),
])
async def test_commands_interrupt_then_resume(client, new_thread, resume, route, answer):
    thread_id = await new_thread()
    result = await client.runs.wait(thread_id, "commands", input=user("I want a refund"))
    assert [i["value"] for i in result["__interrupt__"]] == [
        {"question": "Issue a refund?", "request": "I want a refund"}]
    result = await client.runs.wait(thread_id, "commands", command={"resume": resume})
    assert result["route"] == ["triage", "approval", route]
    assert result["messages"][-1]["content"] == answer


async def test_raising_agent_ends_in_error_after_streaming(client, new_thread):
    thread_id = await new_thread()
    tokens, errors = [], []
    async for part in client.runs.stream(thread_id, "raising_agent", input=user("weather?"),
                                         stream_mode="messages-tuple"):
        if part.event == "messages":
            tokens.append(part.data[0]["content"])
        elif part.event == "error":
            errors.append(part.data)
    assert "".join(tokens) == "You said: Let me check the weather for you"
    assert errors == [{"error": "ValueError", "message": "the weather service is down"}]
    [run] = await client.runs.list(thread_id)
    assert run["status"] == "error"
    assert (await client.threads.get(thread_id))["status"] == "error"


async def test_factory_graph_runs(client, new_thread):
    thread_id = await new_thread()
    result = await client.runs.wait(thread_id, "factory_sync",
                                    input=user("weather in Paris and 1 + 2"), context=FAST)
    assert shape(result["messages"])[1] == ("ai", ["get_weather", "calculator"])
    assert result["messages"][-1]["content"] == (
        "Here is what I found. get_weather: sunny, 21 °C in Paris calculator: 1 + 2 = 3")
