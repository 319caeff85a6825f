"""Helpers shared by the end-to-end run-contract suites (test_cancel_contract and
test_cancel_contract_linger, test_multitask and test_max_concurrency, test_streaming,
test_join_wait, test_hitl, test_restart).

Everything here talks to a real `runlane serve` process over HTTP, through the
official `langgraph_sdk` client or raw httpx (where a status code or raw body
matters). Polling helpers fail with a message naming what never happened.
"""

from __future__ import annotations

import asyncio
import datetime
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

# A langgraph.json serving the standard test graphs plus `linger` (an async node
# that ignores cancellation), for the cases that need a cancelled run to stay
# `running` for a while.
CONTRACT_CONFIG = Path(__file__).parent / "contract_graphs" / "langgraph.json"

ACTIVE = frozenset({"pending", "running"})
TERMINAL = frozenset({"success", "error", "timeout", "interrupted"})

# The `wait` spellings a cancel accepts: the SDK sends 1/0, browsers true/false.
WAIT_SPELLINGS = [("1", True), ("0", False), ("true", True), ("false", False)]
ACTIONS = ["interrupt", "rollback"]

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]], *, what: str, timeout: float = 15.0,
    interval: float = 0.02,
) -> T:
    """Poll `probe` until it returns something truthy; that value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while True:
        last = await probe()
        if last:
            return last
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        await asyncio.sleep(interval)


def status_of(exc: BaseException) -> int | None:
    return exc.response.status_code if isinstance(exc, httpx.HTTPStatusError) else None


async def get_run(client: Any, thread_id: str, run_id: str) -> dict | None:
    """The run as the server holds it, or None when it answers 404 (removed)."""
    try:
        return await client.runs.get(thread_id, run_id)
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code == 404:
            return None
        raise


async def wait_final(client: Any, thread_id: str, run_id: str,
                     timeout: float = 15.0) -> dict | None:
    """Poll until the run is terminal (its row) or removed (None)."""

    async def probe() -> tuple[dict | None] | None:
        run = await get_run(client, thread_id, run_id)
        if run is None or run["status"] in TERMINAL:
            return (run,)
        return None

    return (await eventually(probe, what=f"run {run_id} to finish", timeout=timeout))[0]


async def wait_status(client: Any, thread_id: str, run_id: str, status: str,
                      timeout: float = 15.0) -> dict:
    async def probe() -> dict | None:
        run = await get_run(client, thread_id, run_id)
        assert run is not None, f"run {run_id} vanished while waiting for {status}"
        if run["status"] != status and run["status"] in TERMINAL:
            raise AssertionError(f"run {run_id} ended {run['status']} instead of {status}: {run}")
        return run if run["status"] == status else None

    return await eventually(probe, what=f"run {run_id} to be {status}", timeout=timeout)


async def wait_ticks(client: Any, thread_id: str, at_least: int, timeout: float = 15.0) -> dict:
    """Wait until the thread's checkpointed state has `ticks >= at_least` (sleepy)."""

    async def probe() -> dict | None:
        state = await client.threads.get_state(thread_id)
        return state if (state["values"] or {}).get("ticks", 0) >= at_least else None

    return await eventually(probe, what=f"thread {thread_id} to reach {at_least} ticks",
                            timeout=timeout)


async def snapshot(client: Any, thread_id: str) -> dict:
    """What a rollback must restore exactly: current values, and every checkpoint."""
    state = await client.threads.get_state(thread_id)
    history = await client.threads.get_history(thread_id, limit=1000)
    return {
        "values": state["values"],
        "next": state["next"],
        "checkpoint_id": state["checkpoint_id"],
        "history": [h["checkpoint_id"] for h in history],
    }


async def history_run_ids(client: Any, thread_id: str) -> list[str]:
    """The run id that wrote each checkpoint of the thread, oldest first."""
    history = await client.threads.get_history(thread_id, limit=1000)
    return [h["metadata"].get("run_id") for h in reversed(history)]


def parse_ts(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value)


async def run_span(client: Any, thread_id: str,
                   run_id: str) -> tuple[datetime.datetime, datetime.datetime]:
    """When a run executed, as its thread's checkpoints tell: the first and the last
    checkpoint it wrote (a lower bound of its started..ended interval)."""
    history = await client.threads.get_history(thread_id, limit=1000)
    stamps = sorted(parse_ts(h["created_at"]) for h in history
                    if h["metadata"].get("run_id") == run_id)
    assert stamps, f"run {run_id} wrote no checkpoint on thread {thread_id}"
    return stamps[0], stamps[-1]


def cancel_url(thread_id: str, run_id: str) -> str:
    return f"/threads/{thread_id}/runs/{run_id}/cancel"


# Lines the server logs when a request or a run failed inside runlane (a 500, an
# exception escaping a streaming response, a run that could not be finalized, a run
# that became startable without waking the dispatcher).
SERVER_FAILURES = ("unexpected error on", "Exception in ASGI application",
                   "finalizing run", "Traceback", "a wake-up was missed")


# A run whose graph raised logs its status change with the graph's traceback after it
# (up to the next log line): a failure of the graph, not of runlane.
_GRAPH_ERROR = re.compile(
    r"running -> error \(graph_error[^\n]*\n(?:(?!\d{4}-\d\d-\d\d )[^\n]*\n)*")


def without_graph_tracebacks(logged: str) -> str:
    return _GRAPH_ERROR.sub("", logged)


def assert_no_server_failures(logged: str) -> None:
    """Invariant 6 (no 5xx): nothing in this server log says runlane failed inside."""
    logged = without_graph_tracebacks(logged)
    failures = [line for line in logged.splitlines()
                if any(marker in line for marker in SERVER_FAILURES)]
    assert not failures, "the server logged internal failures:\n" + logged[-5000:]
