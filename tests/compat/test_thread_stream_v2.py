"""The v2 thread streaming protocol (`client.threads.stream(...)` of langgraph_sdk 0.4.14:
`POST /threads/{id}/commands`, `POST /threads/{id}/stream/events`, and a WebSocket on
the events path), with real-shaped agents, on every server.

The agents are the corpus's (examples/agents) with every protocol channel switched on
(tests/graphs/v2_graphs.py: on this protocol a run streams only the channels its
graph's stream transformers ask for). What the tests hold a server to:
- a run started with `run.start` streams its channels (values, updates, messages as
  content blocks, tools, custom and `custom:<name>`, lifecycle, input) in order, with
  seqs strictly increasing and unique event ids, and its output is the thread's state;
- the SSE and the WebSocket transports carry the same frames;
- `namespaces`/`depth` filters carry exactly the unfiltered stream's matching events;
- `since=k` carries exactly the events after seq k;
- an interrupt shows on `input`, `input.respond` answers it and the run resumes;
- `run.start` while a run is active queues (the default multitask strategy): never
  two runs of the thread at once, the second's events after the first's end;
- `agent.getTree` (WebSocket) reports the run's subgraphs;
- bad input (unknown command or channel, malformed command, a `since` from the
  future) answers the protocol's error shape or a 4xx, never a 500 or a hang.
`test_v2_agent_frames` compares whole runs frame by frame with the record taken from
the reference (thread_stream_frames.json; `RUNLANE_COMPAT_REFERENCE=1
RUNLANE_COMPAT_RECORD=1` rewrites it).

Facts about the reference these tests rely on (langgraph-api 0.16.7): the `tasks` and
`checkpoints` channels are accepted but carry nothing for these graphs; events pushed
on a user-defined transformer channel (`custom:<name>`) are live-only, left out of a
replay, so `ticker` runs its milestones only where a test asks for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect

from compat.support import wait_until
from compat.v2_support import (
    ALL_CHANNELS,
    WsSession,
    channel_of,
    command,
    frame_diff,
    frames,
    is_root_end,
    lifecycle_phase,
    read_sse,
    root_ends,
    selected,
    through_seq,
    ws_url,
)

GOLDEN = Path(__file__).parent / "thread_stream_frames.json"
RECORD = os.environ.get("RUNLANE_COMPAT_RECORD") == "1"
PARIS = {"messages": [{"role": "user", "content": "What's the weather in Paris?"}]}
HELLO = {"messages": [{"role": "user", "content": "hello"}]}
TRANSFER = {"messages": [{"role": "user", "content": "transfer 50 to Alice"}]}
PARIS_ANSWER = "Here is what I found. get_weather: sunny, 21 °C in Paris"



def http_of(client: Any) -> Any:
    """The SDK's own httpx client (base URL, headers and, on the cluster, the
    round-robin transport): raw protocol requests go where the SDK's go."""
    return client.http.client


@contextlib.asynccontextmanager
async def background(coro: Any) -> AsyncIterator[asyncio.Task]:
    """`coro` as a task for the block; cancelled and awaited on the way out, so a test
    that fails early (a 501) leaves no task behind to fail later."""
    task = asyncio.create_task(coro)
    await asyncio.sleep(0)  # let it start (an SDK subscription registers)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


def subscribed(session: Any, channels: list[str], until: Any, timeout: float = 60,
               **filters: Any) -> Any:
    """Subscribe through the SDK (before the run starts): a task, for the block, that
    collects events until `until(events)`."""
    events: list[dict] = []
    stream = session.subscribe(channels, **filters)

    async def run() -> list[dict]:
        async for event in stream:
            events.append(event)
            if until(events):
                return events
        raise AssertionError(f"the subscription ended early: {[e['method'] for e in events]}")

    return background(asyncio.wait_for(run(), timeout))


