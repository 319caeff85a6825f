"""The `messages` stream mode's frames, from the tuples langgraph streams."""

from __future__ import annotations

from langchain_core.messages import AIMessageChunk, ToolMessage

from runlane.executor.messages_mode import MessageAccumulator


def test_chunks_accumulate_into_partials_after_one_metadata() -> None:
    frames = MessageAccumulator()
    meta = {"langgraph_node": "model"}
    out = []
    for token in ("Hel", "lo", "!"):
        out += frames.frames((AIMessageChunk(content=token, id="m1"), meta))
    assert [name for name, _ in out] == [
        "messages/metadata", "messages/partial", "messages/partial", "messages/partial"]
    assert out[0][1] == {"m1": {"metadata": meta}}
    contents = [payload[0].content for name, payload in out[1:]]
    assert contents == ["Hel", "Hello", "Hello!"]
    assert all(payload[0].type == "ai" for _, payload in out[1:]), "plain messages, not chunks"


def test_a_whole_message_is_complete_and_messages_are_kept_apart() -> None:
    frames = MessageAccumulator()
    frames.frames((AIMessageChunk(content="a", id="m1"), {}))
    out = frames.frames((ToolMessage(content="sunny", tool_call_id="c1", id="t1"), {"n": 1}))
    assert [name for name, _ in out] == ["messages/metadata", "messages/complete"]
    assert out[1][1][0].content == "sunny"
    again = frames.frames((AIMessageChunk(content="b", id="m1"), {}))
    assert [name for name, _ in again] == ["messages/partial"]
    assert again[0][1][0].content == "ab"


def test_dict_messages_and_non_messages() -> None:
    frames = MessageAccumulator()
    out = frames.frames(({"type": "human", "content": "hi", "id": "h1"}, {}))
    assert [name for name, _ in out] == ["messages/metadata", "messages/complete"]
    assert frames.frames((42, {})) == []
