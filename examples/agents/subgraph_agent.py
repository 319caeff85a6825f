"""A parent graph with two subgraphs, so `stream_subgraphs=True` gives namespaced events.

- `researcher`: a compiled graph added as a node (it shares the `messages` key); its
  `think` node streams tokens from the fake model.
- `writer`: a compiled graph with its own state, invoked from inside the parent's
  `write` node; its `draft` node streams tokens too.
Events from them arrive as `values|researcher:<task id>`, `messages|write:<task id>|...`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fake_chat import FakeChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    report: str


async def think(state: State) -> dict[str, Any]:
    question = state["messages"][-1].content if state.get("messages") else ""
    reply = await FakeChatModel(token_delay=0.01).ainvoke([HumanMessage(str(question))])
    return {"messages": [AIMessage(f"Notes: {reply.content}", name="researcher")]}


researcher = (
    StateGraph(State).add_node("think", think).add_edge(START, "think").compile(name="researcher")
)


class WriterState(TypedDict, total=False):
    notes: str
    draft: str


async def draft(state: WriterState) -> dict[str, Any]:
    reply = await FakeChatModel(token_delay=0.01).ainvoke([HumanMessage(state["notes"])])
    return {"draft": f"Report. {reply.content}"}


writer = (
    StateGraph(WriterState).add_node("draft", draft).add_edge(START, "draft").compile(
        name="writer")
)


async def write(state: State) -> dict[str, Any]:
    notes = str(state["messages"][-1].content)
    result = await writer.ainvoke({"notes": notes})
    return {"report": result["draft"], "messages": [AIMessage(result["draft"])]}


graph = (
    StateGraph(State)
    .add_node("researcher", researcher)
    .add_node("write", write)
    .add_edge(START, "researcher")
    .add_edge("researcher", "write")
    .compile(name="subgraph_agent")
)
