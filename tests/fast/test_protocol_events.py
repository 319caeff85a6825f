"""The v2 protocol's pure parts: filters, namespaces, the state shape, and one run's
events made from its log (deterministic: what makes `since` exact on any worker)."""

from __future__ import annotations

import pytest

from runlane.service.protocol_events import RunEvents
from runlane.service.protocol_wire import (
    Filter,
    ProtocolInputError,
    is_prefix,
    parse_filter,
    parse_since,
    state_payload,
)


def event(method: str, namespace: list[str], data: object) -> dict:
    return {"type": "event", "method": method, "params": {"namespace": namespace, "data": data}}


def test_filters_by_channel_custom_name_namespace_and_depth() -> None:
    flt = Filter(frozenset({"values", "custom:progress"}), (("agent",),), 1)
    assert flt.matches(event("values", ["agent:1"], {}))
    assert flt.matches(event("values", ["agent:1", "tools:2"], {}))
    assert not flt.matches(event("values", ["agent:1", "tools:2", "x"], {}))  # too deep
    assert not flt.matches(event("values", [], {}))  # outside the prefix
    assert not flt.matches(event("updates", ["agent:1"], {}))
    assert flt.matches(event("custom", ["agent"], {"name": "progress", "payload": 1}))
    assert not flt.matches(event("custom", ["agent"], {"name": "other", "payload": 1}))
    assert Filter(frozenset({"input"})).matches(event("input.requested", [], {}))
    assert is_prefix(["a:1", "b"], ("a",)) and not is_prefix(["a:1"], ("a:2",))


@pytest.mark.parametrize(("body", "says"), [
    (None, "JSON object"), ({}, "channels"), ({"channels": []}, "channels"),
    ({"channels": ["values", 3]}, "unsupported channels: 3"),
    ({"channels": ["debug"]}, "debug"), ({"channels": ["custom:"]}, "custom:"),
    ({"channels": ["values"], "namespaces": [["a", 1]]}, "namespaces"),
    ({"channels": ["values"], "depth": True}, "depth"),
    ({"channels": ["values"], "depth": -1}, "depth"),
])
def test_bad_filters_say_what_is_accepted(body: object, says: str) -> None:
    with pytest.raises(ProtocolInputError, match=says):
        parse_filter(body, "the request")


def test_since() -> None:
    assert parse_since(None, "x") is None and parse_since(0, "x") == 0
    for bad in (True, -1, "3", 1.5):
        with pytest.raises(ProtocolInputError, match="since"):
            parse_since(bad, "x")


def test_state_payload_is_the_protocols_shape() -> None:
    state = {"messages": [
        {"type": "human", "content": "hi", "id": "1", "additional_kwargs": {},
         "response_metadata": {}, "name": None},
        {"type": "ai", "content": [{"type": "text", "text": "yo"}, {"type": "weird"}],
         "id": "2", "tool_calls": [{"name": "f", "args": "{\"x\": 1}", "id": "c"}],
         "invalid_tool_calls": []},
    ], "__interrupt__": [{"id": "i"}], "n": 1}
    assert state_payload(state) == {"messages": [
        {"type": "human", "content": "hi", "id": "1"},
        {"type": "ai", "content": [{"type": "text", "text": "yo"},
                                   {"type": "non_standard", "value": {"type": "weird"}}],
         "id": "2", "tool_calls": [{"type": "tool_call", "name": "f", "args": {"x": 1},
                                    "id": "c"}]},
    ], "n": 1}


LOG = [
    (2, "values", {"namespace": [], "timestamp": 5, "data": {"n": 0}, "interrupts": []}),
    (3, "lifecycle|sub:1", {"namespace": [], "timestamp": 6,
                            "data": {"event": "started", "namespace": ["sub:1"],
                                     "graph_name": "sub"}}),
    (4, "messages|sub:1", {"namespace": ["sub:1"], "timestamp": 7,
                           "data": {"event": "message-start", "role": "ai", "id": "m"}}),
    (5, "custom:progress", {"namespace": [], "timestamp": 8, "data": 50}),
    (6, "values", {"namespace": [], "timestamp": 9, "data": {"n": 1},
                   "interrupts": [{"id": "q", "value": "ok?"}]}),
]


def run_events() -> list[dict]:
    events = RunEvents("r", "graph")
    out = events.start(1)
    for frame_id, name, data in LOG:
        out += events.frame(frame_id, name, data, 1)
    return out + events.finish("success", 10)


def test_a_runs_events_are_deterministic_and_shaped() -> None:
    first, again = run_events(), run_events()
    assert first == again
    assert [(e["method"], e["params"]["namespace"], e["event_id"]) for e in first] == [
        ("lifecycle", [], "r:lifecycle:running"),
        ("values", [], "r:2"),
        ("lifecycle", ["sub:1"], "r:3"),
        ("messages", ["sub:1"], "r:4"),
        ("custom", [], "r:5"),
        ("input.requested", [], "r:input::q"),
        ("lifecycle", [], "r:lifecycle::interrupted"),
        ("values", [], "r:6"),
    ]
    assert first[4]["params"]["data"] == {"name": "progress", "payload": 50}
    assert first[5]["params"]["data"] == {"interrupt_id": "q", "payload": "ok?"}
    # An interrupt ended the root already: the run's success adds nothing.
    assert first[-1]["params"]["data"] == {"n": 1}


def test_a_cancelled_run_ends_interrupted_with_its_reason_after_its_subgraphs() -> None:
    events = RunEvents("r", "graph")
    events.start(1)
    events.frame(2, "lifecycle|a:1", {"namespace": [], "timestamp": 2, "data": {
        "event": "started", "namespace": ["a:1"], "graph_name": "a"}}, 1)
    end = events.finish("interrupted", 3, cancel_reason="user")
    assert [(e["params"]["namespace"], e["params"]["data"]["event"]) for e in end] == [
        (["a:1"], "completed"), ([], "interrupted")]
    assert end[-1]["params"]["data"]["error"] == "run cancelled (user)"
    assert events.finish("interrupted", 4) == []  # once
