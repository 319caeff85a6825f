"""client.threads: every method against a real server, shape and meaning."""

from __future__ import annotations

import asyncio
import itertools
import uuid

import pytest
from langgraph_sdk import schema

from compat.shapes import Thread, ThreadState, assert_shape
from compat.support import collect, status_of, tag
from sse_gauge import sse_streams, streams_opened


async def _ran(client, graph="echo", **run):
    """A thread with one finished run of `graph`."""
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], graph, **run)
    return thread["thread_id"]


@pytest.mark.compat("threads", "threads.create", "threads.get")
async def test_create_and_get(client):
    marker = tag()
    created = await client.threads.create(metadata={"tag": marker})
    assert_shape(created, Thread)
    assert created["metadata"]["tag"] == marker
    assert created["status"] == "idle"
    assert created["values"] is None
    uuid.UUID(created["thread_id"])
    fetched = await client.threads.get(created["thread_id"])
    assert_shape(fetched, Thread)
    assert fetched["thread_id"] == created["thread_id"]
    assert fetched["metadata"] == created["metadata"]
    assert await status_of(client.threads.get(str(uuid.uuid4()))) == 404


@pytest.mark.compat("threads", "threads.create")
async def test_create_with_id_if_exists_and_graph_id(client):
    thread_id = str(uuid.uuid4())
    first = await client.threads.create(thread_id=thread_id, metadata={"n": 1}, graph_id="echo")
    assert first["thread_id"] == thread_id
    assert first["metadata"]["graph_id"] == "echo"
    assert await status_of(client.threads.create(thread_id=thread_id)) == 409
    again = await client.threads.create(thread_id=thread_id, metadata={"n": 2},
                                        if_exists="do_nothing")
    assert_shape(again, Thread)
    assert again["metadata"]["n"] == 1  # the existing thread, untouched


@pytest.mark.compat("threads", "threads.create", "threads.get_state")
async def test_create_with_supersteps(client):
    """A thread created with a prefilled history: its state is the supersteps applied."""
    created = await client.threads.create(graph_id="echo", supersteps=[
        {"updates": [{"values": {"text": "a", "echoed": ["one"]}, "as_node": "echo"}]},
        {"updates": [{"values": {"echoed": ["two"]}, "as_node": "echo"}]},
    ])
    state = await client.threads.get_state(created["thread_id"])
    assert state["values"] == {"text": "a", "echoed": ["one", "two"]}
    history = await client.threads.get_history(created["thread_id"])
    assert len(history) >= 2


@pytest.mark.compat("thread-ttl", "threads.create", "threads.update", "threads.get")
async def test_ttl_is_accepted(client):
    """A TTL (minutes) is accepted on create and update; the thread lives until then."""
    created = await client.threads.create(ttl=60)
    assert_shape(created, Thread)
    updated = await client.threads.update(created["thread_id"], metadata={"t": 1},
                                          ttl={"ttl": 30, "strategy": "delete"})
    assert updated["metadata"]["t"] == 1
    assert (await client.threads.get(created["thread_id"]))["thread_id"] == created["thread_id"]


@pytest.mark.compat("threads", "threads.update")
async def test_update_merges_metadata(client):
    created = await client.threads.create(metadata={"a": 1, "b": 1})
    updated = await client.threads.update(created["thread_id"], metadata={"b": 2, "c": 3})
    assert_shape(updated, Thread)
    assert {k: updated["metadata"][k] for k in "abc"} == {"a": 1, "b": 2, "c": 3}
    assert updated["updated_at"] >= created["updated_at"]
    assert (await client.threads.get(created["thread_id"]))["metadata"] == updated["metadata"]
    minimal = await client.threads.update(created["thread_id"], metadata={"d": 4},
                                          return_minimal=True)
    assert minimal is None
    assert (await client.threads.get(created["thread_id"]))["metadata"]["d"] == 4
    assert await status_of(client.threads.update(str(uuid.uuid4()), metadata={})) == 404


@pytest.mark.compat("threads", "threads.delete")
async def test_delete(client):
    thread_id = await _ran(client, input={"text": "x"})
    assert await client.threads.delete(thread_id) is None
    assert await status_of(client.threads.get(thread_id)) == 404
    assert await status_of(client.threads.get_state(thread_id)) == 404
    assert await status_of(client.runs.list(thread_id)) == 404
    assert await status_of(client.threads.delete(thread_id)) == 404


