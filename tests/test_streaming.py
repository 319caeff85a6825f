"""Streaming: every stream mode, subgraphs, errors, event ids, reconnects and headers.

Every event of a run has an id, unique and strictly increasing within the run, so a
reconnect with `Last-Event-ID: n` gets exactly the events after n.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from typing import Any

import pytest
from langgraph_sdk.schema import StreamPart

from contract_support import wait_final, wait_status

pytest_plugins = ("contract_fixtures",)
pytestmark = pytest.mark.usefixtures("no_server_errors")


async def collect(stream: Any) -> list[StreamPart]:
    return [part async for part in stream]


def check_ids(parts: list[StreamPart]) -> list[int]:
    """Every event carries an id; ids are integers, strictly increasing (so unique)."""
    assert parts, "no events"
    ids = []
    for part in parts:
        assert part.id is not None, f"event without an id: {part}"
        ids.append(int(part.id))
    assert all(a < b for a, b in itertools.pairwise(ids)), ids
    return ids


def check_metadata_first(parts: list[StreamPart]) -> str:
    assert parts[0].event == "metadata", [p.event for p in parts]
    run_id = parts[0].data["run_id"]
    assert [p.event for p in parts].count("metadata") == 1
    return run_id


# ----------------------------------------------------------------------- the modes


async def test_values(client, new_thread):
    thread_id = await new_thread()
    parts = await collect(client.runs.stream(thread_id, "sleepy", input={"steps": 3, "delay": 0},
                                             stream_mode="values"))
    check_ids(parts)
    run_id = check_metadata_first(parts)
    assert [p.event for p in parts[1:]] == ["values"] * 4  # input, then one per tick
    assert [p.data.get("ticks") for p in parts[1:]] == [0, 1, 2, 3]
    run = await client.runs.get(thread_id, run_id)
    assert run["status"] == "success"


async def test_updates(client, new_thread):
    thread_id = await new_thread()
    parts = await collect(client.runs.stream(thread_id, "sleepy", input={"steps": 2, "delay": 0},
                                             stream_mode="updates"))
    check_ids(parts)
    check_metadata_first(parts)
    assert [(p.event, p.data) for p in parts[1:]] == [("updates", {"tick": {"ticks": 1}})] * 2


async def test_custom(client, new_thread):
    thread_id = await new_thread()
    parts = await collect(client.runs.stream(thread_id, "emitter", input={"count": 5},
                                             stream_mode="custom"))
    check_ids(parts)
    check_metadata_first(parts)
    assert [(p.event, p.data) for p in parts[1:]] == [("custom", {"i": i}) for i in range(5)]


async def test_debug(client, new_thread):
    thread_id = await new_thread()
    parts = await collect(client.runs.stream(thread_id, "quick", input={"n": 0},
                                             stream_mode="debug"))
    check_ids(parts)
    check_metadata_first(parts)
    assert {p.event for p in parts[1:]} == {"debug"}
    kinds = [p.data["type"] for p in parts[1:]]
    assert "checkpoint" in kinds and "task" in kinds and "task_result" in kinds
    tasks = [p.data["payload"]["name"] for p in parts[1:] if p.data["type"] == "task"]
    assert tasks == ["first", "second"]


async def test_messages_tuple(client, new_thread):
    thread_id = await new_thread()
    parts = await collect(client.runs.stream(
        thread_id, "chat", input={"messages": [{"role": "user", "content": "hi"}]},
        stream_mode="messages-tuple"))
    check_ids(parts)
    check_metadata_first(parts)
    assert {p.event for p in parts[1:]} == {"messages"}
    text = ""
    for part in parts[1:]:
        chunk, meta = part.data
        assert meta["langgraph_node"] == "call"
        text += chunk["content"]
    assert text == "hello there friend"
    assert len(parts) - 1 > 1, "tokens arrive one chunk at a time"


async def test_messages_whole(client, new_thread):
    """`messages` (without -tuple) sends whole messages, as the reference does: the
    message's metadata once, then the message accumulated so far after every token."""
    thread_id = await new_thread()
    parts = await collect(client.runs.stream(
        thread_id, "chat", input={"messages": [{"role": "user", "content": "hi"}]},
        stream_mode="messages"))
    check_ids(parts)
    check_metadata_first(parts)
    events = [p.event for p in parts[1:]]
    assert events[0] == "messages/metadata", events
    assert set(events[1:]) == {"messages/partial"}, events
    (message_id, meta), = parts[1].data.items()
    assert meta["metadata"]["langgraph_node"] == "call"
    texts = []
    for part in parts[2:]:
        (message,) = part.data
        assert message["id"] == message_id and message["type"] == "ai", message
        texts.append(message["content"])
    assert len(texts) > 1, "one partial per token"
    assert all(b.startswith(a) for a, b in itertools.pairwise(texts)), texts
    assert texts[-1] == "hello there friend"


