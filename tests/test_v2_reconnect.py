"""Reconnecting to the v2 thread event stream (`/threads/{id}/stream/events`, SSE and
WebSocket) at random points of a long run, resuming with `since`: nothing lost,
nothing repeated, whichever worker serves the reconnect.

The run is `ticker` (tests/graphs/v2_graphs.py): `COUNT` custom events `{"i": n}`
streamed while the client drops its connection after a random number of events
(none, one, dozens; the SSE by closing the response mid-stream, the WebSocket by a
close handshake or by aborting its TCP connection) and reconnects with the last seq it
received. Every repetition asserts that the custom events arrived exactly once, in
order (`i` = 0..COUNT-1), that seqs only grow, and that the pieces put together equal
one uninterrupted replay of the run. Random choices come from a seed printed with
each failure (RUNLANE_V2_SEED=<seed> replays one).

On both backends like the other end-to-end tests; on the cluster the SDK's client
sends each request to the next worker, and each WebSocket goes to a worker of its own.
RUNLANE_V2_URL runs them against another server (tests/v2_external.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import uuid
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect

from compat.v2_support import (
    WsSession,
    command,
    is_root_end,
    read_sse,
    root_ends,
    sse_events,
    ws_url,
)
from v2_external import EXTERNAL

COUNT = 300  # custom events per run
DELAY = 0.004  # seconds between them: a run of a few seconds
REPETITIONS = 5
CHANNELS = ["custom", "lifecycle"]
SEED = os.environ.get("RUNLANE_V2_SEED")

if EXTERNAL:
    from v2_external import client, server  # noqa: F401 - the conftest's, overridden


def untimed(events: list[dict]) -> list[dict]:
    return [{**e, "params": {k: v for k, v in e["params"].items() if k != "timestamp"}}
            for e in events]


async def _start(client: Any) -> tuple[httpx.AsyncClient, str]:
    """A ticker run on a fresh thread."""
    http = client.http.client
    thread_id = str(uuid.uuid4())
    answer = await command(http, thread_id, "run.start", {
        "assistant_id": "ticker", "input": {"count": COUNT, "delay": DELAY}})
    assert answer["type"] == "success", answer
    return http, thread_id


def _assert_completed(received: list[dict]) -> None:
    end = received[-1]
    assert is_root_end(end, ("completed",)), f"the ticker run did not complete: {end}"


def _check(received: list[dict], replay: list[dict], seed: int, drops: int) -> None:
    where = f"(seed {seed}, {drops} drops)"
    seqs = [e["seq"] for e in received]
    assert seqs == sorted(set(seqs)), f"a seq repeated or went back {where}: {seqs}"
    ticks = [e["params"]["data"]["i"] for e in received if e["method"] == "custom"]
    missing = sorted(set(range(COUNT)) - set(ticks))
    assert ticks == list(range(COUNT)), (
        f"custom events lost or repeated {where}: missing {missing[:20]}, "
        f"{len(ticks)} received")
    assert untimed(received) == untimed(replay), f"pieces differ from one replay {where}"


async def _sse_piece(http: httpx.AsyncClient, thread_id: str, since: int | None,
                     budget: int, received: list[dict]) -> bool:
    """Read up to `budget` events after `since`, then drop the connection. Whether the
    run's end was seen."""
    body: dict[str, Any] = {"channels": CHANNELS}
    if since is not None:
        body["since"] = since
    async with http.stream("POST", f"/threads/{thread_id}/stream/events", json=body,
                           timeout=httpx.Timeout(60, read=60)) as response:
        assert response.status_code == 200, (await response.aread())[:300]
        if budget == 0:
            return False  # dropped right after the answer's head
        read = 0
        async with contextlib.aclosing(sse_events(response)) as arriving:
            async for event in arriving:
                received.append(event)
                read += 1
                if is_root_end(event):
                    return True
                if read >= budget:
                    return False  # leaving the block closes the connection mid-stream
    raise AssertionError("the stream ended without the run's end")