@pytest.mark.compat("threads", "threads.search")
async def test_search_filters_sorts_pages(client):
    marker = tag()
    idle = await client.threads.create(metadata={"tag": marker, "kind": "idle"})
    ran = await client.threads.create(metadata={"tag": marker, "kind": "ran"})
    await client.runs.wait(ran["thread_id"], "echo", input={"text": "searched"})
    paused = await client.threads.create(metadata={"tag": marker, "kind": "paused"})
    await client.runs.wait(paused["thread_id"], "hitl", input={"question": "?"})

    found = await client.threads.search(metadata={"tag": marker})
    for item in found:
        assert_shape(item, Thread)
    assert [t["thread_id"] for t in found] == [
        paused["thread_id"], ran["thread_id"], idle["thread_id"]]  # newest first
    assert [t["thread_id"] for t in await client.threads.search(
        metadata={"tag": marker, "kind": "ran"})] == [ran["thread_id"]]
    assert [t["thread_id"] for t in await client.threads.search(
        metadata={"tag": marker}, status="interrupted")] == [paused["thread_id"]]
    assert {t["thread_id"] for t in await client.threads.search(
        ids=[idle["thread_id"], ran["thread_id"]])} == {idle["thread_id"], ran["thread_id"]}
    asc = await client.threads.search(metadata={"tag": marker}, sort_by="created_at",
                                      sort_order="asc", limit=2, offset=1)
    assert [t["thread_id"] for t in asc] == [ran["thread_id"], paused["thread_id"]]
    selected = await client.threads.search(metadata={"tag": marker}, select=["thread_id", "status"])
    assert all(set(t) == {"thread_id", "status"} for t in selected), selected
    ran_row = next(t for t in found if t["thread_id"] == ran["thread_id"])
    assert ran_row["values"] == {"text": "searched", "echoed": ["searched"]}
    assert not await client.threads.search(metadata={"tag": tag()})
    # by state values; the idle thread (values null) must simply not match
    assert [t["thread_id"] for t in await client.threads.search(
        metadata={"tag": marker}, values={"text": "searched"})] == [ran["thread_id"]]


@pytest.mark.compat("threads", "threads.count", "threads.search")
async def test_count_matches_search(client):
    marker = tag()
    for kind in ("a", "a", "b"):
        await client.threads.create(metadata={"tag": marker, "kind": kind})
    assert await client.threads.count(metadata={"tag": marker}) == 3
    searched = await client.threads.search(metadata={"tag": marker, "kind": "a"})
    assert await client.threads.count(metadata={"tag": marker, "kind": "a"}) == len(searched) == 2
    assert await client.threads.count(metadata={"tag": marker}, status="idle") == 3
    assert await client.threads.count(metadata={"tag": marker}, status="busy") == 0
    assert await client.threads.count(metadata={"tag": tag()}) == 0


@pytest.mark.compat("threads-copy", "threads.copy")
async def test_copy_copies_state_and_history(client):
    marker = tag()
    source = await client.threads.create(metadata={"tag": marker})
    await client.runs.wait(source["thread_id"], "echo", input={"text": "one"})
    await client.runs.wait(source["thread_id"], "echo", input={"text": "two"})
    copied = await client.threads.copy(source["thread_id"])
    # The SDK types the answer as None; the reference server answers the new thread.
    assert_shape(copied, Thread)
    copy_id = copied["thread_id"]
    assert copy_id != source["thread_id"]
    assert copied["metadata"]["tag"] == marker

    source_state = await client.threads.get_state(source["thread_id"])
    copy_state = await client.threads.get_state(copy_id)
    assert copy_state["values"] == source_state["values"] == {"text": "two",
                                                              "echoed": ["one", "two"]}
    assert len(await client.threads.get_history(copy_id, limit=100)) == len(
        await client.threads.get_history(source["thread_id"], limit=100))
    # The copy goes on from the copied state; the source does not see it.
    await client.runs.wait(copy_id, "echo", input={"text": "three"})
    assert (await client.threads.get_state(copy_id))["values"]["echoed"] == ["one", "two", "three"]
    source_after = await client.threads.get_state(source["thread_id"])
    assert source_after["values"]["echoed"] == ["one", "two"]
    assert await status_of(client.threads.copy(str(uuid.uuid4()))) == 404


