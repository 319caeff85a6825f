"""Map-reduce: fan out one `Send` per topic, write each in parallel, combine with a reducer.

Input: {"topics": ["cats", "dogs", "owls"]} (these three when none are given).
Output: `notes` (one per topic, gathered by the `operator.add` reducer) and `summary`
(the notes in topic order, joined). Each writer streams its note through the fake model.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any

from fake_chat import FakeChatModel
from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from typing_extensions import TypedDict

DEFAULT_TOPICS = ["cats", "dogs", "owls"]


class State(TypedDict, total=False):
    topics: list[str]
    notes: Annotated[list[str], operator.add]
    summary: str


class TopicState(TypedDict):
    topic: str


def fan_out(state: State) -> list[Send]:
    return [Send("write_note", {"topic": t}) for t in state.get("topics") or DEFAULT_TOPICS]


async def write_note(state: TopicState) -> dict[str, Any]:
    reply = await FakeChatModel(token_delay=0.01).ainvoke([HumanMessage(state["topic"])])
    return {"notes": [f"{state['topic']}: {reply.content}"]}


def combine(state: State) -> dict[str, Any]:
    order = state.get("topics") or DEFAULT_TOPICS
    # Parallel writers finish in any order; the summary follows the topics' order.
    notes = sorted(state.get("notes", []), key=lambda n: order.index(n.split(":", 1)[0]))
    return {"summary": " | ".join(notes)}


graph = (
    StateGraph(State)
    .add_node("write_note", write_note)
    .add_node("combine", combine)
    .add_conditional_edges(START, fan_out, ["write_note"])
    .add_edge("write_note", "combine")
    .add_edge("combine", END)
    .compile(name="map_reduce")
)
