"""The `debug` stream mode's checkpoint events, shaped as the reference sends them,
and a `Send` encoded as the reference encodes it (in `events`)."""

from __future__ import annotations

from langgraph.types import Send

from runlane.executor.debug_mode import debug_event
from runlane.serde import to_jsonable

CONFIG = {"configurable": {"thread_id": "t1", "checkpoint_ns": "", "checkpoint_id": "c2",
                           "run_id": "r1"}}
PARENT = {"configurable": {"thread_id": "t1", "checkpoint_ns": "", "checkpoint_id": "c1"}}


def test_a_checkpoint_event_names_its_checkpoint_and_its_parent() -> None:
    event = {"type": "checkpoint", "step": 1, "payload": {
        "config": CONFIG, "parent_config": PARENT, "values": {"n": 1}, "next": ["b"],
        "tasks": [{"id": "x", "name": "b", "interrupts": [], "state": None}]}}
    shaped = debug_event(event)
    payload = shaped["payload"]
    assert payload["checkpoint"] == {"checkpoint_id": "c2", "thread_id": "t1",
                                     "checkpoint_ns": ""}
    assert payload["parent_checkpoint"] == {"checkpoint_id": "c1", "thread_id": "t1",
                                            "checkpoint_ns": ""}
    # Everything langgraph sent is still there (config and parent_config included).
    assert payload["config"] == CONFIG and payload["values"] == {"n": 1}
    assert payload["tasks"] == [{"id": "x", "name": "b", "interrupts": [], "state": None}]
    assert "checkpoint" not in event["payload"], "the event langgraph gave is not changed"


def test_the_first_checkpoint_has_no_parent_and_subgraph_tasks_name_theirs() -> None:
    subgraph = {"configurable": {"thread_id": "t1", "checkpoint_ns": "sub:1"}}
    shaped = debug_event({"type": "checkpoint", "step": -1, "payload": {
        "config": CONFIG, "parent_config": None, "tasks": [
            {"id": "s", "name": "sub", "interrupts": [], "state": subgraph}]}})
    assert shaped["payload"]["parent_checkpoint"] is None
    assert shaped["payload"]["tasks"] == [
        {"id": "s", "name": "sub", "interrupts": [], "checkpoint": subgraph["configurable"]}]


def test_other_debug_events_pass_unchanged() -> None:
    task = {"type": "task", "step": 1, "payload": {"id": "x", "name": "b", "input": {}}}
    assert debug_event(task) is task


def test_a_send_is_encoded_as_node_and_args() -> None:
    assert to_jsonable([Send("tools", {"q": 1})]) == [{"node": "tools", "args": {"q": 1}}]