@pytest.mark.compat("threads-prune", "threads.prune")
async def test_prune_delete(client):
    a = await _ran(client, input={"text": "a"})
    b = await _ran(client, input={"text": "b"})
    keep = await _ran(client, input={"text": "k"})
    result = await client.threads.prune([a, b])
    assert result == {"pruned_count": 2}
    assert await status_of(client.threads.get(a)) == 404
    assert await status_of(client.threads.get(b)) == 404
    assert (await client.threads.get(keep))["thread_id"] == keep


@pytest.mark.compat("threads-prune", "threads.prune")
async def test_prune_keep_latest(client):
    thread = await client.threads.create()
    for text in ("one", "two"):
        await client.runs.wait(thread["thread_id"], "echo", input={"text": text})
    before = await client.threads.get_history(thread["thread_id"], limit=100)
    assert len(before) > 1
    result = await client.threads.prune([thread["thread_id"]], strategy="keep_latest")
    assert result == {"pruned_count": 1}
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"] == {"text": "two", "echoed": ["one", "two"]}
    after = await client.threads.get_history(thread["thread_id"], limit=100)
    assert len(after) == 1
    assert after[0]["checkpoint"]["checkpoint_id"] == before[0]["checkpoint"]["checkpoint_id"]


@pytest.mark.compat("threads", "threads.get_state")
async def test_get_state(client):
    thread_id = await _ran(client, "quick", input={"n": 10})
    state = await client.threads.get_state(thread_id)
    assert_shape(state, ThreadState)
    assert state["values"] == {"n": 12}
    assert state["next"] == []
    assert state["checkpoint"]["thread_id"] == thread_id
    assert state["checkpoint"]["checkpoint_id"]
    assert state["parent_checkpoint"]["checkpoint_id"]
    # An earlier checkpoint: after `first`, before `second`.
    parent = await client.threads.get_state(
        thread_id, checkpoint_id=state["parent_checkpoint"]["checkpoint_id"])
    assert_shape(parent, ThreadState)
    assert parent["values"] == {"n": 11}
    assert parent["next"] == ["second"]
    by_checkpoint = await client.threads.get_state(thread_id, checkpoint=state["parent_checkpoint"])
    assert by_checkpoint["values"] == {"n": 11}
    empty = await client.threads.create()
    fresh = await client.threads.get_state(empty["thread_id"])
    assert fresh["values"] in ({}, None, [])
    assert fresh["next"] == []
    assert await status_of(client.threads.get_state(str(uuid.uuid4()))) == 404


@pytest.mark.compat("threads", "threads.get_state")
async def test_get_state_paused_with_subgraphs(client):
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "hitl", input={"question": "go?"})
    state = await client.threads.get_state(thread["thread_id"], subgraphs=True)
    assert_shape(state, ThreadState)
    assert state["next"] == ["ask"]
    assert [i["value"] for i in state["interrupts"]] == [{"question": "go?"}]
    assert [t["name"] for t in state["tasks"]] == ["ask"]
    assert [i["value"] for i in state["tasks"][0]["interrupts"]] == [{"question": "go?"}]
    thread_row = await client.threads.get(thread["thread_id"])
    assert thread_row["status"] == "interrupted"


@pytest.mark.compat("threads", "threads.update_state", "threads.get_state")
async def test_update_state(client):
    thread_id = await _ran(client, input={"text": "a"})
    before = await client.threads.get_state(thread_id)
    answer = await client.threads.update_state(thread_id, {"echoed": ["manual"]}, as_node="echo")
    assert_shape(answer, schema.ThreadUpdateStateResponse)
    after = await client.threads.get_state(thread_id)
    assert after["checkpoint"]["checkpoint_id"] == answer["checkpoint"]["checkpoint_id"]
    assert after["values"]["echoed"] == ["a", "manual"]  # through the state's reducer
    assert after["parent_checkpoint"]["checkpoint_id"] == before["checkpoint"]["checkpoint_id"]
    # Forking from the earlier checkpoint leaves the later one alone.
    fork = await client.threads.update_state(
        thread_id, {"echoed": ["fork"]}, as_node="echo",
        checkpoint_id=before["checkpoint"]["checkpoint_id"])
    forked = await client.threads.get_state(thread_id)
    assert forked["checkpoint"]["checkpoint_id"] == fork["checkpoint"]["checkpoint_id"]
    assert forked["values"]["echoed"] == ["a", "fork"]
    assert await status_of(client.threads.update_state(str(uuid.uuid4()), {"echoed": []})) == 404


