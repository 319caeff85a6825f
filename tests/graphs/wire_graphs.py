"""Graphs for tests/test_http_wire.py, served from a langgraph.json of that test's own."""

from __future__ import annotations

import asyncio
from typing import TypedDict

from langgraph.graph import START, StateGraph


class LateState(TypedDict, total=False):
    delay: float


async def fail_late(state: LateState) -> dict:
    await asyncio.sleep(state.get("delay", 1.0))
    raise ValueError("failed after the wait's headers were sent")


# Works `delay` seconds, then raises: a run that fails long after it started.
late_failure = (
    StateGraph(LateState).add_node("fail", fail_late).add_edge(START, "fail").compile()
)
