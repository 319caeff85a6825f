"""client.runs: every method against a real server, shape and meaning.

Where runlane deliberately answers differently from the reference server (the run
contract's cancel answers), the test branches on `is_reference`, with a pointer to
the section of docs/compatibility.md that documents the difference.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

from compat.shapes import Run, Thread, assert_shape
from compat.support import (
    WebhookReceiver,
    collect,
    default_assistant,
    status_of,
    tag,
    wait_terminal,
    wait_until,
)

SLOW = {"steps": 200, "delay": 0.05}  # a `sleepy` run that lasts ~10 s unless cancelled


async def _running(client, graph="sleepy", thread_id=None, **run):
    """A thread with a run of `graph` that has started executing."""
    if thread_id is None:
        thread_id = (await client.threads.create())["thread_id"]
    created = await client.runs.create(thread_id, graph, input=run.pop("input", SLOW), **run)

    async def started():
        return (await client.runs.get(thread_id, created["run_id"]))["status"] == "running"

    await wait_until(started, every=0.05)
    return thread_id, created["run_id"]


# ------------------------------------------------------------------- create


@pytest.mark.compat("runs", "runs.create", "runs.join")
async def test_create_then_join(client):
    thread = await client.threads.create()
    marker = tag()
    run = await client.runs.create(thread["thread_id"], "echo", input={"text": "hi"},
                                   metadata={"tag": marker})
    assert_shape(run, Run)
    assert run["thread_id"] == thread["thread_id"]
    assert run["status"] in ("pending", "running")
    assert run["metadata"]["tag"] == marker
    assert run["multitask_strategy"] == "enqueue"
    assert run["assistant_id"] == (await default_assistant(client, "echo"))["assistant_id"]
    result = await client.runs.join(thread["thread_id"], run["run_id"])
    assert result == {"text": "hi", "echoed": ["hi"]}
    # join of a finished run answers its result at once
    assert await client.runs.join(thread["thread_id"], run["run_id"]) == result
    assert (await client.runs.get(thread["thread_id"], run["run_id"]))["status"] == "success"


@pytest.mark.compat("runs", "runs.create")
async def test_create_if_not_exists(client):
    thread_id = str(uuid.uuid4())
    assert await status_of(client.runs.create(thread_id, "echo", input={"text": "x"})) == 404
    run = await client.runs.create(thread_id, "echo", input={"text": "x"}, if_not_exists="create")
    assert run["thread_id"] == thread_id
    await client.runs.join(thread_id, run["run_id"])
    assert (await client.threads.get_state(thread_id))["values"] == {"text": "x", "echoed": ["x"]}


@pytest.mark.compat("runs", "runs.create")
async def test_create_stateless(client):
    """A run without a thread gets a temporary one, deleted once the run is done."""
    run = await client.runs.create(None, "echo", input={"text": "s"})
    assert_shape(run, Run)
    uuid.UUID(run["thread_id"])

    async def thread_gone():
        try:
            await client.threads.get(run["thread_id"])
        except httpx.HTTPStatusError as exc:
            return exc.response.status_code == 404
        return False

    await wait_until(thread_gone, timeout=15)


@pytest.mark.compat("runs", "runs.create")
async def test_create_for_unknown_assistant(client):
    thread = await client.threads.create()
    assert await status_of(client.runs.create(thread["thread_id"], str(uuid.uuid4()))) == 404


@pytest.mark.compat("runs", "runs.create", "runs.get")
async def test_multitask_strategies(client):
    thread_id, first = await _running(client)
    assert await status_of(client.runs.create(
        thread_id, "echo", input={"text": "r"}, multitask_strategy="reject")) == 409
    queued = await client.runs.create(thread_id, "echo", input={"text": "q"})
    assert queued["status"] == "pending"
    interrupting = await client.runs.create(thread_id, "echo", input={"text": "i"},
                                            multitask_strategy="interrupt")
    assert interrupting["multitask_strategy"] == "interrupt"
    await client.runs.join(thread_id, interrupting["run_id"])
    assert (await client.runs.get(thread_id, first))["status"] == "interrupted"
    assert (await wait_terminal(client, thread_id, interrupting["run_id"]))["status"] == "success"


@pytest.mark.compat("runs", "runs.create", "runs.join", "threads.get_state")
async def test_resume_after_interrupt(client):
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "hitl", input={"question": "ok?"})
    assert (await client.threads.get(thread["thread_id"]))["status"] == "interrupted"
    run = await client.runs.create(thread["thread_id"], "hitl", command={"resume": "yes"})
    result = await client.runs.join(thread["thread_id"], run["run_id"])
    assert result == {"question": "ok?", "answer": "yes", "done": True}
    assert (await client.threads.get(thread["thread_id"]))["status"] == "idle"


@pytest.mark.compat("runs", "runs.create", "threads.get_state")
async def test_interrupt_before(client):
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "quick", input={"n": 0},
                                   interrupt_before=["second"])
    await client.runs.join(thread["thread_id"], run["run_id"])
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"] == {"n": 1}
    assert state["next"] == ["second"]
    assert (await client.runs.get(thread["thread_id"], run["run_id"]))["status"] == "success"


@pytest.mark.compat("runs-batch", "runs.create_batch")
async def test_create_batch(client):
    """A batch of stateless background runs, one per payload, in payload order. (The
    reference ignores a `thread_id` in a payload: every batch run is stateless.)"""
    runs = await client.runs.create_batch([
        {"assistant_id": "echo", "input": {"text": "b1"}, "on_completion": "keep"},
        {"assistant_id": "quick", "input": {"n": 10}, "on_completion": "keep"},
    ])
    assert len(runs) == 2
    for run in runs:
        assert_shape(run, Run)
    assert len({run["run_id"] for run in runs}) == len({run["thread_id"] for run in runs}) == 2
    for run in runs:
        assert (await wait_terminal(client, run["thread_id"], run["run_id"]))["status"] == "success"
    assert (await client.threads.get_state(runs[0]["thread_id"]))["values"] == {
        "text": "b1", "echoed": ["b1"]}
    assert (await client.threads.get_state(runs[1]["thread_id"]))["values"] == {"n": 12}


# ------------------------------------------------------------------- stream / wait


@pytest.mark.compat("runs", "runs.stream")
async def test_stream(client):
    thread = await client.threads.create()
    parts = await collect(client.runs.stream(
        thread["thread_id"], "emitter", input={"count": 3}, stream_mode=["custom", "values"]))
    assert parts[0].event == "metadata"
    run_id = parts[0].data["run_id"]
    assert (await client.runs.get(thread["thread_id"], run_id))["status"] == "success"
    assert [p.data for p in parts if p.event == "custom"] == [{"i": 0}, {"i": 1}, {"i": 2}]
    values = [p.data for p in parts if p.event == "values"]
    assert values[-1] == {"count": 3, "emitted": 3}
    assert {p.event for p in parts} == {"metadata", "custom", "values"}


@pytest.mark.compat("runs", "runs.stream")
async def test_stream_updates_and_subgraphs(client):
    parts = await collect(client.runs.stream(
        None, "nested", input={"steps": 1}, stream_mode="updates", stream_subgraphs=True))
    events = [p.event for p in parts]
    assert events[0] == "metadata"
    assert "updates" in events  # the parent graph's own updates
    assert any(e.startswith("updates|child:") for e in events), events  # the subgraph's


@pytest.mark.compat("runs", "runs.stream")
async def test_stream_error_event(client):
    parts = await collect(client.runs.stream(None, "failing", input={}))
    errors = [p for p in parts if p.event == "error"]
    assert len(errors) == 1
    assert "boom" in str(errors[0].data)


@pytest.mark.compat("runs", "runs.wait")
async def test_wait(client):
    thread = await client.threads.create()
    assert await client.runs.wait(thread["thread_id"], "quick", input={"n": 5}) == {"n": 7}
    assert await client.runs.wait(None, "echo", input={"text": "w"}) == {
        "text": "w", "echoed": ["w"]}
    paused = await client.runs.wait(thread["thread_id"], "hitl", input={"question": "q"})
    assert [i["value"] for i in paused["__interrupt__"]] == [{"question": "q"}]
    failed = await client.runs.wait(None, "failing", input={}, raise_error=False)
    assert failed["__error__"]["error"] == "ValueError"
    assert "boom" in failed["__error__"]["message"]
    with pytest.raises(Exception, match="boom"):
        await client.runs.wait(None, "failing", input={})


# ------------------------------------------------------------------- read


@pytest.mark.compat("runs", "runs.list")
async def test_list(client):
    thread = await client.threads.create()
    made = []
    for text in ("a", "b", "c"):
        run = await client.runs.create(thread["thread_id"], "echo", input={"text": text})
        await client.runs.join(thread["thread_id"], run["run_id"])
        made.append(run["run_id"])
    failed = await client.runs.create(thread["thread_id"], "failing", input={})
    await wait_terminal(client, thread["thread_id"], failed["run_id"])
    listed = await client.runs.list(thread["thread_id"])
    for run in listed:
        assert_shape(run, Run)
    assert [r["run_id"] for r in listed] == [failed["run_id"], *reversed(made)]  # newest first
    page = await client.runs.list(thread["thread_id"], limit=2, offset=1)
    assert [r["run_id"] for r in page] == [made[2], made[1]]
    assert [r["run_id"] for r in await client.runs.list(thread["thread_id"], status="error")] == [
        failed["run_id"]]
    selected = await client.runs.list(thread["thread_id"], select=["run_id", "status"])
    assert all(set(r) == {"run_id", "status"} for r in selected), selected
    assert await status_of(client.runs.list(str(uuid.uuid4()))) == 404


@pytest.mark.compat("runs", "runs.get")
async def test_get(client):
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "echo", input={"text": "g"},
                                   metadata={"m": 1})
    await client.runs.join(thread["thread_id"], run["run_id"])
    got = await client.runs.get(thread["thread_id"], run["run_id"])
    assert_shape(got, Run)
    assert got["run_id"] == run["run_id"] and got["status"] == "success"
    assert got["metadata"]["m"] == 1
    assert got["created_at"] == run["created_at"]
    assert await status_of(client.runs.get(thread["thread_id"], str(uuid.uuid4()))) == 404
    other = await client.threads.create()
    assert await status_of(client.runs.get(other["thread_id"], run["run_id"])) == 404


@pytest.mark.compat("runs", "runs.delete")
async def test_delete(client):
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "echo", input={"text": "d"})
    await client.runs.join(thread["thread_id"], run["run_id"])
    assert await client.runs.delete(thread["thread_id"], run["run_id"]) is None
    assert await status_of(client.runs.get(thread["thread_id"], run["run_id"])) == 404
    assert await client.runs.list(thread["thread_id"]) == []
    assert await status_of(client.runs.delete(thread["thread_id"], run["run_id"])) == 404


# ------------------------------------------------------------------- join_stream


@pytest.mark.compat("runs", "runs.join_stream")
async def test_join_stream_live(client):
    # A joiner receives the modes the run was created with (the reference keeps no others).
    thread_id, run_id = await _running(client, input={"steps": 5, "delay": 0.2},
                                       stream_mode="custom")
    parts = await collect(client.runs.join_stream(thread_id, run_id, stream_mode="custom"))
    ticks = [p.data["tick"] for p in parts if p.event == "custom"]
    assert ticks and ticks == list(range(ticks[0], 6))  # in order, to the last tick
    assert {p.event for p in parts} <= {"metadata", "custom"}
    assert (await client.runs.get(thread_id, run_id))["status"] == "success"


@pytest.mark.compat("run-options", "runs.stream", "runs.join_stream")
async def test_stream_resumable_rejoin_with_last_event_id(client):
    """Rejoining after any event replays exactly the rest. 50 events emitted at once:
    many share a millisecond, which is where millisecond-based ids lose events on a
    resume (the reference's do; docs/compatibility.md, stream event ids)."""
    thread = await client.threads.create()
    parts = await collect(client.runs.stream(
        thread["thread_id"], "emitter", input={"count": 50}, stream_mode=["custom"],
        stream_resumable=True))
    run_id = parts[0].data["run_id"]
    assert [p.data["i"] for p in parts if p.event == "custom"] == list(range(50))
    assert all(p.id for p in parts)
    for k in range(len(parts)):  # after every event
        again = await collect(client.runs.join_stream(thread["thread_id"], run_id,
                                                      last_event_id=parts[k].id))
        assert [(p.event, p.data) for p in again] == [(p.event, p.data) for p in parts[k + 1:]]


@pytest.mark.compat("runs", "runs.get", "runs.join", "runs.join_stream", "runs.delete")
async def test_unknown_run_is_404(client):
    thread = await client.threads.create()
    unknown = str(uuid.uuid4())
    assert await status_of(client.runs.get(thread["thread_id"], unknown)) == 404
    assert await status_of(client.runs.delete(thread["thread_id"], unknown)) == 404
    joined = client.runs.join(thread["thread_id"], unknown)
    assert await asyncio.wait_for(status_of(joined), 10) == 404
    code = await asyncio.wait_for(
        status_of(collect(client.runs.join_stream(thread["thread_id"], unknown))), 10)
    assert code == 404


# ------------------------------------------------------------------- cancel


@pytest.mark.compat("runs", "runs.cancel", "runs.get")
async def test_cancel(client):
    thread_id, run_id = await _running(client)

    async def ticked():
        return (await client.threads.get_state(thread_id))["values"].get("ticks", 0) >= 1

    await wait_until(ticked, every=0.05)
    await client.runs.cancel(thread_id, run_id)
    assert (await wait_terminal(client, thread_id, run_id))["status"] == "interrupted"
    # Interrupt keeps what the run did so far.
    assert (await client.threads.get_state(thread_id))["values"]["ticks"] >= 1

    thread_id, run_id = await _running(client)
    await client.runs.cancel(thread_id, run_id, wait=True)
    assert (await client.runs.get(thread_id, run_id))["status"] == "interrupted"


@pytest.mark.compat("runs", "runs.cancel")
async def test_cancel_rollback(client):
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "sleepy", input={"steps": 1, "delay": 0})
    before = await client.threads.get_state(thread["thread_id"])
    thread_id, run_id = await _running(client, thread_id=thread["thread_id"])
    await client.runs.cancel(thread_id, run_id, wait=True, action="rollback")
    assert await status_of(client.runs.get(thread_id, run_id)) == 404  # rolled back: removed
    after = await client.threads.get_state(thread_id)
    assert after["values"] == before["values"]
    assert after["checkpoint"]["checkpoint_id"] == before["checkpoint"]["checkpoint_id"]