async def test_messages_tuple_wins_over_messages(client, new_thread):
    thread_id = await new_thread()
    parts = await collect(client.runs.stream(
        thread_id, "chat", input={"messages": [{"role": "user", "content": "hi"}]},
        stream_mode=["messages", "messages-tuple"]))
    assert {p.event for p in parts[1:]} == {"messages"}
    assert "".join(p.data[0]["content"] for p in parts[1:]) == "hello there friend"


async def test_events(client, new_thread):
    thread_id = await new_thread()
    parts = await collect(client.runs.stream(thread_id, "echo", input={"text": "hi"},
                                             stream_mode="events"))
    check_ids(parts)
    check_metadata_first(parts)
    assert {p.event for p in parts[1:]} == {"events"}
    kinds = [p.data["event"] for p in parts[1:]]
    assert kinds[0] == "on_chain_start" and kinds[-1] == "on_chain_end"
    assert parts[-1].data["data"]["output"] == {"text": "hi", "echoed": ["hi"]}
    # The graph's own stream chunks belong to the other modes: as on the reference,
    # the root run's on_chain_stream is not an `events` event; its nodes' are.
    run_id = parts[0].data["run_id"]
    streams = [p.data for p in parts[1:] if p.data["event"] == "on_chain_stream"]
    assert streams and all(e["run_id"] != run_id for e in streams), streams


async def test_tasks_and_checkpoints(client, new_thread):
    thread_id = await new_thread()
    parts = await collect(client.runs.stream(thread_id, "quick", input={"n": 0},
                                             stream_mode=["tasks", "checkpoints"]))
    check_ids(parts)
    check_metadata_first(parts)
    tasks = [p.data for p in parts if p.event == "tasks"]
    checkpoints = [p.data for p in parts if p.event == "checkpoints"]
    assert {p.event for p in parts[1:]} == {"tasks", "checkpoints"}
    assert [t["name"] for t in tasks if "input" in t] == ["first", "second"]
    assert [t["result"] for t in tasks if "result" in t] == [{"n": 1}, {"n": 2}]
    assert checkpoints[-1]["values"] == {"n": 2} and checkpoints[-1]["next"] == []


async def test_several_modes_at_once(client, new_thread):
    thread_id = await new_thread()
    parts = await collect(client.runs.stream(thread_id, "sleepy", input={"steps": 2, "delay": 0},
                                             stream_mode=["values", "updates", "custom"]))
    check_ids(parts)
    check_metadata_first(parts)
    events = [p.event for p in parts[1:]]
    assert events.count("values") == 3 and events.count("updates") == 2
    assert events.count("custom") == 2


async def test_subgraphs(client, new_thread):
    thread_id = await new_thread()
    parts = await collect(client.runs.stream(
        thread_id, "nested", input={"steps": 1, "delay": 0}, stream_mode=["values", "updates"],
        stream_subgraphs=True))
    check_ids(parts)
    check_metadata_first(parts)
    names = [p.event for p in parts[1:]]
    child = [n for n in names if "|" in n]
    assert child, names
    for name in child:
        assert re.fullmatch(r"(values|updates)\|child:[0-9a-f-]{36}", name), name
    assert {n.split("|")[0] for n in child} == {"values", "updates"}
    assert "values" in names and "updates" in names  # the parent's own events
    assert parts[-1].event == "values" and parts[-1].data["ticks"] == 2


async def test_no_subgraph_events_unless_asked(client, new_thread):
    thread_id = await new_thread()
    parts = await collect(client.runs.stream(thread_id, "nested", input={"steps": 1},
                                             stream_mode=["values", "updates"]))
    assert not [p.event for p in parts if "|" in p.event]


async def test_error_event_ends_the_stream(client, new_thread):
    thread_id = await new_thread()
    parts = await collect(client.runs.stream(thread_id, "failing", input={"x": 1},
                                             stream_mode=["values", "updates"]))
    check_ids(parts)
    run_id = check_metadata_first(parts)
    assert parts[-1].event == "error"
    assert parts[-1].data["error"] == "ValueError"
    assert "boom" in parts[-1].data["message"]
    assert [p.event for p in parts].count("error") == 1
    run = await client.runs.get(thread_id, run_id)
    assert run["status"] == "error" and run["stop_reason"] == "graph_error"


