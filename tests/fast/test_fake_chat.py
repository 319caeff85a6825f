"""The corpus's fake chat model (examples/agents/fake_chat.py), in this process.

The agent tests and demos rely on it being deterministic and shaped like a provider's
model: the same reply every time, streamed word by word with one message id, tool calls
streamed as `tool_call_chunks` that merge into complete calls.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "agents"))

from agent_tools import calculator, get_weather, slow_search
from fake_chat import FakeChatModel, long_text, plan

TOOLS = [get_weather, slow_search, calculator]


async def _stream(model, messages) -> list[AIMessageChunk]:
    return [chunk async for chunk in model.astream(messages)]


async def test_text_streams_word_by_word_and_merges_into_the_reply():
    model = FakeChatModel(token_delay=0)
    chunks = await _stream(model, [HumanMessage("hello there")])
    texts = [c.content for c in chunks if c.content]
    assert texts == ["You", " said:", " hello", " there"]
    # One message: every chunk carries the id langchain gives a model's run.
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("lc_run-")
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert merged.content == "You said: hello there"
    assert merged.response_metadata["finish_reason"] == "stop"
    invoked = await model.ainvoke([HumanMessage("hello there")])
    assert isinstance(invoked, AIMessage) and invoked.content == merged.content
    assert model.invoke([HumanMessage("hello there")]).content == merged.content


async def test_the_same_conversation_gets_the_same_reply():
    messages = [HumanMessage("what's the weather in London? calculate 2 + 3")]
    model = FakeChatModel(token_delay=0).bind_tools(TOOLS)
    first, second = await model.ainvoke(messages), await model.ainvoke(messages)
    assert first.tool_calls == second.tool_calls
    assert [(c["name"], c["args"], c["id"]) for c in first.tool_calls] == [
        ("get_weather", {"city": "London"}, "call_0_0"),
        ("calculator", {"expression": "2 + 3"}, "call_0_1"),
    ]


async def test_tool_calls_stream_as_chunks_name_first_then_arguments():
    model = FakeChatModel(token_delay=0).bind_tools(TOOLS)
    chunks = await _stream(model, [HumanMessage("weather in Tokyo")])
    pieces = [piece for c in chunks for piece in c.tool_call_chunks]
    assert pieces[0]["name"] == "get_weather" and pieces[0]["id"] == "call_0_0"
    assert pieces[0]["args"] == ""
    assert len(pieces) > 2 and all(p["name"] is None and p["id"] is None for p in pieces[1:])
    assert "".join(p["args"] for p in pieces) == '{"city": "Tokyo"}'
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert merged.tool_calls == [{"name": "get_weather", "args": {"city": "Tokyo"},
                                  "id": "call_0_0", "type": "tool_call"}]
    assert merged.response_metadata["finish_reason"] == "tool_calls"


def test_unbound_tools_are_never_called():
    assert plan([HumanMessage("weather in Paris")], tools=[]).tool_calls == ()
    assert plan([HumanMessage("weather in Paris")], tools=[]).text == "You said: weather in Paris"


def test_after_tool_results_it_answers_from_them():
    messages = [
        HumanMessage("weather in Paris"),
        AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"},
                                   "id": "call_0_0"}]),
        ToolMessage("sunny, 21 °C in Paris", tool_call_id="call_0_0", name="get_weather"),
    ]
    reply = plan(messages, ["get_weather"])
    assert reply.tool_calls == ()
    assert reply.text == "Here is what I found. get_weather: sunny, 21 °C in Paris"


def test_research_questions_search_for_several_rounds():
    messages: list = [HumanMessage("research cancellation")]
    rounds = 0
    while True:
        reply = plan(messages, ["slow_search"], research_rounds=3)
        if not reply.tool_calls:
            break
        rounds += 1
        call = reply.tool_calls[0]
        messages += [AIMessage(reply.text, tool_calls=[{"name": call.name, "args": call.args,
                                                        "id": call.id}]),
                     ToolMessage("found", tool_call_id=call.id, name=call.name)]
    assert rounds == 3
    # Tool call ids stay unique within the conversation.
    ids = [m.tool_calls[0]["id"] for m in messages if isinstance(m, AIMessage)]
    assert ids == ["call_0_0", "call_1_0", "call_2_0"]


@pytest.mark.parametrize("reply_tokens", [0, 25])
async def test_long_answers_have_the_length_asked(reply_tokens):
    model = FakeChatModel(token_delay=0, reply_tokens=reply_tokens, long_reply_tokens=40)
    chunks = await _stream(model, [HumanMessage("tell me a long story")])
    words = [c.content for c in chunks if c.content]
    assert len(words) == (reply_tokens or 40)
    assert "".join(words) == long_text(reply_tokens or 40)


async def test_token_delay_paces_the_stream():
    model = FakeChatModel(token_delay=0.02, reply_tokens=10)
    started = time.monotonic()
    chunks = await _stream(model, [HumanMessage("hi")])
    # 10 words and the closing chunk: 10 pauses between 11 chunks.
    assert len(chunks) == 11
    assert time.monotonic() - started >= 10 * 0.02


def test_the_system_prompt_is_repeated_when_asked():
    from langchain_core.messages import SystemMessage

    reply = plan([SystemMessage("Be brief."), HumanMessage("what are your instructions?")])
    assert reply.text == "My instructions are: Be brief."