@pytest.mark.compat("contract", "runs.cancel")
async def test_cancel_answers(client, is_reference):
    """The run contract's cancel answers, where runlane deliberately differs: see
    docs/compatibility.md, 'Where runlane deliberately differs', cancel answers."""
    thread_id, run_id = await _running(client)
    accepted = await client.runs.cancel(thread_id, run_id, wait=True)
    duplicate = client.runs.cancel(thread_id, run_id)
    if is_reference:
        # not the run: an empty body, or (wait=true, at times) the run's state values
        assert not (isinstance(accepted, dict) and "run_id" in accepted), accepted
        assert await status_of(duplicate) == 404  # the reference forgets an accepted cancel
    else:
        # runlane answers with the run as the store holds it (the SDK passes it through)
        assert_shape(accepted, Run)
        assert (accepted["run_id"], accepted["status"]) == (run_id, "interrupted")
        again = await duplicate  # 202: idempotent, the run stays interrupted
        assert (again["run_id"], again["status"]) == (run_id, "interrupted")

    done = await client.threads.create()
    finished = await client.runs.create(done["thread_id"], "echo", input={"text": "f"})
    await client.runs.join(done["thread_id"], finished["run_id"])
    too_late = await status_of(client.runs.cancel(done["thread_id"], finished["run_id"]))
    # runlane: 409 naming the terminal status; the reference: 404, as for an unknown run
    assert too_late == (404 if is_reference else 409)
    assert await status_of(client.runs.cancel(done["thread_id"], str(uuid.uuid4()))) == 404
    other = await client.threads.create()
    assert await status_of(client.runs.cancel(other["thread_id"], finished["run_id"])) == 404


