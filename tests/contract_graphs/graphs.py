"""Graphs only the run-contract suite needs (served beside tests/graphs/ by the
suite's own server; see langgraph.json here)."""

from __future__ import annotations

import asyncio
import operator
import time
from typing import Annotated, TypedDict

from langgraph.graph import START, StateGraph


class LingerState(TypedDict, total=False):
    delay: float
    ticks: Annotated[int, operator.add]


async def linger_node(state: LingerState) -> dict:
    """An async node that ignores cancellation: it swallows CancelledError and keeps
    going until `delay` seconds have passed, then returns normally. A cancel recorded
    meanwhile stays recorded while the run is still `running`, and the graph's last
    step returns *after* the cancel landed."""
    deadline = time.monotonic() + state.get("delay", 1.0)
    while (left := deadline - time.monotonic()) > 0:
        try:
            await asyncio.sleep(left)
        except asyncio.CancelledError:
            continue
    return {"ticks": 1}


linger = StateGraph(LingerState).add_node("linger", linger_node).add_edge(START, "linger").compile()
