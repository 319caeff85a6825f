"""Threads through the real SDK: copy, prune, search, count, TTL and its sweeper.
Both backends (see conftest)."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from langgraph_sdk.errors import APIStatusError

from conftest import BACKENDS, ServerProcess
from sse_gauge import sse_streams, streams_opened


def _tag() -> str:
    return uuid.uuid4().hex


async def _status(coro) -> int:
    with pytest.raises(APIStatusError) as caught:
        await coro
    return caught.value.status_code


async def _gone(client, thread_id: str, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            await client.threads.get(thread_id)
        except APIStatusError as exc:
            if exc.status_code == 404:
                return True
            raise
        await asyncio.sleep(0.1)
    return False


async def _checkpoint_ids(client, thread_id: str) -> list[str]:
    history = await client.threads.get_history(thread_id, limit=100)
    return [state["checkpoint"]["checkpoint_id"] for state in history]


# -------------------------------------------------------------------- copy


async def test_copy_has_the_same_state_and_history_and_is_independent(client):
    thread = await client.threads.create(metadata={"k": "v"})
    tid = thread["thread_id"]
    for text in ("one", "two"):
        await client.runs.wait(tid, "echo", input={"text": text})
    copied = await client.threads.copy(tid)
    new = copied["thread_id"]
    assert new != tid
    assert copied["metadata"]["k"] == "v"
    source_state = await client.threads.get_state(tid)
    copy_state = await client.threads.get_state(new)
    assert copy_state["values"] == source_state["values"]
    assert copy_state["values"]["echoed"] == ["one", "two"]
    assert await _checkpoint_ids(client, new) == await _checkpoint_ids(client, tid)
    # the copy is its own thread: runs on it do not touch the source, and vice versa
    await client.runs.wait(new, "echo", input={"text": "three"})
    assert (await client.threads.get_state(new))["values"]["echoed"] == ["one", "two", "three"]
    assert (await client.threads.get_state(tid))["values"]["echoed"] == ["one", "two"]
    await client.threads.delete(tid)
    assert (await client.threads.get_state(new))["values"]["echoed"] == ["one", "two", "three"]
    assert await client.runs.list(new) != []  # its own run
    assert await _status(client.threads.copy(str(uuid.uuid4()))) == 404


async def test_copy_of_an_interrupted_thread_can_be_resumed(client):
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "hitl", input={"question": "ok?"})
    copied = await client.threads.copy(thread["thread_id"])
    assert copied["status"] == "interrupted"
    state = await client.threads.get_state(copied["thread_id"])
    assert state["next"] and state["interrupts"]


async def test_copy_of_an_empty_thread(client):
    thread = await client.threads.create(metadata={"empty": True})
    copied = await client.threads.copy(thread["thread_id"])
    assert copied["status"] == "idle" and copied["metadata"] == {"empty": True}
    assert await client.threads.get_history(copied["thread_id"]) == []


async def test_create_with_supersteps(client):
    thread = await client.threads.create(graph_id="echo", supersteps=[
        {"updates": [{"values": {"text": "a"}, "as_node": "__input__"}]},
        {"updates": [{"values": {"echoed": ["a"]}, "as_node": "echo"}]},
    ])
    assert thread["values"]["echoed"] == ["a"] and thread["status"] == "idle"
    assert len(await client.threads.get_history(thread["thread_id"])) == 2
    await client.runs.wait(thread["thread_id"], "echo", input={"text": "b"})
    assert (await client.threads.get_state(thread["thread_id"]))["values"]["echoed"] == ["a", "b"]
    # refused: no graph, an unknown node; no thread is left behind
    assert await _status(client.threads.create(supersteps=[
        {"updates": [{"values": {}, "as_node": "echo"}]}])) == 422
    thread_id = str(uuid.uuid4())
    assert await _status(client.threads.create(thread_id=thread_id, graph_id="echo", supersteps=[
        {"updates": [{"values": {"echoed": ["x"]}, "as_node": "nowhere"}]}])) == 422
    assert await _status(client.threads.get(thread_id)) == 404


# ------------------------------------------------------------------- prune


async def test_prune_delete_and_keep_latest(client):
    doomed = [await client.threads.create() for _ in range(2)]
    for thread in doomed:
        await client.runs.wait(thread["thread_id"], "echo", input={"text": "x"})
    unknown = str(uuid.uuid4())
    result = await client.threads.prune([t["thread_id"] for t in doomed] + [unknown])
    assert result == {"pruned_count": 2}
    for thread in doomed:
        assert await _status(client.threads.get(thread["thread_id"])) == 404

    kept = await client.threads.create()
    for text in ("a", "b", "c"):
        await client.runs.wait(kept["thread_id"], "echo", input={"text": text})
    before = await _checkpoint_ids(client, kept["thread_id"])
    assert len(before) > 3
    result = await client.threads.prune([kept["thread_id"]], strategy="keep_latest")
    assert result == {"pruned_count": 1}
    assert await _checkpoint_ids(client, kept["thread_id"]) == before[:1]
    state = await client.threads.get_state(kept["thread_id"])
    assert state["values"]["echoed"] == ["a", "b", "c"]
    # and the thread goes on from there
    await client.runs.wait(kept["thread_id"], "echo", input={"text": "d"})
    assert (await client.threads.get_state(kept["thread_id"]))["values"]["echoed"][-1] == "d"


@pytest.mark.race
async def test_concurrent_prunes_count_each_thread_once(client):
    threads = [await client.threads.create() for _ in range(10)]
    ids = [t["thread_id"] for t in threads]
    results = await asyncio.gather(*(client.threads.prune(ids[i % 3:] + ids[:i % 3])
                                     for i in range(6)))
    assert sum(r["pruned_count"] for r in results) == len(ids)
    assert await client.threads.search(ids=ids) == []


@pytest.mark.race
async def test_concurrent_thread_creates_of_one_id(client):
    for _ in range(5):
        thread_id = str(uuid.uuid4())
        raised = await asyncio.gather(*(
            client.threads.create(thread_id=thread_id, metadata={"i": i}) for i in range(8)),
            return_exceptions=True)
        won = [r for r in raised if isinstance(r, dict)]
        assert len(won) == 1, raised
        assert all(isinstance(e, APIStatusError) and e.status_code == 409
                   for e in raised if not isinstance(e, dict))
        same = await asyncio.gather(*(
            client.threads.create(thread_id=thread_id, if_exists="do_nothing",
                                  metadata={"i": -1}) for _ in range(8)))
        assert all(t["metadata"] == won[0]["metadata"] for t in same)


# ------------------------------------------------------------ search/count


async def test_search_and_count(client):
    tag = _tag()
    idle = await client.threads.create(metadata={"tag": tag, "kind": "idle"})
    ran = await client.threads.create(metadata={"tag": tag, "kind": "ran"})
    await client.runs.wait(ran["thread_id"], "echo", input={"text": tag})
    paused = await client.threads.create(metadata={"tag": tag, "kind": "paused"})
    await client.runs.wait(paused["thread_id"], "hitl", input={"question": "?"})

    assert await client.threads.count(metadata={"tag": tag}) == 3
    assert await client.threads.count(metadata={"tag": tag}, status="interrupted") == 1
    found = await client.threads.search(metadata={"tag": tag}, status="interrupted")
    assert [t["thread_id"] for t in found] == [paused["thread_id"]]
    by_values = await client.threads.search(values={"text": tag})
    assert [t["thread_id"] for t in by_values] == [ran["thread_id"]]
    assert await client.threads.count(values={"text": tag}) == 1
    by_ids = await client.threads.search(ids=[idle["thread_id"], paused["thread_id"]])
    assert {t["thread_id"] for t in by_ids} == {idle["thread_id"], paused["thread_id"]}
    # created_at desc by default; asc reverses; pages cover the set exactly once
    desc = [t["thread_id"] for t in await client.threads.search(metadata={"tag": tag})]
    assert desc == [paused["thread_id"], ran["thread_id"], idle["thread_id"]]
    asc = await client.threads.search(metadata={"tag": tag}, sort_order="asc")
    assert [t["thread_id"] for t in asc] == desc[::-1]
    pages = [await client.threads.search(metadata={"tag": tag}, limit=1, offset=i)
             for i in range(4)]
    assert [p[0]["thread_id"] for p in pages[:3]] == desc and pages[3] == []
    by_id = await client.threads.search(metadata={"tag": tag}, sort_by="thread_id",
                                        sort_order="asc")
    assert [t["thread_id"] for t in by_id] == sorted(desc)
    selected = await client.threads.search(metadata={"tag": tag}, select=["thread_id",
                                                                          "status"])
    assert all(set(t) == {"thread_id", "status"} for t in selected)
    picked = await client.threads.search(
        ids=[ran["thread_id"]], select=["thread_id"],
        extract={"last": "values.echoed[-1]", "kind": "metadata.kind", "none": "values.x[3]"})
    assert picked == [{"thread_id": ran["thread_id"],
                       "extracted": {"last": tag, "kind": "ran", "none": None}}]


async def test_nul_characters_never_break_searches(client, server):
    """A NUL character in one thread's metadata (any client may send one) must not
    fail anyone's search: PostgreSQL's jsonb refuses it, and the search used to cast
    every row (a 500 for every later search, for every owner); SQLite's JSON functions
    cut strings at it. Searches for it find it, on both backends. The assistants and
    crons filters share the code."""
    tag = _tag()
    nul = await client.threads.create(metadata={"tag": tag, "k": "a\u0000b", "a\u0000": 1,
                                                 "l": ["x\u0000"]})
    plain = await client.threads.create(metadata={"tag": tag, "k": "ab", "l": ["x"]})
    assert await client.threads.count(metadata={"tag": tag}) == 2
    for metadata, expected in [({"k": "a\u0000b"}, [nul]), ({"k": "ab"}, [plain]),
                               ({"l": ["x\u0000"]}, [nul]),
                               ({"l": ["x"]}, [plain])]:
        found = await client.threads.search(metadata={"tag": tag, **metadata})
        assert [t["thread_id"] for t in found] == [t["thread_id"] for t in expected], metadata
    with pytest.raises(APIStatusError) as refused:  # a NUL key: refused, and said why
        await client.threads.search(metadata={"a\u0000": 1})
    assert refused.value.response.status_code == 422
    assert (await client.threads.get(nul["thread_id"]))["metadata"]["k"] == "a\u0000b"
    assert await client.assistants.search(metadata={"k": "\u0000"}) == []
    if isinstance(server, ServerProcess):  # SQLite: a graph's state may hold NUL too
        # (langgraph's PostgreSQL checkpointer stores state as jsonb and refuses it:
        # such a run ends `error` there, and no thread's values ever hold NUL.)
        await client.runs.wait(nul["thread_id"], "echo", input={"text": f"{tag}\u0000"})
        assert [t["thread_id"] for t in await client.threads.search(
            values={"text": f"{tag}\u0000"})] == [nul["thread_id"]]
        assert await client.threads.search(values={"text": tag}) == []


# --------------------------------------------------------------------- TTL

TTL_MINUTES = 0.03  # 1.8 s


async def test_ttl_on_create_deletes_the_thread_with_its_checkpoints(client):
    thread = await client.threads.create(ttl=TTL_MINUTES)
    await client.runs.wait(thread["thread_id"], "echo", input={"text": "x"})
    kept = await client.threads.create(ttl={"strategy": "delete", "ttl": 60})
    started = time.monotonic()
    assert await _gone(client, thread["thread_id"], within=15)
    assert time.monotonic() - started > 1.0  # not before its time (less the run above)
    assert await client.threads.get_history(kept["thread_id"]) == []  # still there
    assert (await client.threads.get(kept["thread_id"]))["thread_id"] == kept["thread_id"]


async def test_ttl_is_refreshed_by_activity_and_never_expires_a_busy_thread(client):
    thread = await client.threads.create(ttl=TTL_MINUTES)
    tid = thread["thread_id"]
    # A run far longer than the TTL: the thread stays while it runs, and after it
    # ends the TTL counts from the end.
    run = await client.runs.create(tid, "sleepy", input={"steps": 40, "delay": 0.1})
    await client.runs.join(tid, run["run_id"])
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"
    assert (await client.threads.get(tid))["thread_id"] == tid
    # patches keep it alive
    for _ in range(4):
        await asyncio.sleep(1.0)
        await client.threads.update(tid, metadata={"touched": True})
    assert (await client.threads.get(tid))["metadata"]["touched"] is True
    assert await _gone(client, tid, within=15)


async def test_ttl_set_by_update_and_keep_latest(client):
    thread = await client.threads.create()
    tid = thread["thread_id"]
    for text in ("a", "b"):
        await client.runs.wait(tid, "echo", input={"text": text})
    assert len(await _checkpoint_ids(client, tid)) > 2
    await client.threads.update(tid, metadata={}, ttl={"strategy": "keep_latest",
                                                       "ttl": TTL_MINUTES})
    deadline = time.monotonic() + 15
    while len(await _checkpoint_ids(client, tid)) > 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert len(await _checkpoint_ids(client, tid)) == 1
    assert (await client.threads.get_state(tid))["values"]["echoed"] == ["a", "b"]
    assert (await client.threads.get(tid))["thread_id"] == tid  # kept
    # a plain TTL (minutes as a number) replaces it: now the thread is deleted
    await client.threads.update(tid, metadata={}, ttl=TTL_MINUTES)
    assert await _gone(client, tid, within=15)


def _server_logs(server) -> str:
    return "".join(w.log() for w in getattr(server, "workers", [server]))


@pytest.mark.race
async def test_ttl_expiry_happens_once_across_workers(client, server):
    """Every worker sweeps; each expired thread is deleted by exactly one of them."""
    threads = [await client.threads.create(ttl=0.01) for _ in range(20)]
    for thread in threads:
        assert await _gone(client, thread["thread_id"], within=20)
    await asyncio.sleep(1.0)  # let any second (wrong) deletion be logged too
    logs = _server_logs(server)
    for thread in threads:
        assert logs.count(f"thread {thread['thread_id']} expired") == 1


@pytest.mark.race
async def test_ttl_expiry_races_new_runs(client):
    """Runs created while their thread expires: each one either finds the thread
    gone (404), or is admitted and then the thread outlives it with its result."""
    threads = [await client.threads.create(ttl=0.02) for _ in range(12)]

    async def run_late(thread_id: str, delay: float) -> str | None:
        await asyncio.sleep(delay)
        try:
            result = await client.runs.wait(thread_id, "echo", input={"text": thread_id})
        except (APIStatusError, httpx.HTTPStatusError) as exc:
            # runs.wait raises httpx's error (it reconnects), the rest the SDK's
            assert exc.response.status_code == 404, exc
            return None
        assert result["echoed"] == [thread_id]
        return thread_id

    outcomes = await asyncio.gather(*(
        run_late(t["thread_id"], 0.9 + 0.05 * i) for i, t in enumerate(threads)))
    admitted = sum(o is not None for o in outcomes)
    print(f"\nTTL race: {admitted} runs admitted, {len(outcomes) - admitted} found the thread gone")
    for thread_id in filter(None, outcomes):
        # admitted: the run's end was activity, so the thread is still there now
        state = await client.threads.get_state(thread_id)
        assert state["values"]["echoed"] == [thread_id]
    for thread in threads:  # and in the end every one of them expires
        assert await _gone(client, thread["thread_id"], within=20)


# --------------------------------------------------------------- bad input


def test_bad_input(http):
    tid = http.post("/threads", json={}).json()["thread_id"]
    cases = [
        ("post", "/threads", {"ttl": 0}, "ttl"),
        ("post", "/threads", {"ttl": -5}, "ttl"),
        ("post", "/threads", {"ttl": "soon"}, "ttl"),
        ("post", "/threads", {"ttl": {"strategy": "archive", "ttl": 5}}, "strategy"),
        ("post", "/threads", {"ttl": {"strategy": "delete"}}, "ttl"),
        ("post", "/threads", {"ttl": {"ttl": 5, "when": "now"}}, "when"),
        ("post", "/threads", {"ttl": {"ttl": 1e300}}, "ttl"),
        ("patch", f"/threads/{tid}", {"ttl": {"ttl": 0}}, "ttl"),
        ("post", "/threads/prune", {"thread_ids": []}, "thread_ids"),
        ("post", "/threads/prune", {"thread_ids": ["nope"]}, "thread_ids"),
        ("post", "/threads/prune", {"thread_ids": [tid], "strategy": "shred"}, "strategy"),
        ("post", "/threads/prune", {}, "thread_ids"),
        ("post", "/threads/search", {"status": "sleeping"}, "status"),
        ("post", "/threads/search", {"sort_by": "colour"}, "sort_by"),
        ("post", "/threads/search", {"select": ["secret"]}, "select"),
        ("post", "/threads/search", {"ids": ["x"]}, "ids"),
        ("post", "/threads/search", {"extract": {"a": "secret.x"}}, "extract"),
        ("post", "/threads/search", {"extract": {"a": "values[x]"}}, "extract"),
        ("post", "/threads/search", {"extract": {"a": 5}}, "extract"),
        ("post", "/threads/search", {"extract": {f"k{i}": "values" for i in range(11)}},
         "at most 10"),
        ("post", "/threads", {"supersteps": [{"updates": []}]}, "updates"),
        ("post", "/threads", {"supersteps": [{"updates": [{"values": {}}]}]}, "as_node"),
        ("post", "/threads", {"metadata": {"graph_id": "echo"}, "supersteps": [{"updates": [
            {"values": {}, "as_node": "echo", "command": {"resume": 1}}]}]}, "command"),
        ("post", "/threads/count", {"status": "sleeping"}, "status"),
        ("post", "/threads/count", {"metadata": []}, "metadata"),
    ]
    for method, path, body, mentioned in cases:
        response = http.request(method.upper(), path, json=body)
        assert response.status_code == 422, (path, body, response.text)
        assert mentioned in response.text, (path, body, response.text)
    assert http.post("/threads/not-a-uuid/copy").status_code == 422
    assert http.post(f"/threads/{uuid.uuid4()}/copy").status_code == 404
    assert http.get(f"/threads/{tid}").status_code == 200  # nothing above touched it


# ----------------------------------------------------------- thread stream


def _is_run_done(part) -> bool:
    """The event after each run of a thread stream: `metadata` with status run_done,
    as the LangGraph server sends it."""
    return part.event == "metadata" and part.data.get("status") == "run_done"


async def _collect(stream, until_done: int, timeout: float = 30) -> list:
    """Stream parts until `until_done` run_done events (then the stream is dropped)."""
    parts = []

    async def read() -> None:
        done = 0
        # threads.join_stream is a coroutine that returns the stream
        async for part in (await stream if asyncio.iscoroutine(stream) else stream):
            parts.append(part)
            if _is_run_done(part):
                done += 1
                if done == until_done:
                    return

    await asyncio.wait_for(read(), timeout)
    return parts


async def test_thread_stream_follows_every_run_in_order(client, server):
    thread = await client.threads.create()
    tid = thread["thread_id"]
    before = await sse_streams(server)
    stream = client.threads.join_stream(tid)
    reader = asyncio.ensure_future(_collect(stream, 2))
    await streams_opened(server, before)  # subscribed before the runs
    first = await client.runs.create(tid, "emitter", input={"count": 3},
                                     stream_mode=["custom", "values"])
    second = await client.runs.create(tid, "emitter", input={"count": 2},
                                      stream_mode=["custom"])
    parts = await reader
    runs = [first["run_id"], second["run_id"]]
    done = [p for p in parts if _is_run_done(p)]
    assert [p.data for p in done] == [{"status": "run_done", "run_id": r} for r in runs]
    assert [(await client.runs.get(tid, r))["status"] for r in runs] == ["success"] * 2
    # each run's events: its metadata first, its own events, then its run_done
    for run_id, count in zip(runs, (3, 2), strict=True):
        mine = [p for p in parts if p.id and p.id.startswith(run_id + ":")]
        assert mine[0].event == "metadata" and mine[0].data["run_id"] == run_id
        assert [p.data for p in mine if p.event == "custom"] == [{"i": i} for i in range(count)]
        assert _is_run_done(mine[-1]) and mine[-1].id == f"{run_id}:done"
        assert not any(_is_run_done(p) for p in mine[:-1])
    # in order: all of the first run before any of the second
    owners = [p.id.split(":")[0] for p in parts if p.id]
    assert owners == sorted(owners, key=runs.index)
    numbered = [int(p.id.split(":")[1]) for p in parts if p.id and not p.id.endswith(":done")
                and p.id.startswith(runs[0])]
    assert numbered == sorted(numbered) and len(set(numbered)) == len(numbered)


@pytest.mark.race
async def test_thread_stream_sees_concurrently_created_runs_in_order(client, server):
    thread = await client.threads.create()
    tid = thread["thread_id"]
    before = await sse_streams(server)
    reader = asyncio.ensure_future(_collect(client.threads.join_stream(tid), 6))
    await streams_opened(server, before)  # subscribed before the runs
    created = await asyncio.gather(*(
        client.runs.create(tid, "emitter", input={"count": 5}, stream_mode=["custom"],
                           multitask_strategy="enqueue") for _ in range(6)))
    parts = await reader
    order = [p.data["run_id"] for p in parts if _is_run_done(p)]
    assert sorted(order) == sorted(r["run_id"] for r in created)
    runs = await client.runs.list(tid, limit=10)  # newest first
    assert order == [r["run_id"] for r in runs][::-1]  # creation order
    for run_id in order:
        mine = [p for p in parts if p.id and p.id.startswith(run_id + ":")]
        assert [p.data for p in mine if p.event == "custom"] == [{"i": i} for i in range(5)]
        assert len({p.id for p in mine}) == len(mine)  # no event twice


async def test_thread_stream_joined_mid_run_and_resumed_with_last_event_id(client):
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "sleepy", input={"steps": 8, "delay": 0.1},
                                   stream_mode=["custom", "values"])
    nxt = await client.runs.create(tid, "emitter", input={"count": 2}, stream_mode=["custom"])
    # joined while the first run is active: it starts with that run, from its first
    # event; so does a join with an id runlane did not issue (as the reference replays)
    full, foreign = await asyncio.gather(
        _collect(client.threads.join_stream(tid), 2),
        _collect(client.threads.join_stream(tid, last_event_id="1733456789012-0"), 2))
    assert [(p.event, p.id) for p in foreign] == [(p.event, p.id) for p in full]
    assert full[0].event == "metadata" and full[0].data["run_id"] == run["run_id"]
    assert _is_run_done(full[-1]) and full[-1].data["run_id"] == nxt["run_id"]
    # every cut point: a reconnect with the last id received gets exactly the rest
    for cut in (1, 3, len(full) // 2, len(full) - 2):
        last = full[cut - 1].id
        expected = full[cut:]
        rest = await _collect(client.threads.join_stream(tid, last_event_id=last),
                              sum(_is_run_done(p) for p in expected))
        assert [(p.event, p.id) for p in rest] == [(p.event, p.id) for p in expected], cut


async def test_thread_stream_modes(client, server):
    thread = await client.threads.create()
    tid = thread["thread_id"]
    before = await sse_streams(server)
    lifecycle = asyncio.ensure_future(_collect(
        client.threads.join_stream(tid, stream_mode="lifecycle"), 1))
    states = asyncio.ensure_future(_collect(
        client.threads.join_stream(tid, stream_mode=["state_update", "lifecycle"]), 1))
    await streams_opened(server, before, count=2)  # both subscribed before the run
    run = await client.runs.create(tid, "echo", input={"text": "s"}, stream_mode=["values",
                                                                               "updates"])
    parts = await lifecycle
    assert [p.event for p in parts] == ["metadata", "metadata"]
    assert parts[0].data["run_id"] == run["run_id"] and not _is_run_done(parts[0])
    assert parts[1].data == {"status": "run_done", "run_id": run["run_id"]}
    parts = await states
    assert {p.event for p in parts} == {"metadata", "values"} and _is_run_done(parts[-1])
    assert [p.data for p in parts if p.event == "values"][-1]["echoed"] == ["s"]


async def test_thread_stream_ends_when_the_thread_is_deleted(client):
    thread = await client.threads.create()

    async def read_all() -> list:
        return [p async for p in await client.threads.join_stream(thread["thread_id"])]

    reader = asyncio.ensure_future(read_all())
    # Open while the thread lives: a stream that ended on its own would also end
    # empty, so this wait is what tells them apart (a fixed one, kept).
    await asyncio.sleep(0.5)
    assert not reader.done()
    await client.threads.delete(thread["thread_id"])
    assert await asyncio.wait_for(reader, 10) == []


def test_thread_stream_bad_input(http):
    tid = http.post("/threads", json={}).json()["thread_id"]
    for params, headers, mentioned in [
        ({"stream_mode": "values"}, {}, "stream_mode"),
        ({"stream_mode": ["lifecycle", "bogus"]}, {}, "bogus"),
    ]:
        response = http.get(f"/threads/{tid}/stream", params=params, headers=headers)
        assert response.status_code == 422 and mentioned in response.text, response.text
    assert http.get(f"/threads/{uuid.uuid4()}/stream").status_code == 404
    assert http.get("/threads/nope/stream").status_code == 422


# ----------------------------------------------------------------- owners
# Auth (which sets the caller's owner) is built separately; the ownership rule is
# the store's, so it is tested on the store directly, on both databases.


@pytest.fixture(params=BACKENDS)
async def store(request, tmp_path):
    from runlane.store import Store

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'owners.sqlite'}"
        drop = None
    else:
        from cluster import create_database, drop_database, require_services

        require_services()
        url = create_database()
        drop = url
    store = Store(url)
    await store.setup()
    yield store
    await store.close()
    if drop:
        drop_database(drop)


async def test_another_owners_rows_look_missing(store):
    from runlane.errors import Conflict, NotFound
    from runlane.serde import utcnow

    now = utcnow()

    def thread_row() -> dict:
        return {"thread_id": str(uuid.uuid4()), "status": "idle", "metadata": {"m": 1},
                "config": {}, "values": None, "interrupts": {}, "temporary": False,
                "created_at": now, "updated_at": now}

    mine = await store.create_thread(thread_row(), "raise", owner="alice")
    tid = mine.thread_id
    assert (await store.get_thread(tid, owner="alice")).owner == "alice"
    assert await store.get_thread(tid, owner="bob") is None
    assert await store.patch_thread(tid, {"x": 1}, owner="bob") is None
    assert await store.delete_thread(tid, owner="bob") is None
    assert await store.search_threads(metadata_filter={"m": 1}, values_filter=None,
                                      status=None, ids=[tid], limit=10, offset=0,
                                      sort_by="created_at", sort_order="desc",
                                      owner="bob") == []
    assert await store.count_threads(metadata_filter=None, values_filter=None, status=None,
                                     owner="bob") == 0
    assert await store.visible_thread_ids([tid], owner="bob") == []
    with pytest.raises(Conflict):  # bob cannot take the id, nor see alice's thread
        await store.create_thread({**thread_row(), "thread_id": tid}, "do_nothing", owner="bob")
    assert await store.visible_thread_ids([tid], owner="alice") == [tid]
    assert await store.count_threads(metadata_filter=None, values_filter=None, status=None,
                                     owner=None) >= 1  # auth off sees everything

    def assistant_row() -> dict:
        return {"assistant_id": str(uuid.uuid4()), "graph_id": "echo", "name": "a",
                "description": None, "config": {}, "context": {}, "metadata": {"m": 1},
                "version": 1, "created_at": now, "updated_at": now}

    made = await store.insert_assistant(assistant_row(), "raise", owner="alice")
    aid = made.assistant_id
    assert await store.get_assistant(aid, owner="bob") is None
    assert await store.update_assistant(aid, {"name": "b"}, owner="bob") is None
    with pytest.raises(NotFound):
        await store.list_assistant_versions(aid, metadata_filter=None, limit=10, offset=0,
                                            owner="bob")
    with pytest.raises(NotFound):
        await store.set_latest_assistant_version(aid, 1, owner="bob")
    assert await store.delete_assistant(aid, owner="bob") is None
    assert await store.search_assistants(graph_id=None, name=None, metadata_filter={"m": 1},
                                         limit=10, offset=0, sort_by="created_at",
                                         sort_order="desc", owner="bob") == []
    assert await store.count_assistants(graph_id=None, metadata_filter=None, owner="bob") == 0
    with pytest.raises(Conflict):
        await store.insert_assistant({**assistant_row(), "assistant_id": aid}, "do_nothing",
                                     owner="bob")
    updated = await store.update_assistant(aid, {"name": "b"}, owner="alice")
    assert updated.version == 2 and updated.owner == "alice"
    assert await store.delete_assistant(aid, owner="alice") == []  # deleted, none active


# ------------------------------------------------- state, runs, interrupts (compat)


async def test_update_state_forks_from_an_earlier_checkpoint(client):
    """update_state with only a checkpoint_id (the root namespace implied) forks from
    it, on SQLite as on PostgreSQL, and leaves the later checkpoints alone."""
    thread = await client.threads.create()
    tid = thread["thread_id"]
    await client.runs.wait(tid, "echo", input={"text": "a"})
    before = await client.threads.get_state(tid)
    later = await client.threads.update_state(tid, {"echoed": ["later"]}, as_node="echo")
    fork = await client.threads.update_state(
        tid, {"echoed": ["fork"]}, as_node="echo", checkpoint_id=before["checkpoint_id"])
    assert fork["checkpoint"]["checkpoint_ns"] == ""
    state = await client.threads.get_state(tid)
    assert state["checkpoint_id"] == fork["checkpoint"]["checkpoint_id"]
    assert state["parent_checkpoint_id"] == before["checkpoint_id"]
    assert state["values"]["echoed"] == ["a", "fork"]
    kept = await client.threads.get_state(tid, checkpoint_id=later["checkpoint"]["checkpoint_id"])
    assert kept["values"]["echoed"] == ["a", "later"]
    assert (await client.threads.get(tid))["values"]["echoed"] == ["a", "fork"]
    assert await _status(client.threads.update_state(
        tid, {"echoed": ["x"]}, checkpoint_id=str(uuid.uuid4()))) == 404


async def test_runs_list_filters_pages_and_selects(client, http):
    thread = await client.threads.create()
    tid = thread["thread_id"]
    made = []
    for text in "abc":
        run = await client.runs.create(tid, "echo", input={"text": text})
        await client.runs.join(tid, run["run_id"])
        made.append(run["run_id"])
    failed = await client.runs.create(tid, "failing", input={})
    await client.runs.join(tid, failed["run_id"])
    assert [r["run_id"] for r in await client.runs.list(tid)] == [failed["run_id"], *made[::-1]]
    assert [r["run_id"] for r in await client.runs.list(tid, limit=2, offset=1)] == made[:0:-1]
    assert [r["run_id"] for r in await client.runs.list(tid, status="error")] == [
        failed["run_id"]]
    assert await client.runs.list(tid, status="interrupted") == []
    selected = await client.runs.list(tid, select=["run_id", "status"])
    assert selected == [{"run_id": failed["run_id"], "status": "error"},
                        *({"run_id": r, "status": "success"} for r in made[::-1])]
    response = http.get(f"/threads/{tid}/runs", params={"select": ["run_id", "secret"]})
    assert response.status_code == 422 and "select" in response.text, response.text
    response = http.get(f"/threads/{tid}/runs", params={"status": "sleeping"})
    assert response.status_code == 422 and "status" in response.text, response.text


async def test_interrupts_leave_out_an_absent_response_schema(client):
    """The SDK types Interrupt.response_schema as an optional object: absent when the
    graph gave none, never null: in the state's tasks, its interrupts, the thread's
    interrupts and the wait result."""
    thread = await client.threads.create()
    tid = thread["thread_id"]
    result = await client.runs.wait(tid, "hitl", input={"question": "ok?"})
    state = await client.threads.get_state(tid)
    found = [*result["__interrupt__"], *state["interrupts"],
             *(i for task in state["tasks"] for i in task["interrupts"]),
             *(i for group in (await client.threads.get(tid))["interrupts"].values()
               for i in group)]
    assert len(found) == 4
    for interrupt in found:
        assert interrupt == {"value": {"question": "ok?"}, "id": found[0]["id"]}
    searched = await client.threads.search(ids=[tid])
    assert [i for group in searched[0]["interrupts"].values() for i in group] == [found[0]]
    other = await client.threads.create()
    streamed = [part.data["__interrupt__"] async for part in client.runs.stream(
        other["thread_id"], "hitl", input={"question": "s?"}, stream_mode="updates")
        if part.event == "updates" and "__interrupt__" in part.data]
    assert [[set(i) for i in group] for group in streamed] == [[{"value", "id"}]]