@pytest.mark.compat("threads", "threads.update_state")
async def test_update_state_of_a_thread_that_never_ran(client):
    """No graph yet: 400, unless the thread's metadata names one."""
    fresh = await client.threads.create()
    assert await status_of(client.threads.update_state(fresh["thread_id"], {"echoed": []})) == 400
    named = await client.threads.create(metadata={"graph_id": "echo"})
    await client.threads.update_state(named["thread_id"], {"echoed": ["set"]}, as_node="echo")
    assert (await client.threads.get_state(named["thread_id"]))["values"]["echoed"] == ["set"]


@pytest.mark.compat("threads", "threads.get_history")
async def test_get_history(client):
    thread_id = await _ran(client, "quick", input={"n": 0})
    history = await client.threads.get_history(thread_id)
    for state in history:
        assert_shape(state, ThreadState)
    # input, START -> first, first -> second, second -> end: newest first
    assert [s["values"].get("n") for s in history] == [2, 1, 0, None]
    assert [s["next"] for s in history][:2] == [[], ["second"]]
    ids = [s["checkpoint"]["checkpoint_id"] for s in history]
    assert len(set(ids)) == len(ids)
    for newer, older in itertools.pairwise(history):
        assert newer["parent_checkpoint"]["checkpoint_id"] == older["checkpoint"]["checkpoint_id"]
    assert [s["checkpoint"]["checkpoint_id"] for s in await client.threads.get_history(
        thread_id, limit=2)] == ids[:2]
    assert [s["values"]["n"] for s in await client.threads.get_history(
        thread_id, metadata={"step": 1})] == [1]
    assert await status_of(client.threads.get_history(str(uuid.uuid4()))) == 404
    # `before` as the SDK types it: a checkpoint (as get_state answers it) or its id.
    assert [s["checkpoint"]["checkpoint_id"] for s in await client.threads.get_history(
        thread_id, before=history[1]["checkpoint"])] == ids[2:]


@pytest.mark.compat("thread-stream", "threads.join_stream")
async def test_join_stream_follows_the_threads_runs(client, server, is_reference):
    thread = await client.threads.create()
    before = None if is_reference else await sse_streams(server)
    stream = await client.threads.join_stream(thread["thread_id"])
    parts: list = []

    async def listen():
        async for part in stream:
            parts.append(part)
            if part.event == "metadata" and part.data.get("status") == "run_done":
                return

    listener = asyncio.create_task(listen())
    # Subscribed before the run starts: runlane counts the streams it serves; the
    # reference has no such gauge, so there a fixed wait.
    if before is None:
        await asyncio.sleep(0.5)
    else:
        await streams_opened(server, before)
    run = await client.runs.create(thread["thread_id"], "echo", input={"text": "t"})
    try:
        await asyncio.wait_for(listener, 30)
    except TimeoutError:
        pytest.fail("no metadata event {'status': 'run_done'} within 30 s; got "
                    f"{[(p.event, p.data) for p in parts]}")
    assert parts[0].event == "metadata" and parts[0].data["run_id"] == run["run_id"]
    values = [p.data for p in parts if p.event == "values"]
    assert values[-1] == {"text": "t", "echoed": ["t"]}
    assert parts[-1].data == {"status": "run_done", "run_id": run["run_id"]}
    unknown = await client.threads.join_stream(str(uuid.uuid4()))
    try:
        status = await asyncio.wait_for(status_of(collect(unknown)), 10)
    except TimeoutError:
        pytest.fail("join_stream of an unknown thread neither answered 404 nor ended "
                    "within 10 s")
    assert status == 404


@pytest.mark.compat("thread-stream", "threads.stream")
async def test_thread_stream_v3_runs_and_returns_output(client):
    async with client.threads.stream(assistant_id="echo") as session:
        started = await session.run.start(input={"text": "v3"})
        uuid.UUID(started["run_id"])
        output = await session.output.with_timeout(30)
    assert output == {"text": "v3", "echoed": ["v3"]}
    state = await client.threads.get_state(session.thread_id)
    assert state["values"] == output
    runs = await client.runs.list(session.thread_id)
    assert [r["run_id"] for r in runs] == [started["run_id"]]
