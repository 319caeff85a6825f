"""Demo graphs: plain Python, no API key, no network.

The chat agent (`agent` in langgraph.json) is the corpus's ReAct agent,
examples/agents/react_agent.py, reached through the `agents` link in this directory.
These are the toy graphs beside it:

- sleepy:  ticks `steps` times, sleeping `delay` seconds each (cancel me)
- emitter: emits `count` custom stream events
- trivial: two nodes that just count (throughput benchmarks)
"""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph


class TickState(TypedDict, total=False):
    steps: int
    delay: float
    ticks: Annotated[int, operator.add]


async def tick(state: TickState) -> dict:
    await asyncio.sleep(state.get("delay", 0.0))
    get_stream_writer()({"tick": state.get("ticks", 0) + 1})
    return {"ticks": 1}


def more(state: TickState) -> str:
    return "tick" if state.get("ticks", 0) < state.get("steps", 1) else END


sleepy = (
    StateGraph(TickState)
    .add_node("tick", tick)
    .add_edge(START, "tick")
    .add_conditional_edges("tick", more, ["tick", END])
    .compile()
)


class EmitState(TypedDict, total=False):
    count: int
    emitted: int


async def emit(state: EmitState) -> dict:
    write = get_stream_writer()
    count = state.get("count", 10)
    for i in range(count):
        write({"i": i})
    return {"emitted": count}


emitter = StateGraph(EmitState).add_node("emit", emit).add_edge(START, "emit").compile()


class CountState(TypedDict, total=False):
    n: int


def first(state: CountState) -> dict:
    return {"n": state.get("n", 0) + 1}


def second(state: CountState) -> dict:
    return {"n": state["n"] + 1}


trivial = (
    StateGraph(CountState)
    .add_node("first", first)
    .add_node("second", second)
    .add_edge(START, "first")
    .add_edge("first", "second")
    .compile()
)