async def test_stateless_stream(client):
    parts = await collect(client.runs.stream(None, "echo", input={"text": "yo"},
                                             stream_mode="values"))
    check_ids(parts)
    check_metadata_first(parts)
    assert parts[-1].data == {"text": "yo", "echoed": ["yo"]}


async def test_cancelled_run_ends_its_stream(client, new_thread):
    thread_id = await new_thread()
    run = await client.runs.create(thread_id, "sleepy", input={"steps": 100_000, "delay": 0.02},
                                   stream_mode="custom")
    await wait_status(client, thread_id, run["run_id"], "running")
    joined = asyncio.ensure_future(collect(client.runs.join_stream(thread_id, run["run_id"])))
    await asyncio.sleep(0.2)
    await client.runs.cancel(thread_id, run["run_id"])
    parts = await asyncio.wait_for(joined, 10)
    check_ids(parts)
    assert parts[0].event == "metadata" and len(parts) > 1
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "interrupted"


# ------------------------------------------------------------- ids and reconnects


async def test_reconnect_during_the_run_gets_exactly_the_rest(client, new_thread):
    thread_id = await new_thread()
    full: list[StreamPart] = []
    rejoined: asyncio.Future[list[StreamPart]] | None = None
    status_at_rejoin = None
    async for part in client.runs.stream(thread_id, "sleepy", input={"steps": 8, "delay": 0.05},
                                         stream_mode=["values", "updates", "custom"]):
        full.append(part)
        if len(full) == 5:
            run_id = full[0].data["run_id"]
            status_at_rejoin = (await client.runs.get(thread_id, run_id))["status"]
            rejoined = asyncio.ensure_future(collect(client.runs.join_stream(
                thread_id, run_id, last_event_id=full[4].id)))
    assert status_at_rejoin == "running", "the reconnect must happen while the run runs"
    assert rejoined is not None
    rest = await asyncio.wait_for(rejoined, 10)
    ids = check_ids(full)
    assert ids == list(range(1, len(full) + 1))
    assert rest == full[5:]


async def test_reconnect_after_the_run_ended(client, new_thread):
    thread_id = await new_thread()
    full = await collect(client.runs.stream(thread_id, "sleepy", input={"steps": 3, "delay": 0},
                                            stream_mode=["values", "custom"]))
    check_ids(full)
    run_id = full[0].data["run_id"]
    await wait_final(client, thread_id, run_id)
    for k in (1, 3, len(full) - 1, len(full)):
        rest = await asyncio.wait_for(
            collect(client.runs.join_stream(thread_id, run_id, last_event_id=full[k - 1].id)), 5)
        assert rest == full[k:], k
    # Without Last-Event-ID, joining a finished run replays what is kept, then ends.
    everything = await asyncio.wait_for(collect(client.runs.join_stream(thread_id, run_id)), 5)
    assert everything == full


async def test_join_stream_filters_modes(client, new_thread):
    thread_id = await new_thread()
    full = await collect(client.runs.stream(thread_id, "sleepy", input={"steps": 2, "delay": 0},
                                            stream_mode=["values", "custom"]))
    run_id = full[0].data["run_id"]
    only_custom = await collect(client.runs.join_stream(thread_id, run_id, stream_mode="custom"))
    assert only_custom == [p for p in full if p.event in ("metadata", "custom")]


async def test_joining_a_finished_run_returns_promptly(client, ahttp, new_thread):
    thread_id = await new_thread()
    run = await client.runs.create(thread_id, "echo", input={"text": "x"})
    await wait_final(client, thread_id, run["run_id"])
    loop = asyncio.get_running_loop()
    start = loop.time()
    parts = await asyncio.wait_for(collect(client.runs.join_stream(thread_id, run["run_id"])), 5)
    assert loop.time() - start < 3
    assert all(p.event != "heartbeat" for p in parts)
    # Raw: the response ends by itself, with the run's events and nothing else.
    async with ahttp.stream("GET", f"/threads/{thread_id}/runs/{run['run_id']}/stream",
                            headers={"Last-Event-ID": "1"}) as resp:
        assert resp.status_code == 200
        body = await asyncio.wait_for(resp.aread(), 5)
    assert b"event: metadata" not in body  # after id 1
    assert b"event: values" in body


async def test_join_stream_of_unknown_run_is_404(ahttp, new_thread):
    thread_id = await new_thread()
    resp = await ahttp.get(f"/threads/{thread_id}/runs/{'0' * 8}-0000-4000-8000-{'0' * 12}/stream")
    assert resp.status_code == 404


