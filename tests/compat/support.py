"""Small helpers the compat tests share."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable
from typing import Any, Self

import httpx
import pytest

TERMINAL = {"success", "error", "timeout", "interrupted"}


def tag() -> str:
    """A value unique to one test, for metadata filters: both servers keep every
    other test's rows, so a search must only ever match what this test created."""
    return uuid.uuid4().hex


async def status_of(call: Awaitable[Any]) -> int:
    """The HTTP status of an SDK call expected to fail (the SDK raises for non-2xx)."""
    with pytest.raises(httpx.HTTPStatusError) as info:
        await call
    return info.value.response.status_code


async def wait_terminal(client: Any, thread_id: str, run_id: str, timeout: float = 30) -> dict:
    """The run once it is terminal (polling `runs.get`)."""
    deadline = time.monotonic() + timeout
    while True:
        run = await client.runs.get(thread_id, run_id)
        if run["status"] in TERMINAL:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {run['status']} after {timeout}s")
        await asyncio.sleep(0.05)


async def wait_until(predicate: Any, timeout: float = 30, every: float = 0.1) -> Any:
    """Poll the async `predicate` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(every)


async def collect(stream: Any, limit: int = 10_000) -> list[Any]:
    """Every part of an SDK stream (which ends when the run ends)."""
    parts = []
    async for part in stream:
        parts.append(part)
        if len(parts) >= limit:
            break
    return parts


async def default_assistant(client: Any, graph_id: str) -> dict:
    """The assistant the server made for `graph_id` (routes other than runs take only
    an assistant's UUID on the reference server, not the graph's name)."""
    found = await client.assistants.search(graph_id=graph_id, metadata={"created_by": "system"})
    assert len(found) == 1, f"expected one default assistant for {graph_id}, found {found}"
    return found[0]


class WebhookReceiver:
    """A local HTTP endpoint that records the JSON bodies POSTed to it (a webhook
    target on 127.0.0.1, in a thread of the test process)."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("content-length") or 0)
                received.append(json.loads(self.rfile.read(size) or b"null"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