@pytest.mark.compat("contract", "runs.cancel")
async def test_cancel_unknown_action(client, server, is_reference):
    """runlane refuses an unknown cancel action (422); the reference treats it as
    `interrupt` (docs/compatibility.md, unknown enum values)."""
    thread_id, run_id = await _running(client)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        answer = await http.post(f"/threads/{thread_id}/runs/{run_id}/cancel",
                                 params={"action": "bogus"})
        if is_reference:
            assert answer.status_code == 202
            assert (await wait_terminal(client, thread_id, run_id))["status"] == "interrupted"
        else:
            assert answer.status_code == 422
            assert "bogus" in answer.json()["detail"]
            assert (await client.runs.get(thread_id, run_id))["status"] == "running"
            await client.runs.cancel(thread_id, run_id, wait=True)


@pytest.mark.compat("contract", "runs.create")
async def test_unknown_enum_values_are_refused(client, server, is_reference):
    """Both servers refuse unknown enum values with 422, except `on_disconnect`, which
    the reference accepts and ignores (docs/compatibility.md, unknown enum values)."""
    thread = await client.threads.create()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for field, value in (("multitask_strategy", "bogus"), ("stream_mode", "bogus"),
                             ("if_not_exists", "bogus"), ("on_disconnect", "bogus")):
            answer = await http.post(f"/threads/{thread['thread_id']}/runs",
                                     json={"assistant_id": "echo", field: value})
            expected = 200 if is_reference and field == "on_disconnect" else 422
            assert answer.status_code == expected, (field, answer.status_code, answer.text)
    if not is_reference:
        assert await client.runs.list(thread["thread_id"]) == []