def text_of(events: list[dict], namespace: list[str] | None = None) -> list[str]:
    """The texts the `messages` channel streamed (deltas joined per message)."""
    texts: list[str] = []
    for e in events:
        if e["method"] != "messages" or (namespace is not None
                                         and e["params"]["namespace"] != namespace):
            continue
        data = e["params"]["data"]
        if data["event"] == "message-start":
            texts.append("")
        elif data["event"] == "content-block-delta" and data["delta"].get("type") == "text-delta":
            texts[-1] += data["delta"]["text"]
    return [t for t in texts if t]


def untimed(events: list[dict]) -> list[dict]:
    """Events without their timestamps (a replay stamps synthesized events anew)."""
    return [{**e, "params": {k: v for k, v in e["params"].items() if k != "timestamp"}}
            for e in events]


async def full_replay(client: Any, thread_id: str, runs: int = 1) -> list[dict]:
    """Every event of the thread's runs (all channels) from a fresh connection."""
    return await read_sse(http_of(client), thread_id, {"channels": ALL_CHANNELS},
                          until=root_ends(runs))


# ------------------------------------------------------------------ channels



@pytest.mark.compat("thread-stream", "threads.stream", "v2.run.start")
async def test_v2_agent_tool_calls_every_channel(client):
    async with client.threads.stream(assistant_id="agent_v2") as session:
        async with subscribed(session, ALL_CHANNELS, root_ends()) as task:
            started = await session.run.start(input=PARIS)
            uuid.UUID(started["run_id"])
            events = await task
        output = await session.output.with_timeout(60)
        thread_id = session.thread_id

    frames(events)  # seqs strictly increasing, event ids unique
    assert events[0]["method"] == "lifecycle" and lifecycle_phase(events[0]) == "running"
    assert is_root_end(events[-1], ("completed",))
    methods = {e["method"] for e in events}
    assert {"values", "updates", "messages", "tools", "lifecycle"} <= methods

    # messages: content blocks, a tool call then the answer
    blocks = [e["params"]["data"] for e in events if e["method"] == "messages"
              and not e["params"]["namespace"]]
    assert blocks[0]["event"] == "message-start"
    finished = [b["content"] for b in blocks if b["event"] == "content-block-finish"]
    assert finished[0] == {"type": "tool_call", "id": finished[0]["id"], "name": "get_weather",
                           "args": {"city": "Paris"}}
    assert finished[-1] == {"type": "text", "text": PARIS_ANSWER}
    assert text_of(events, []) == [PARIS_ANSWER]
    # tools: the call's start and its result
    tools = [e["params"]["data"] for e in events if e["method"] == "tools"]
    assert [t["event"] for t in tools] == ["tool-started", "tool-finished"]
    assert tools[0]["tool_name"] == "get_weather" and tools[0]["input"] == {"city": "Paris"}
    assert tools[1]["output"]["content"] == "sunny, 21 °C in Paris"
    # updates: the nodes in the order they ran
    updates = [e["params"]["data"] for e in events if e["method"] == "updates"
               and not e["params"]["namespace"]]
    assert [list(u) for u in updates] == [["agent"], ["tools"], ["agent"]]
    # values: the last is the output, and the thread's state
    values = [e["params"]["data"] for e in events if e["method"] == "values"
              and not e["params"]["namespace"]]
    def brief(state: dict) -> list[tuple[str, Any]]:
        return [(m["type"], m["content"]) for m in state["messages"]]

    assert brief(values[-1]) == brief(output)
    assert [m["type"] for m in output["messages"]] == ["human", "ai", "tool", "ai"]
    state = await client.threads.get_state(thread_id)
    assert [m["type"] for m in state["values"]["messages"]] == ["human", "ai", "tool", "ai"]
    runs = await client.runs.list(thread_id)
    assert [(r["run_id"], r["status"]) for r in runs] == [(started["run_id"], "success")]


