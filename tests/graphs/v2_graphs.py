"""Graphs for the v2 thread streaming protocol (`client.threads.stream`, tests/compat/
test_thread_stream_v2.py, tests/test_v2_reconnect.py).

On that protocol a run streams only the channels its graph's stream transformers ask
for (langgraph's `astream_events(version="v3")` derives the run's stream modes from
them): by default `values`, `messages`, `lifecycle` and `input`. The graphs here opt in
to every channel the protocol has (`updates`, `custom`, `tasks`, `checkpoints`,
`tools`) through compile-time transformers, which travel with the compiled graph, so
any server running it streams the same channels.

- `agent_v2`: the corpus's ReAct agent (examples/agents/react_agent.py: tool calls on
  the deterministic fake chat model), every channel on.
- `subgraph_v2`: the corpus's parent graph with two subgraphs, every channel on.
- `hitl_v2`: the corpus's agent whose tool calls `interrupt()`, every channel on.
- `ticker`: a toy graph that streams `count` custom events (`{"i": n}`, `delay`
  seconds apart) and returns the count: a long run to drop connections in. With
  `milestones: true` in its input every tenth event is also pushed on a user-defined
  channel, `custom:milestone` (`MilestoneTransformer`), so a `custom:<name>`
  subscription has something to filter. (Off by default: the reference server leaves
  such user-channel events out of what it replays, so every `seq` after one differs
  between the live stream and a replay, and a `since` resume there is off by one.)
"""

from __future__ import annotations

import asyncio
from typing import Any

from hitl_tool import graph as _hitl_graph
from langgraph.config import get_stream_writer
from langgraph.graph import START, StateGraph
from langgraph.prebuilt import ToolCallTransformer
from langgraph.stream._types import StreamTransformer
from langgraph.stream.stream_channel import StreamChannel
from langgraph.stream.transformers import (
    CheckpointsTransformer,
    CustomTransformer,
    TasksTransformer,
    UpdatesTransformer,
)
from react_agent import graph as _react_graph
from subgraph_agent import graph as _subgraph_graph
from typing_extensions import TypedDict

EVERY_CHANNEL = (UpdatesTransformer, CustomTransformer, TasksTransformer,
                 CheckpointsTransformer, ToolCallTransformer)


def every_channel(graph: Any, name: str) -> Any:
    """`graph` (compiled) streaming every channel of the v2 protocol."""
    extra = tuple(t for t in EVERY_CHANNEL if t not in graph.stream_transformers)
    return graph.copy(update={"stream_transformers": (*graph.stream_transformers, *extra),
                              "name": name})


agent_v2 = every_channel(_react_graph, "agent_v2")
subgraph_v2 = every_channel(_subgraph_graph, "subgraph_v2")
hitl_v2 = every_channel(_hitl_graph, "hitl_v2")


class TickState(TypedDict, total=False):
    count: int
    delay: float
    milestones: bool
    ticked: int


async def tick(state: TickState) -> dict[str, Any]:
    write = get_stream_writer()
    delay = state.get("delay", 0.01)
    count = state.get("count", 100)
    milestones = bool(state.get("milestones"))
    for i in range(count):
        write({"i": i, "milestone": True} if milestones and i % 10 == 0 else {"i": i})
        await asyncio.sleep(delay)
    return {"ticked": count}


class MilestoneTransformer(StreamTransformer):
    """Pushes the root custom events flagged `milestone` onto the `milestone` channel
    (on the wire: a `custom` event named `milestone`, payload `{"i": n}`)."""

    def __init__(self, scope: tuple[str, ...] = ()) -> None:
        super().__init__(scope)
        self._channel: StreamChannel[Any] = StreamChannel("milestone")
        self._scope = list(scope)

    def init(self) -> dict[str, Any]:
        return {"milestone": self._channel}

    def process(self, event: Any) -> bool:
        params = event["params"]
        data = params.get("data")
        if (event["method"] == "custom" and params["namespace"] == self._scope
                and isinstance(data, dict) and data.get("milestone")):
            self._channel.push({"i": data["i"]})
        return True


ticker = (StateGraph(TickState).add_node("tick", tick).add_edge(START, "tick")
          .compile(name="ticker", transformers=[*EVERY_CHANNEL, MilestoneTransformer]))
