"""When a server has started serving a server-sent event stream: its
`runlane_sse_streams` gauge, summed over a deployment's workers, counts the stream
from the moment its body is first iterated (responses.EventStream), just before
the thread stream reads where it starts. Tests that must be subscribed before
something happens wait for that instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
import time
import warnings
from typing import Any

import httpx


async def sse_streams(server: Any) -> float:
    """Streams the deployment is serving now (every worker's gauge, added up)."""
    total = 0.0
    # A secured server's /metrics needs the operator's token (tests/auth_support.py).
    headers = getattr(server, "metrics_headers", None)
    async with httpx.AsyncClient(timeout=30, headers=headers) as http:
        for url in getattr(server, "urls", None) or [server.url]:
            for line in (await http.get(f"{url}/metrics")).text.splitlines():
                if line.startswith("runlane_sse_streams "):
                    total += float(line.rsplit(" ", 1)[1])
    return total


async def streams_opened(server: Any, before: float, count: int = 1,
                         timeout: float = 10.0) -> None:
    """Until `count` more streams than `before` (read before opening them) are served.

    A stream of an earlier test that ends meanwhile lowers the sum: a drop below
    `before` is taken as one, but an end and an open between two reads cancel out,
    so after `timeout` this carries on with a warning, as the fixed wait it replaces
    always carried on (after 0.5 s; the timeout is far longer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = await sse_streams(server)
        if now >= before + count:
            return
        before = min(before, now)
        await asyncio.sleep(0.05)
    warnings.warn(f"{count} new SSE stream(s) not seen within {timeout}s; carrying on",
                  stacklevel=2)