@pytest.mark.compat("thread-stream", "threads.stream", "v2.run.start", "v2.subscription.subscribe")
async def test_v2_websocket_carries_the_same_frames(client):
    """The same agent run over the WebSocket transport and over SSE: the same frames."""
    by_transport = {}
    for transport in ("sse", "websocket"):
        async with client.threads.stream(assistant_id="agent_v2",
                                         transport=transport) as session:
            async with subscribed(session, ALL_CHANNELS, root_ends()) as task:
                await session.run.start(input=PARIS)
                by_transport[transport] = frames(await task)
            assert (await session.output.with_timeout(60))["messages"][-1]["content"][0][
                "text"] == PARIS_ANSWER
    assert not frame_diff(by_transport["sse"], by_transport["websocket"]), frame_diff(
        by_transport["sse"], by_transport["websocket"])


@pytest.mark.compat("thread-stream", "threads.stream", "v2.run.start")
async def test_v2_custom_and_named_custom_channels(client):
    """`custom` carries every custom event, `custom:<name>` only that name's. The named
    subscription is a connection of its own, open before the run starts: two SDK
    subscriptions in one session share one stream, and whichever opens second rotates
    it with `since` at what the first has already seen, so on a server that streams
    the whole (short) run before the second opens, the second sees nothing of its own
    channels from before that cursor (the SDK's rotation, not either server)."""
    async with client.threads.stream(assistant_id="ticker") as session:
        opened = asyncio.Event()
        named = asyncio.create_task(read_sse(
            http_of(client), session.thread_id,
            {"channels": ["custom:milestone", "lifecycle"]}, until=root_ends(),
            opened=opened))
        try:
            await asyncio.wait_for(opened.wait(), 30)
            async with subscribed(session, ["custom", "lifecycle"], root_ends()) as every:
                await session.run.start(input={"count": 25, "delay": 0.005, "milestones": True})
                every_events = await every
            named_events = await named
        finally:
            named.cancel()
            with contextlib.suppress(BaseException):
                await named
        assert (await session.output.with_timeout(60))["ticked"] == 25

    custom = [e["params"]["data"] for e in every_events if e["method"] == "custom"]
    plain = [d for d in custom if "name" not in d]
    assert [d["i"] for d in plain] == list(range(25))
    milestones = [d for d in custom if "name" in d]
    assert milestones == [{"name": "milestone", "payload": {"i": i}} for i in (0, 10, 20)]
    assert [e["params"]["data"] for e in named_events if e["method"] == "custom"] == milestones
    assert {channel_of(e) for e in named_events} == {"custom:milestone", "lifecycle"}


@pytest.mark.compat("thread-stream", "threads.stream", "v2.run.start")
async def test_v2_tasks_and_checkpoints_channels_are_accepted(client):
    """`tasks` and `checkpoints` are channels of the protocol: a stream subscribed to
    them (with lifecycle) is served and ends its run like any other."""
    async with client.threads.stream(assistant_id="agent_v2") as session:
        async with subscribed(session, ["tasks", "checkpoints", "lifecycle"],
                              root_ends()) as task:
            await session.run.start(input=PARIS)
            events = await task
        await session.output.with_timeout(60)
    assert {e["method"] for e in events} <= {"tasks", "checkpoints", "lifecycle"}
    assert is_root_end(events[-1], ("completed",))


# ------------------------------------------------------------------ filters and resume