@pytest.mark.compat("runs", "runs.cancel_many", "runs.get")
async def test_cancel_many(client):
    thread_id, running = await _running(client)
    queued = (await client.runs.create(thread_id, "sleepy", input=SLOW))["run_id"]
    other_thread, untouched = await _running(client)
    assert await client.runs.cancel_many(thread_id=thread_id, run_ids=[running, queued]) is None
    assert (await wait_terminal(client, thread_id, running))["status"] == "interrupted"
    assert (await wait_terminal(client, thread_id, queued))["status"] == "interrupted"
    assert (await client.runs.get(other_thread, untouched))["status"] == "running"

    # by status: only the pending run of the thread
    blocker = (await client.runs.create(other_thread, "sleepy", input=SLOW))["run_id"]
    await client.runs.cancel_many(status="pending")
    assert (await wait_terminal(client, other_thread, blocker))["status"] == "interrupted"
    assert (await client.runs.get(other_thread, untouched))["status"] == "running"
    await client.runs.cancel_many(thread_id=other_thread, run_ids=[untouched])
    assert (await wait_terminal(client, other_thread, untouched))["status"] == "interrupted"


# ------------------------------------------------------------------- run options


@pytest.mark.compat("run-options", "runs.create", "runs.get")
async def test_after_seconds_delays_the_start(client):
    thread = await client.threads.create()
    started = time.monotonic()
    run = await client.runs.create(thread["thread_id"], "echo", input={"text": "later"},
                                   after_seconds=2)
    assert_shape(run, Run)
    assert run["status"] == "pending"
    await asyncio.sleep(1.0)
    assert (await client.runs.get(thread["thread_id"], run["run_id"]))["status"] == "pending"
    assert await client.runs.join(thread["thread_id"], run["run_id"]) == {
        "text": "later", "echoed": ["later"]}
    assert time.monotonic() - started >= 2.0


