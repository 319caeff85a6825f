"""Graphs that use the server's store (langgraph BaseStore), for the store and cron tests."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_store
from langgraph.graph import START, StateGraph
from langgraph.store.base import BaseStore


class MemoryState(TypedDict, total=False):
    namespace: list[str]
    key: str
    write: dict  # put at (namespace, key) after reading it
    seen: dict | None  # the value found at (namespace, key) before writing
    seen_sync: dict | None  # the same, read through get_store() from a sync node
    log: str  # record this run under ("cron_log", log), keyed by run id
    delay: float  # seconds the run lasts


async def remember(state: MemoryState, config: RunnableConfig, *, store: BaseStore) -> dict:
    """Reads and writes through the store langgraph injects into the node."""
    update: dict = {}
    if state.get("namespace") and state.get("key"):
        item = await store.aget(tuple(state["namespace"]), state["key"])
        update["seen"] = None if item is None else item.value
        if state.get("write") is not None:
            await store.aput(tuple(state["namespace"]), state["key"], state["write"])
    if state.get("log"):
        metadata = config.get("metadata") or {}
        configurable = config["configurable"]
        await store.aput(("cron_log", state["log"]), str(configurable["run_id"]), {
            "fired_at": metadata.get("cron_fired_at"),
            "cron_id": metadata.get("cron_id"),
            "thread_id": configurable.get("thread_id"),
            # Who the run runs as (a cron's: its creator), as the graph sees it.
            "auth": {key: (dict(value) if isinstance(value, Mapping) else value)
                     for key, value in configurable.items()
                     if key.startswith("langgraph_auth_") or key == "user_id"},
        })
    await asyncio.sleep(state.get("delay", 0.0))
    return update


def remember_sync(state: MemoryState) -> dict:
    """A sync node (run in a thread) reading through get_store()."""
    if not (state.get("namespace") and state.get("key")):
        return {}
    item = get_store().get(tuple(state["namespace"]), state["key"])
    return {"seen_sync": None if item is None else item.value}


memory = (
    StateGraph(MemoryState)
    .add_node("remember", remember)
    .add_node("remember_sync", remember_sync)
    .add_edge(START, "remember")
    .add_edge("remember", "remember_sync")
    .compile()
)