@pytest.mark.compat("thread-stream", "threads.stream", "v2.run.start")
async def test_v2_subgraph_namespaces_and_depth(client):
    async with client.threads.stream(assistant_id="subgraph_v2") as session:
        await session.run.start(input=HELLO)
        output = await session.output.with_timeout(60)
        thread_id = session.thread_id
    assert output["report"]
    full = await full_replay(client, thread_id)
    namespaces = {tuple(s.split(":", 1)[0] for s in e["params"]["namespace"]) for e in full}
    assert {(), ("researcher",), ("write",)} <= namespaces
    started = [(e["params"]["namespace"][0].split(":")[0], e["params"]["data"]["graph_name"])
               for e in full if lifecycle_phase(e) == "started" and e["params"]["namespace"]]
    assert started == [("researcher", "researcher"), ("write", "write")]

    cases: list[dict[str, Any]] = [
        {"channels": ALL_CHANNELS, "namespaces": [[]], "depth": 0},
        {"channels": ["values", "lifecycle"], "namespaces": [["researcher"]]},
        {"channels": ["messages", "lifecycle"], "namespaces": [["write"]], "depth": 0},
        {"channels": ["values", "messages"], "depth": 1},
    ]
    for body in cases:
        expected = [e for e in full if selected(e, body["channels"], body.get("namespaces"),
                                                body.get("depth"))]
        assert expected, body
        got = await read_sse(http_of(client), thread_id, body,
                             until=through_seq(expected[-1]["seq"]))
        assert [(e["seq"], e["method"]) for e in got] == [
            (e["seq"], e["method"]) for e in expected], body
        assert untimed(got) == untimed(expected), body


