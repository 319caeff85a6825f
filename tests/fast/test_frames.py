"""A run's event log keeps a `messages-tuple` frame's metadata once per message
(RunEventLog.publish_pair, streams/local.Frames): the bytes served, replayed and
filtered are exactly those of the plain encoding, and the shared part is one object."""

from __future__ import annotations

import datetime
import uuid

from langchain_core.messages import AIMessageChunk

from runlane.streams.local import RunEventLog


def _metadata(node: str) -> dict[str, object]:
    return {"langgraph_node": node, "langgraph_triggers": ("branch:to:" + node,),
            "checkpoint_ns": f"{node}:{uuid.uuid4()}", "ls_temperature": None,
            "run_id": uuid.uuid4()}


def _chunk(i: int) -> AIMessageChunk:
    """Token chunks as models stream them, some with what JSON writers differ on."""
    extra: dict[str, object] = {}
    if i % 5 == 1:
        extra = {"additional_kwargs": {"logprob": -0.1 * i, "big": 1e21, "tiny": 5e-324,
                                       "text": "é \u2028 \x00 😀", "nan": float("nan"),
                                       "when": datetime.datetime(2026, 12, 7, tzinfo=datetime.UTC),
                                       "id": uuid.UUID(int=i), "keys": {1: "one"}},
                 "response_metadata": {"model_name": "m", "finish_reason": None},
                 "usage_metadata": {"input_tokens": 3, "output_tokens": i,
                                    "total_tokens": 3 + i},
                 "tool_call_chunks": [{"name": "search", "args": '{"q": "x', "id": "c1",
                                       "index": 0}]}
    return AIMessageChunk(content=f" word{i}", id=f"lc_run--{i // 20}", **extra)


def _publish_both(plain: RunEventLog, paired: RunEventLog) -> None:
    first, second = _metadata("chat"), _metadata("tools")
    for i in range(30):
        meta = first if i < 20 else second
        chunk = _chunk(i)
        plain.publish("messages", [chunk, meta])
        paired.publish_pair("messages", chunk, meta)
        if i % 7 == 0:
            plain.publish("values", {"i": i})
            paired.publish("values", {"i": i})


def test_frames_are_the_plain_encodings_with_the_metadata_kept_once() -> None:
    plain, paired = RunEventLog(), RunEventLog()
    _publish_both(plain, paired)
    assert len(paired.frames) == len(plain.frames) == 35
    assert list(paired.frames) == list(plain.frames)
    assert paired.frames[10:20] == plain.frames[10:20]
    assert paired.frames[-1] == plain.frames[-1]
    assert paired.frames == plain.frames
    shared = {id(item[1]) for item in paired.frames._items if isinstance(item, tuple)}
    assert len(shared) == 2  # one metadata encoding per message, not one per token


async def test_replay_and_filtered_follow_serve_the_same_bytes() -> None:
    plain, paired = RunEventLog(), RunEventLog()
    _publish_both(plain, paired)
    plain.close()
    paired.close()
    for after, modes in ((0, None), (9, None), (3, frozenset({"messages"})),
                         (0, frozenset({"values"}))):
        got = b"".join([batch async for batch in paired.follow(after, modes)])
        want = b"".join([batch async for batch in plain.follow(after, modes)])
        assert got == want and got