@pytest.mark.parametrize("repetition", range(REPETITIONS))
async def test_sse_drops_and_resumes_with_since(client, repetition):
    seed = int(SEED) if SEED else random.randrange(1 << 30)
    rng = random.Random(seed)
    http, thread_id = await _start(client)
    received: list[dict] = []
    drops = 0
    while True:
        since = received[-1]["seq"] if received else None
        budget = rng.choice([0, 1, 2, rng.randint(3, 20), rng.randint(20, 90)])
        if await asyncio.wait_for(_sse_piece(http, thread_id, since, budget, received), 90):
            break
        drops += 1
        if rng.random() < 0.3:
            await asyncio.sleep(rng.uniform(0, 0.2))  # events pile up while away
    _assert_completed(received)
    assert drops >= 3, f"the run ended before the harness dropped anything (seed {seed})"
    replay = await read_sse(http, thread_id, {"channels": CHANNELS}, until=root_ends())
    _check(received, replay, seed, drops)


async def _reconnect(ws: WsSession, since: int) -> dict[str, Any]:
    """`subscription.reconnect` from `since`. The reference binds a socket to the
    thread's run only once the run's first event reached it, and answers `no_such_run`
    until then (unlike `subscription.subscribe`, which it buffers): retried, briefly."""
    for _ in range(100):
        answer = await ws.send("subscription.reconnect", {"channels": CHANNELS, "since": since})
        if answer.get("error") != "no_such_run":
            return answer
        await asyncio.sleep(0.02)
    return answer


async def _ws_piece(url: str, thread_id: str, since: int | None, budget: int,
                    received: list[dict], abort: bool) -> bool:
    # max_queue=None: the client leaves most pieces with events unread, and with a
    # bounded queue websockets stops reading the socket, so it would not see the
    # server's close frame and wait out its close_timeout (10 s) on every clean close.
    async with ws_connect(ws_url(url, thread_id), max_queue=None) as websocket:
        ws = WsSession(websocket)
        if since is None:
            answer = await ws.send("subscription.subscribe", {"channels": CHANNELS})
        else:
            answer = await _reconnect(ws, since)
        assert answer["type"] == "success", answer
        ended = False
        try:
            events = await ws.read_until(
                lambda evs: len(evs) >= budget or any(is_root_end(e) for e in evs), 60)
            events = events[:budget] if budget else []
            # what arrived past the budget is dropped with the connection, unread
            ended = any(is_root_end(e) for e in events)
            if ended:
                events = events[:next(i for i, e in enumerate(events) if is_root_end(e)) + 1]
            received.extend(events)
        finally:
            if abort:
                websocket.transport.abort()  # no close handshake: the TCP connection drops
        return ended


@pytest.mark.parametrize("repetition", range(REPETITIONS))
async def test_websocket_drops_and_resumes_with_since(client, server, repetition):
    seed = int(SEED) if SEED else random.randrange(1 << 30)
    rng = random.Random(seed)
    http, thread_id = await _start(client)
    urls = list(getattr(server, "urls", None) or [server.url])
    received: list[dict] = []
    drops = 0
    while True:
        since = received[-1]["seq"] if received else None
        budget = rng.choice([1, 2, rng.randint(3, 20), rng.randint(20, 90)])
        piece = _ws_piece(rng.choice(urls), thread_id, since, budget, received,
                          abort=rng.random() < 0.5)
        if await asyncio.wait_for(piece, 90):
            break
        drops += 1
        if rng.random() < 0.3:
            await asyncio.sleep(rng.uniform(0, 0.2))
    _assert_completed(received)
    assert drops >= 3, f"the run ended before the harness dropped anything (seed {seed})"
    replay = await read_sse(http, thread_id, {"channels": CHANNELS}, until=root_ends())
    _check(received, replay, seed, drops)