@pytest.mark.compat("run-options", "runs.wait")
async def test_webhook_called_on_completion(client):
    with WebhookReceiver() as hook:
        thread = await client.threads.create()
        await client.runs.wait(thread["thread_id"], "echo", input={"text": "hook"},
                               webhook=hook.url)
        await wait_until(lambda: _some(hook.received), timeout=15)
    assert len(hook.received) == 1
    body = hook.received[0]
    assert body["thread_id"] == thread["thread_id"]
    assert body["status"] == "success"
    assert body["values"] == {"text": "hook", "echoed": ["hook"]}
    runs = await client.runs.list(thread["thread_id"])
    assert body["run_id"] == runs[0]["run_id"]


async def _some(items: list) -> bool:
    return bool(items)


@pytest.mark.compat("run-options", "runs.create")
async def test_on_completion_delete_and_keep(client):
    kept = await client.runs.create(None, "echo", input={"text": "k"}, on_completion="keep")
    assert (await wait_terminal(client, kept["thread_id"], kept["run_id"]))["status"] == "success"
    thread = await client.threads.get(kept["thread_id"])
    assert_shape(thread, Thread)
    assert thread["values"] == {"text": "k", "echoed": ["k"]}

    gone = await client.runs.create(None, "echo", input={"text": "g"}, on_completion="delete")

    async def deleted():
        try:
            await client.threads.get(gone["thread_id"])
        except httpx.HTTPStatusError as exc:
            return exc.response.status_code == 404
        return False

    await wait_until(deleted, timeout=15)