@pytest.mark.compat("thread-stream", "threads.stream", "v2.run.start")
async def test_v2_since_resumes_exactly(client):
    async with client.threads.stream(assistant_id="ticker") as session:
        await session.run.start(input={"count": 30, "delay": 0.002})
        await session.output.with_timeout(60)
        thread_id = session.thread_id
    full = await full_replay(client, thread_id)
    last = full[-1]["seq"]
    # every cursor a client can hold: none yet (0), each seq it may have seen last
    for since in (0, full[0]["seq"], full[6]["seq"], full[len(full) // 2]["seq"],
                  full[-2]["seq"]):
        got = await read_sse(http_of(client), thread_id,
                             {"channels": ALL_CHANNELS, "since": since}, until=through_seq(last))
        assert untimed(got) == untimed([e for e in full if e["seq"] > since]), since
    # a filtered resume: the custom events after the cursor, none before
    custom = [e for e in full if e["method"] == "custom"]
    cursor = custom[10]["seq"]
    got = await read_sse(http_of(client), thread_id, {"channels": ["custom"], "since": cursor},
                         until=through_seq(custom[-1]["seq"]))
    assert [e["params"]["data"]["i"] for e in got] == list(range(11, 30))


@pytest.mark.compat("thread-stream", "threads.stream", "v2.run.start")
async def test_v2_since_from_the_future(client):
    """A cursor past the thread's last event: the protocol's answer is a 4xx naming
    `since`, or a stream that carries nothing at or before the cursor; never a 500.
    (The reference keeps such a stream open and silent until the thread's seqs pass
    the cursor.)"""
    async with client.threads.stream(assistant_id="ticker") as session:
        await session.run.start(input={"count": 3, "delay": 0.001})
        await session.output.with_timeout(60)
        thread_id = session.thread_id
    full = await full_replay(client, thread_id)
    since = full[-1]["seq"] + 1000
    http = http_of(client)
    async with http.stream("POST", f"/threads/{thread_id}/stream/events",
                           json={"channels": ALL_CHANNELS, "since": since}) as response:
        if response.status_code != 200:
            assert 400 <= response.status_code < 500, response.status_code
            assert "since" in (await response.aread()).decode()
            return
        got: list[str] = []

        async def read() -> None:
            async for line in response.aiter_lines():
                if line.startswith("id:"):
                    got.append(line)
        # nothing after the cursor exists: the stream ends, or stays open and silent
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(read(), 2)
    assert all(int(line[3:]) > since for line in got), got
    # the thread still serves: a plain stream replays its run
    assert (await full_replay(client, thread_id))[-1]["seq"] == full[-1]["seq"]


# ------------------------------------------------------------------ interrupts and runs


@pytest.mark.compat("thread-stream", "threads.stream", "v2.run.start", "v2.input.respond")
async def test_v2_interrupt_answered_with_input_respond(client):
    async with client.threads.stream(assistant_id="hitl_v2") as session:
        await session.run.start(input=TRANSFER)
        # the thread's stream, raw: the SDK's own subscriptions pause at an interrupt
        async with background(read_sse(
                http_of(client), session.thread_id,
                {"channels": ["lifecycle", "input", "tools"]}, until=root_ends())) as task:

            async def interrupted():
                return session.interrupted and session.interrupts

            pending = await wait_until(interrupted, timeout=60, every=0.05)
            assert len(pending) == 1 and pending[0]["namespace"] == []
            assert await session.run.respond({"approved": True}) == {}
            events = await task
        output = await session.output.with_timeout(60)
        thread_id = session.thread_id

    root_phases = [lifecycle_phase(e) for e in events
                   if e["method"] == "lifecycle" and not e["params"]["namespace"]]
    assert root_phases == ["running", "interrupted", "running", "completed"]
    requested = [e["params"]["data"] for e in events if e["method"] == "input.requested"]
    assert len(requested) == 1 and requested[0]["interrupt_id"] == pending[0]["interrupt_id"]
    assert requested[0]["payload"]["question"] == "Transfer 50 to Alice?"
    assert requested[0]["payload"]["args"] == {"amount": 50.0, "to": "Alice"}
    tools = [(e["params"]["data"]["event"], e["params"]["data"]["tool_call_id"]) for e in events
             if e["method"] == "tools"]
    assert [t[0] for t in tools] == ["tool-started", "tool-started", "tool-finished"]
    assert output["messages"][-1]["content"][0]["text"].endswith("Transferred 50 to Alice")
    state = await client.threads.get_state(thread_id)
    assert not state["next"] and not state.get("interrupts")
    # an interrupt that is no longer pending cannot be answered twice
    again = await command(http_of(client), thread_id, "input.respond",
                          {"interrupt_id": pending[0]["interrupt_id"], "namespace": [],
                           "response": {"approved": True}})
    assert again["type"] == "error" and again["error"] in ("no_such_interrupt", "no_such_run")


@pytest.mark.compat("thread-stream", "threads.stream", "v2.run.start")
async def test_v2_run_start_while_a_run_is_active_queues(client):
    """Two `run.start` on a thread: the second waits for the first (the default
    multitask strategy, enqueue), never two runs at once, and the thread's stream
    carries the first run's whole lifecycle before the second's."""
    async with client.threads.stream(assistant_id="ticker") as session:
        first = await session.run.start(input={"count": 40, "delay": 0.04})
        thread_id = session.thread_id
        # the thread's stream, raw (an SDK subscription ends with the first run)
        async with background(read_sse(http_of(client), thread_id,
                                       {"channels": ["lifecycle", "custom"]},
                                       until=root_ends(2), timeout=90)) as task:

            async def running():
                return any(r["status"] == "running"
                           for r in await client.runs.list(thread_id))

            await wait_until(running, every=0.05)
            second = await session.run.start(input={"count": 5, "delay": 0.001})
            assert second["run_id"] != first["run_id"]
            seen_running: list[int] = []
            while not task.done():
                statuses = [r["status"] for r in await client.runs.list(thread_id)]
                seen_running.append(statuses.count("running"))
                await asyncio.sleep(0.05)
            events = await task

    assert max(seen_running) <= 1, seen_running
    runs = {r["run_id"]: r["status"] for r in await client.runs.list(thread_id)}
    assert runs == {first["run_id"]: "success", second["run_id"]: "success"}
    phases = [lifecycle_phase(e) for e in events
              if e["method"] == "lifecycle" and not e["params"]["namespace"]]
    assert phases == ["running", "completed", "running", "completed"]
    ticks = [e["params"]["data"]["i"] for e in events if e["method"] == "custom"]
    assert ticks == [*range(40), *range(5)]


@pytest.mark.compat("thread-stream", "threads.stream",
                     "v2.run.start", "v2.subscription.subscribe", "v2.agent.getTree")
async def test_v2_agent_get_tree(client, server):
    """`agent.getTree` over the WebSocket: the run's graph and its subgraphs, each with
    its status; over HTTP (no run bound to a stateless command) an error envelope.
    The SDK's `session.agent.get_tree()` reads the assistant's graph."""
    thread_id = str(uuid.uuid4())
    async with ws_connect(ws_url(server.url, thread_id)) as websocket:
        ws = WsSession(websocket)
        answer = await ws.send("subscription.subscribe", {"channels": ["lifecycle"]})
        assert answer["type"] == "success" and answer["result"]["subscription_id"]
        answer = await ws.send("run.start", {"assistant_id": "subgraph_v2", "input": HELLO})
        assert answer["type"] == "success", answer
        uuid.UUID(answer["result"]["run_id"])
        await ws.read_until(root_ends())
        tree = await ws.send("agent.getTree")
    assert tree["type"] == "success", tree
    assert isinstance(tree["meta"]["applied_through_seq"], int)
    root = tree["result"]["tree"]
    assert (root["namespace"], root["status"], root["graph_name"]) == ([], "completed",
                                                                      "subgraph_v2")
    children = [(c["namespace"][0].split(":")[0], c["status"], c["graph_name"])
                for c in root["children"]]
    assert children == [("researcher", "completed", "researcher"),
                        ("write", "completed", "write")]
    answer = await command(http_of(client), str(uuid.uuid4()), "agent.getTree")
    assert answer["type"] == "error" and answer["id"] == 1 and answer["message"]
    async with client.threads.stream(assistant_id="subgraph_v2") as session:
        graph = await session.agent.get_tree()
    assert {n["id"] for n in graph["nodes"]} >= {"__start__", "researcher", "write"}


@pytest.mark.compat("thread-stream", "threads.stream", "v2.run.start",
                     "v2.subscription.subscribe", "v2.subscription.reconnect")
async def test_v2_websocket_reconnect_from_since(client, server):
    """`subscription.reconnect` on a new socket replays exactly the events after
    `since`; a cursor from the future replays nothing (or is refused)."""
    async with client.threads.stream(assistant_id="ticker") as session:
        await session.run.start(input={"count": 20, "delay": 0.002})
        await session.output.with_timeout(60)
        thread_id = session.thread_id
    full = await read_sse(http_of(client), thread_id, {"channels": ["custom", "lifecycle"]},
                          until=root_ends())
    cursor = full[len(full) // 2]["seq"]
    async with ws_connect(ws_url(server.url, thread_id)) as websocket:
        ws = WsSession(websocket)
        for _ in range(100):  # the reference binds the socket to the run on its first event
            answer = await ws.send("subscription.reconnect",
                                   {"channels": ["custom", "lifecycle"], "since": cursor})
            if answer.get("error") != "no_such_run":
                break
            await asyncio.sleep(0.02)
        assert answer["type"] == "success", answer
        got = await ws.read_until(through_seq(full[-1]["seq"]))
        assert untimed(got) == untimed([e for e in full if e["seq"] > cursor])
        answer = await ws.send("subscription.reconnect",
                               {"channels": ["lifecycle"], "since": full[-1]["seq"] + 1000})
        assert answer["type"] in ("success", "error"), answer
        if answer["type"] == "success":
            # (runlane leaves out the optional count: docs/compatibility.md)
            assert answer["result"].get("replayed_events", 0) == 0
        answer = await ws.send("subscription.reconnect", {"channels": ["lifecycle"]})
        assert (answer["type"], answer["error"]) == ("error", "invalid_argument")


# ------------------------------------------------------------------ bad input


@pytest.mark.compat("thread-stream", "threads.stream",
                     "v2.run.start", "v2.subscription.subscribe", "v2.subscription.unsubscribe")
async def test_v2_errors_for_bad_commands_and_channels(client, server):
    http = http_of(client)
    thread_id = str(uuid.uuid4())
    unknown = await command(http, thread_id, "state.teleport", {}, command_id=7)
    assert (unknown["type"], unknown["id"], unknown["error"]) == ("error", 7, "unknown_command")
    assert "state.teleport" in unknown["message"]
    missing = await command(http, thread_id, "run.start", {"input": HELLO}, command_id=8)
    assert (missing["type"], missing["error"]) == ("error", "invalid_argument")
    assert "assistant_id" in missing["message"]
    # a malformed envelope: the reference's 400 with the protocol's error shape, or a
    # 422 that says what is wrong
    for body in ({"id": "x", "method": "run.start"}, {"method": "run.start"}, [1, 2]):
        response = await http.post(f"/threads/{thread_id}/commands", json=body)
        assert response.status_code in (400, 422), (body, response.status_code)
        answer = response.json()
        assert answer.get("error") == "invalid_argument" or answer.get("detail"), answer
    response = await http.post(f"/threads/{thread_id}/commands", content=b"{not json",
                               headers={"content-type": "application/json"})
    assert response.status_code in (400, 422), response.status_code
    # the SDK raises the protocol error
    async with client.threads.stream(assistant_id="no-such-assistant-" + thread_id) as session:
        with pytest.raises(Exception) as info:
            await session.run.start(input=HELLO)
        assert not isinstance(info.value, AssertionError)
    # channels
    for body, word in (({"channels": ["values", "bogus"]}, "bogus"), ({"channels": []}, "channels"),
                       ({}, "channels"), ({"channels": "values"}, "channels")):
        response = await http.post(f"/threads/{thread_id}/stream/events", json=body)
        assert response.status_code == 400, (body, response.status_code)
        assert word in response.json()["detail"], response.json()
    # the same over the WebSocket: error envelopes, and the socket keeps serving
    async with ws_connect(ws_url(server.url, thread_id)) as websocket:
        ws = WsSession(websocket)
        answer = await ws.send("state.teleport")
        assert (answer["type"], answer["error"]) == ("error", "unknown_command")
        answer = await ws.send("subscription.subscribe", {"channels": ["bogus"]})
        assert (answer["type"], answer["error"]) == ("error", "invalid_argument")
        await websocket.send("not json")
        answer = await ws.answer(None)
        assert (answer["type"], answer["error"]) == ("error", "invalid_argument")
        answer = await ws.send("subscription.unsubscribe", {"subscription_id": "nope"})
        assert answer["type"] == "error" and answer["error"] in ("no_such_subscription",
                                                                 "invalid_argument")
        answer = await ws.send("subscription.subscribe", {"channels": ["lifecycle"]})
        assert answer["type"] == "success"


# ------------------------------------------------------------------ frame by frame

FRAME_CASES: dict[str, tuple[str, Any]] = {
    "agent_tools": ("agent_v2", PARIS),
    "subgraphs": ("subgraph_v2", HELLO),
    "ticker": ("ticker", {"count": 12, "delay": 0.005}),
}


async def capture(client: Any, graph: str, payload: Any) -> list[dict]:
    """One run's events on every channel, as a fresh connection replays them after the
    run (the order a reconnecting client sees; the live order of events from parallel
    sources may interleave differently)."""
    async with client.threads.stream(assistant_id=graph) as session:
        await session.run.start(input=payload)
        await session.output.with_timeout(60)
        thread_id = session.thread_id
    return await full_replay(client, thread_id)


@pytest.mark.compat("thread-stream", "threads.stream", "v2.run.start")
async def test_v2_agent_frames(client, is_reference):
    """Each case's frames equal the reference's record (thread_stream_frames.json)."""
    got = {name: frames(await capture(client, graph, payload))
           for name, (graph, payload) in FRAME_CASES.items()}
    if RECORD and is_reference:
        GOLDEN.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
    expected = json.loads(GOLDEN.read_text())
    for name in FRAME_CASES:
        assert not frame_diff(expected[name], got[name]), f"{name}: " + frame_diff(
            expected[name], got[name])
