"""Graphs for the langgraph.json store/checkpointer tests: `recall` searches the store
by meaning from a node (the run's `runtime.store`, and the `store` langgraph injects
into a sync node); `steps` writes a few checkpoints per run (for checkpointer.ttl's
keep_latest)."""

from __future__ import annotations

from typing import TypedDict

from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime
from langgraph.store.base import BaseStore


class RecallState(TypedDict, total=False):
    namespace: list[str]
    query: str
    found: list[dict]  # [{"key", "score"}], best first: runtime.store.asearch
    found_sync: list[dict]  # the same through the injected store, from a sync node


def _hits(items: list) -> list[dict]:
    return [{"key": item.key, "score": item.score} for item in items]


async def search(state: RecallState, runtime: Runtime) -> dict:
    assert runtime.store is not None
    items = await runtime.store.asearch(tuple(state["namespace"]), query=state["query"])
    return {"found": _hits(items)}


def search_sync(state: RecallState, *, store: BaseStore) -> dict:
    return {"found_sync": _hits(store.search(tuple(state["namespace"]), query=state["query"]))}


recall = (
    StateGraph(RecallState)
    .add_node("search", search)
    .add_node("search_sync", search_sync)
    .add_edge(START, "search")
    .add_edge("search", "search_sync")
    .compile()
)


class StepsState(TypedDict, total=False):
    count: int


def one(state: StepsState) -> dict:
    return {"count": state.get("count", 0) + 1}


def two(state: StepsState) -> dict:
    return {"count": state["count"] + 1}


steps = (
    StateGraph(StepsState)
    .add_node("one", one)
    .add_node("two", two)
    .add_edge(START, "one")
    .add_edge("one", "two")
    .compile()
)