@pytest.mark.compat("run-options", "runs.stream")
async def test_on_disconnect_cancel(client):
    thread = await client.threads.create()
    stream = client.runs.stream(thread["thread_id"], "sleepy", input=SLOW,
                                stream_mode="custom", on_disconnect="cancel")
    async for part in stream:
        if part.event == "custom":
            break
    await stream.aclose()  # the client goes away mid-run
    runs = await client.runs.list(thread["thread_id"])
    final = await wait_terminal(client, thread["thread_id"], runs[0]["run_id"])
    assert final["status"] == "interrupted"


@pytest.mark.compat("time-travel", "runs.create", "threads.get_history")
async def test_run_from_an_earlier_checkpoint(client):
    """Time travel: a run from a checkpoint in the thread's history forks from it."""
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "echo", input={"text": "one"})
    await client.runs.wait(thread["thread_id"], "echo", input={"text": "two"})
    history = await client.threads.get_history(thread["thread_id"], limit=100)
    after_one = next(s for s in history if s["values"].get("echoed") == ["one"] and not s["next"])
    run = await client.runs.create(thread["thread_id"], "echo", input={"text": "fork"},
                                   checkpoint_id=after_one["checkpoint"]["checkpoint_id"])
    assert await client.runs.join(thread["thread_id"], run["run_id"]) == {
        "text": "fork", "echoed": ["one", "fork"]}
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"]["echoed"] == ["one", "fork"]
    # The fork's first checkpoint descends from the chosen one, not from the latest.
    forked = await client.threads.get_history(thread["thread_id"], limit=100)
    newest_ids = [s["checkpoint"]["checkpoint_id"] for s in forked]
    assert after_one["checkpoint"]["checkpoint_id"] in newest_ids
    chain, cursor = [], forked[0]
    by_id = {s["checkpoint"]["checkpoint_id"]: s for s in forked}
    while cursor["parent_checkpoint"]:
        chain.append(cursor["parent_checkpoint"]["checkpoint_id"])
        cursor = by_id[cursor["parent_checkpoint"]["checkpoint_id"]]
    assert after_one["checkpoint"]["checkpoint_id"] in chain
    assert history[0]["checkpoint"]["checkpoint_id"] not in chain  # "two" is on another branch


async def _cancel_code(client, thread_id: str, run_id: str, *, wait: bool) -> int:
    """The HTTP status of one cancel."""
    try:
        await client.runs.cancel(thread_id, run_id, wait=wait)
    except httpx.HTTPStatusError as exc:
        return exc.response.status_code
    return 200 if wait else 202


@pytest.mark.compat("contract", "runs.cancel", "runs.get")
async def test_concurrent_duplicate_cancels(client, is_reference):
    """Many clients cancel the same run at once, several times over. runlane: every
    cancel is accepted (the run contract: duplicates are free); the reference accepts
    the first and answers 404 to those that arrive after it (docs/compatibility.md,
    cancel answers). Either way the run ends `interrupted`, stopped once."""
    for _ in range(4):
        thread_id, run_id = await _running(client)
        codes = await asyncio.gather(
            *(_cancel_code(client, thread_id, run_id, wait=i % 2 == 0) for i in range(8)))
        assert (await wait_terminal(client, thread_id, run_id))["status"] == "interrupted"
        if is_reference:
            assert set(codes) <= {200, 202, 404} and {200, 202} & set(codes), codes
        else:
            assert sorted(codes) == [200] * 4 + [202] * 4, codes


@pytest.mark.compat("contract", "runs.stream")
async def test_stream_event_ids(client, is_reference):
    """runlane numbers every run's events 1, 2, 3, ... so Last-Event-ID resumes
    exactly; the reference sends ids only for `stream_resumable` runs, as
    `<milliseconds>-<n>` (docs/compatibility.md, stream event ids)."""
    parts = await collect(client.runs.stream(None, "emitter", input={"count": 3},
                                             stream_mode="custom"))
    if is_reference:
        assert [p.id for p in parts] == [None] * len(parts)
    else:
        assert [p.id for p in parts] == [str(i) for i in range(1, len(parts) + 1)]
    resumable = await collect(client.runs.stream(None, "emitter", input={"count": 3},
                                                 stream_mode="custom", stream_resumable=True))
    ids = [p.id for p in resumable]
    if is_reference:
        assert all(i and "-" in i for i in ids), ids
    else:
        assert ids == [str(i) for i in range(1, len(ids) + 1)]