@pytest.mark.parametrize("foreign", ["-1", "abc", "-2", "1.5", "1733456789012-0",
                                     "9" * 40])
async def test_a_last_event_id_not_issued_replays_from_the_start(client, ahttp, new_thread,
                                                                   foreign):
    """"-1" is the JS SDK's "from the first event" (useStream's joinStream); any other id
    runlane did not issue (another server's, a garbled one) replays from the start too,
    as the reference does, rather than a 422 that loses the stream."""
    thread_id = await new_thread()
    run = await client.runs.create(thread_id, "echo", input={"text": "x"})
    await wait_final(client, thread_id, run["run_id"])
    resp = await ahttp.get(f"/threads/{thread_id}/runs/{run['run_id']}/stream",
                           headers={"Last-Event-ID": foreign})
    assert resp.status_code == 200, resp.text
    assert resp.text.startswith("event: metadata\n") and "\nid: 1\n" in resp.text


# ------------------------------------------------------------------------- headers


async def test_stream_headers(ahttp, new_thread):
    thread_id = await new_thread()
    async with ahttp.stream("POST", f"/threads/{thread_id}/runs/stream",
                            json={"assistant_id": "echo", "input": {"text": "h"}}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        body = (await resp.aread()).decode()
    run_id = re.search(r'"run_id":"([0-9a-f-]{36})"', body).group(1)
    assert resp.headers["location"] == f"/threads/{thread_id}/runs/{run_id}/stream"
    assert resp.headers["content-location"] == f"/threads/{thread_id}/runs/{run_id}"
    # The Location is where a reconnect goes: it answers with the same stream.
    async with ahttp.stream("GET", resp.headers["location"]) as again:
        assert again.status_code == 200
        assert again.headers["location"] == f"/threads/{thread_id}/runs/{run_id}/stream"
        assert (await again.aread()).decode() == body


async def test_stateless_stream_headers(ahttp):
    async with ahttp.stream("POST", "/runs/stream",
                            json={"assistant_id": "echo", "input": {"text": "h"}}) as resp:
        assert resp.status_code == 200
        body = (await resp.aread()).decode()
    run_id = re.search(r'"run_id":"([0-9a-f-]{36})"', body).group(1)
    assert resp.headers["content-location"] == f"/runs/{run_id}"
    assert re.fullmatch(rf"/threads/[0-9a-f-]{{36}}/runs/{run_id}/stream",
                        resp.headers["location"])


# ------------------------------------------------------------------ disconnects

LONG = {"steps": 100_000, "delay": 0.02}


async def _read_until_custom(resp: Any, count: int) -> str:
    """Read SSE lines until `count` custom events arrived; the run id."""
    run_id, seen, event = None, 0, None
    async for line in resp.aiter_lines():
        if line.startswith("event: "):
            event = line[len("event: "):]
        elif line.startswith("data: ") and event == "metadata":
            run_id = re.search(r'"run_id":"([0-9a-f-]{36})"', line).group(1)
        elif line.startswith("data: ") and event == "custom":
            seen += 1
            if seen == count:
                break
    assert run_id is not None
    return run_id


@pytest.mark.parametrize("on_disconnect", ["cancel", "continue"])
async def test_on_disconnect(client, ahttp, new_thread, on_disconnect):
    thread_id = await new_thread()
    async with ahttp.stream("POST", f"/threads/{thread_id}/runs/stream", json={
            "assistant_id": "sleepy", "input": LONG, "stream_mode": "custom",
            "on_disconnect": on_disconnect}) as resp:
        run_id = await _read_until_custom(resp, 3)
    # The client went away.
    if on_disconnect == "cancel":
        final = await wait_final(client, thread_id, run_id)
        assert final is not None and final["status"] == "interrupted"
        assert final["cancel_reason"] == "disconnect" and final["cancel_action"] == "interrupt"
    else:
        await asyncio.sleep(0.3)
        run = await client.runs.get(thread_id, run_id)
        assert run["status"] == "running" and run["cancel_action"] is None
        await client.runs.cancel(thread_id, run_id, wait=True)


async def test_join_stream_cancel_on_disconnect(client, ahttp, new_thread):
    thread_id = await new_thread()
    run = await client.runs.create(thread_id, "sleepy", input=LONG, stream_mode="custom")
    async with ahttp.stream("GET", f"/threads/{thread_id}/runs/{run['run_id']}/stream",
                            params={"cancel_on_disconnect": "true"}) as resp:
        await _read_until_custom(resp, 2)
    final = await wait_final(client, thread_id, run["run_id"])
    assert final is not None and final["status"] == "interrupted"
    assert final["cancel_reason"] == "disconnect"
