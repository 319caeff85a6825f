"""Run options of the LangGraph server API, end to end through langgraph_sdk on every
backend: if_not_exists, after_seconds (delayed start, its cancel, its races, its
place in a thread's queue), on_completion, on_disconnect, durability, feedback_keys,
stream_resumable, POST /runs/batch, and runs from an earlier checkpoint."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError

from conftest import ServerProcess
from webhook_receiver import WebhookReceiver

TERMINAL = {"success", "error", "timeout", "interrupted"}


def is_cluster(server: ServerProcess) -> bool:
    return bool(getattr(server, "urls", None))


async def until_terminal(client, thread_id: str, run_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        run = await client.runs.get(thread_id, run_id)
        if run["status"] in TERMINAL:
            return run
        assert time.monotonic() < deadline, f"run {run_id} still {run['status']}"
        await asyncio.sleep(0.05)


async def wait_for_request(receiver: WebhookReceiver, run_id: str, timeout: float = 30) -> None:
    """Until the receiver got a webhook POST of this run."""
    deadline = time.monotonic() + timeout
    while not receiver.attempts(run_id):
        assert time.monotonic() < deadline, f"no webhook of run {run_id} within {timeout}s"
        await asyncio.sleep(0.05)


# ------------------------------------------------------------------ if_not_exists


async def test_if_not_exists_create_makes_the_thread(client) -> None:
    thread_id = str(uuid.uuid4())
    run = await client.runs.create(thread_id, "quick", input={"n": 1}, if_not_exists="create")
    assert run["thread_id"] == thread_id
    await client.runs.join(thread_id, run["run_id"])
    thread = await client.threads.get(thread_id)
    assert thread["values"] == {"n": 3}
    # An existing thread is used as it is, whatever if_not_exists says.
    again = await client.runs.wait(thread_id, "quick", input={"n": 10}, if_not_exists="create")
    assert again == {"n": 12}


async def test_if_not_exists_reject_is_404_and_creates_nothing(client, http) -> None:
    thread_id = str(uuid.uuid4())
    with pytest.raises(NotFoundError):
        await client.runs.create(thread_id, "quick", input={"n": 1}, if_not_exists="reject")
    answer = http.post(f"/threads/{thread_id}/runs", json={"assistant_id": "quick"})
    assert answer.status_code == 404
    assert "if_not_exists" in answer.json()["detail"]
    assert http.get(f"/threads/{thread_id}").status_code == 404


# ------------------------------------------------------------------ after_seconds


async def test_delayed_run_stays_pending_until_due(client) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    started = time.monotonic()
    run = await client.runs.create(tid, "quick", input={"n": 1}, after_seconds=2.5)
    assert run["status"] == "pending"
    assert run["kwargs"]["after_seconds"] == 2.5
    await asyncio.sleep(1.0)
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "pending"
    assert await client.runs.join(tid, run["run_id"]) == {"n": 3}
    elapsed = time.monotonic() - started
    assert 2.4 <= elapsed < 15, elapsed
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"


async def test_delayed_stateless_wait_and_stream(client) -> None:
    started = time.monotonic()
    assert await client.runs.wait(None, "quick", input={"n": 5}, after_seconds=0.7) == {"n": 7}
    assert time.monotonic() - started >= 0.65
    started = time.monotonic()
    events = [part.event async for part in client.runs.stream(
        None, "quick", input={"n": 1}, after_seconds=0.7)]
    assert time.monotonic() - started >= 0.65
    assert events[0] == "metadata" and "values" in events


async def test_cancel_of_a_delayed_run_follows_the_contract(client, http) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "quick", input={"n": 1}, after_seconds=2.0)
    first = http.post(f"/threads/{tid}/runs/{run['run_id']}/cancel")
    assert first.status_code == 202, first.text
    assert first.json()["status"] == "interrupted"  # cancelled before its start time
    again = http.post(f"/threads/{tid}/runs/{run['run_id']}/cancel", params={"wait": "true"})
    assert again.status_code == 200 and again.json()["status"] == "interrupted"
    await asyncio.sleep(2.5)  # past its start time: it must never start
    final = await client.runs.get(tid, run["run_id"])
    assert final["status"] == "interrupted" and final["cancel_reason"] == "user"
    assert (await client.threads.get(tid))["status"] == "idle"
    # The thread is free for the next run.
    assert await client.runs.wait(tid, "quick", input={"n": 1}) == {"n": 3}


async def test_rollback_of_a_delayed_run_removes_it(client, http) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "quick", input={"n": 1}, after_seconds=2.0)
    answer = http.post(f"/threads/{tid}/runs/{run['run_id']}/cancel",
                       params={"action": "rollback"})
    assert answer.status_code == 202, answer.text
    await asyncio.sleep(2.5)  # past its start time: it must never start
    assert http.get(f"/threads/{tid}/runs/{run['run_id']}").status_code == 404
    assert http.post(f"/threads/{tid}/runs/{run['run_id']}/cancel").status_code == 202
    assert (await client.threads.get(tid))["values"] is None


@pytest.mark.race
async def test_cancel_racing_the_start_of_a_delayed_run(client, http) -> None:
    """A cancel landing around a delayed run's start time: 202 always means the run
    ends `interrupted`, 409 means it had already finished (never both, never
    stuck). Many runs at once, each cancelled at a jittered instant."""
    delay = 0.4
    repetitions = 24

    async def one(index: int) -> tuple[int, str]:
        thread = await client.threads.create()
        tid = thread["thread_id"]
        run = await client.runs.create(tid, "sleepy", input={"steps": 2, "delay": 0.01},
                                       after_seconds=delay)
        await asyncio.sleep(delay - 0.05 + (index % 8) * 0.02)
        answer = await asyncio.to_thread(
            http.post, f"/threads/{tid}/runs/{run['run_id']}/cancel")
        final = await until_terminal(client, tid, run["run_id"])
        return answer.status_code, final["status"]

    results = await asyncio.gather(*(one(i) for i in range(repetitions)))
    for code, status in results:
        assert code in (202, 409), results
        if code == 202:
            assert status == "interrupted", results
        else:
            assert status == "success", results


async def test_delayed_run_does_not_hold_up_the_queue(client) -> None:
    """enqueue: a run created after a delayed one, on the same thread, starts at once;
    the delayed run starts at its time, after the thread is free."""
    thread = await client.threads.create()
    tid = thread["thread_id"]
    delayed = await client.runs.create(tid, "quick", input={"n": 100}, after_seconds=4)
    now = await client.runs.create(tid, "quick", input={"n": 1})
    assert await client.runs.join(tid, now["run_id"]) == {"n": 3}
    assert (await client.runs.get(tid, delayed["run_id"]))["status"] == "pending"
    assert await client.runs.join(tid, delayed["run_id"]) == {"n": 102}


async def test_multitask_strategies_treat_a_delayed_run_as_active(client, http) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    delayed = await client.runs.create(tid, "quick", input={"n": 1}, after_seconds=30)
    assert (await client.threads.get(tid))["status"] == "busy"
    # reject: the thread has an active (pending) run.
    refused = http.post(f"/threads/{tid}/runs",
                        json={"assistant_id": "quick", "multitask_strategy": "reject"})
    assert refused.status_code == 409, refused.text
    # interrupt: the delayed run is cancelled, the new one runs now.
    assert await client.runs.wait(tid, "quick", input={"n": 1},
                                  multitask_strategy="interrupt") == {"n": 3}
    stopped = await client.runs.get(tid, delayed["run_id"])
    assert stopped["status"] == "interrupted"
    assert stopped["cancel_reason"] == "multitask_interrupt"


async def test_after_seconds_zero_is_immediate(client) -> None:
    assert await client.runs.wait(None, "quick", input={"n": 1}, after_seconds=0) == {"n": 3}


@pytest.mark.parametrize("value", [-1, "soon", 10**9, "NaN", "Infinity", [1]])
def test_after_seconds_bad_values_are_422(http, value) -> None:
    answer = http.post("/runs", json={"assistant_id": "quick", "after_seconds": value})
    assert answer.status_code == 422, answer.text
    assert "after_seconds" in answer.json()["detail"]


# ------------------------------------------------------------ on_completion


async def test_stateless_on_completion_keep_keeps_the_thread(client) -> None:
    run = await client.runs.create(None, "quick", input={"n": 1}, on_completion="keep")
    tid = run["thread_id"]
    await client.runs.join(tid, run["run_id"])
    final = await until_terminal(client, tid, run["run_id"])
    assert final["status"] == "success"
    await asyncio.sleep(0.3)
    thread = await client.threads.get(tid)
    assert thread["values"] == {"n": 3}
    assert (await client.threads.get_state(tid))["values"] == {"n": 3}


async def test_stateless_on_completion_delete_deletes_the_thread(client, server) -> None:
    run = await client.runs.create(None, "quick", input={"n": 1}, on_completion="delete")
    tid = run["thread_id"]
    try:
        await client.runs.join(tid, run["run_id"])
    except (NotFoundError, httpx.HTTPStatusError) as exc:
        # A quick run may be over, and its thread gone with it, before the join lands
        # (the SDK's join raises httpx's own error, not NotFoundError).
        assert exc.response.status_code == 404, exc
    # Scale-out keeps a stateless run's thread a little (a wait on another worker
    # reads it); one process deletes it at once.
    deadline = time.monotonic() + (45 if is_cluster(server) else 5)
    while True:
        try:
            await client.threads.get(tid)
        except NotFoundError:
            break
        assert time.monotonic() < deadline, "the stateless run's thread was not deleted"
        await asyncio.sleep(0.2)


# ------------------------------------------------------------ on_disconnect


def _stream_and_drop(base_url: str, path: str, body: dict, events_before_drop: int) -> dict:
    """Open an SSE run stream, read a few events, drop the connection. Returns the
    run's ids (from the metadata event and Content-Location)."""
    import json

    with (httpx.Client(base_url=base_url, timeout=30) as session,
          session.stream("POST", path, json=body) as answer):
        assert answer.status_code == 200, answer.read()
        # /threads/{thread_id}/runs/{run_id}/stream, for stateless runs too
        location = answer.headers["Location"]
        seen = 0
        run_id = None
        for line in answer.iter_lines():
            if line.startswith("data:") and run_id is None:
                run_id = json.loads(line[5:])["run_id"]
            if line.startswith("event:"):
                seen += 1
            if seen >= events_before_drop and run_id:
                break
    return {"run_id": run_id, "location": location}


@pytest.mark.parametrize("stateless", [False, True])
async def test_stream_disconnect_cancels_with_on_disconnect_cancel(
        client, server, stateless) -> None:
    tid = None if stateless else (await client.threads.create())["thread_id"]
    path = "/runs/stream" if stateless else f"/threads/{tid}/runs/stream"
    body = {"assistant_id": "sleepy", "input": {"steps": 200, "delay": 0.05},
            "stream_mode": ["custom"], "on_disconnect": "cancel"}
    if stateless:
        body["on_completion"] = "keep"
    ids = await asyncio.to_thread(_stream_and_drop, server.url, path, body, 3)
    run_id = ids["run_id"]
    tid = ids["location"].split("/")[2]
    final = await until_terminal(client, tid, run_id, timeout=15)
    assert final["status"] == "interrupted", final
    assert final["cancel_reason"] == "disconnect"
    assert final["stop_reason"] == "cancelled"


async def test_stream_disconnect_continues_by_default(client, server) -> None:
    tid = (await client.threads.create())["thread_id"]
    body = {"assistant_id": "sleepy", "input": {"steps": 8, "delay": 0.05},
            "stream_mode": ["custom"]}
    ids = await asyncio.to_thread(_stream_and_drop, server.url, f"/threads/{tid}/runs/stream",
                                  body, 2)
    final = await until_terminal(client, tid, ids["run_id"], timeout=15)
    assert final["status"] == "success", final


@pytest.mark.parametrize("on_disconnect,expected", [("cancel", "interrupted"),
                                                    ("continue", "success")])
async def test_wait_disconnect(client, server, on_disconnect, expected) -> None:
    tid = (await client.threads.create())["thread_id"]
    body = {"assistant_id": "sleepy", "input": {"steps": 30, "delay": 0.05},
            "on_disconnect": on_disconnect}

    def drop() -> None:
        with (httpx.Client(base_url=server.url, timeout=0.5) as session,
              pytest.raises(httpx.ReadTimeout)):
            session.post(f"/threads/{tid}/runs/wait", json=body)

    await asyncio.to_thread(drop)
    runs = await client.runs.list(tid)
    assert len(runs) == 1
    final = await until_terminal(client, tid, runs[0]["run_id"], timeout=15)
    assert final["status"] == expected, final
    if expected == "interrupted":
        assert final["cancel_reason"] == "disconnect"


# ----------------------------------------------------- durability, feedback_keys


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
async def test_durability_is_passed_to_langgraph(client, durability) -> None:
    tid = (await client.threads.create())["thread_id"]
    assert await client.runs.wait(tid, "quick", input={"n": 1}, durability=durability) == {"n": 3}
    history = await client.threads.get_history(tid, limit=20)
    assert history[0]["values"] == {"n": 3}
    if durability == "exit":
        # Only the end of the run is persisted: no intermediate steps in history.
        assert len(history) == 1, [h["values"] for h in history]
    else:
        assert len(history) == 4, [h["values"] for h in history]


async def test_feedback_keys_are_accepted_and_kept(client, http) -> None:
    tid = (await client.threads.create())["thread_id"]
    answer = http.post(f"/threads/{tid}/runs/wait",
                       json={"assistant_id": "quick", "input": {"n": 1},
                             "feedback_keys": ["helpfulness", "accuracy"]})
    assert answer.status_code == 200 and answer.json() == {"n": 3}
    run = (await client.runs.list(tid))[0]
    assert run["kwargs"]["feedback_keys"] == ["helpfulness", "accuracy"]
    bad = http.post("/runs", json={"assistant_id": "quick", "feedback_keys": [1]})
    assert bad.status_code == 422 and "feedback_keys" in bad.text


@pytest.mark.parametrize("field,value", [("durability", "never"), ("on_completion", "drop"),
                                         ("on_disconnect", "ignore"),
                                         ("if_not_exists", "maybe"),
                                         ("stream_resumable", "perhaps")])
def test_bad_option_values_are_422(http, field, value) -> None:
    answer = http.post("/runs", json={"assistant_id": "quick", field: value})
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["detail"]


# ------------------------------------------------------------- stream_resumable


async def test_resumable_stream_replays_after_the_end(client) -> None:
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, "emitter", input={"count": 5},
                                   stream_mode=["custom", "values"], stream_resumable=True)
    await client.runs.join(tid, run["run_id"])
    replay = [part async for part in client.runs.join_stream(tid, run["run_id"],
                                                             last_event_id="0")]
    assert [p.event for p in replay].count("custom") == 5
    assert replay[0].event == "metadata"
    tail = [part async for part in client.runs.join_stream(tid, run["run_id"],
                                                           last_event_id="3")]
    assert len(tail) == len(replay) - 3


async def test_resumable_retention_outlives_best_effort_retention(tmp_path: Path) -> None:
    """One process with a tiny best-effort retention: a finished run created with
    stream_resumable=true still replays, one without does not (as the reference
    server, which keeps no events of non-resumable runs)."""
    server = ServerProcess(tmp_path, env={"RUNLANE_STREAM_RETENTION": "0.2"}).start()
    try:
        client = get_client(url=server.url)
        tid = (await client.threads.create())["thread_id"]
        kept = await client.runs.create(tid, "emitter", input={"count": 3},
                                        stream_mode=["custom"], stream_resumable=True)
        await client.runs.join(tid, kept["run_id"])
        gone = await client.runs.create(tid, "emitter", input={"count": 3},
                                        stream_mode=["custom"])
        await client.runs.join(tid, gone["run_id"])
        await asyncio.sleep(0.4)
        await client.runs.wait(tid, "quick", input={"n": 1})  # a close evicts old logs
        replay = [p.event async for p in client.runs.join_stream(tid, kept["run_id"],
                                                                 last_event_id="0")]
        assert replay.count("custom") == 3
        none = [p.event async for p in client.runs.join_stream(tid, gone["run_id"],
                                                               last_event_id="0")]
        assert "custom" not in none
    finally:
        server.stop()


# ------------------------------------------------------------------ /runs/batch


async def test_batch_creates_stateless_background_runs(client) -> None:
    runs = await client.runs.create_batch(
        [{"assistant_id": "quick", "input": {"n": i}, "on_completion": "keep"}
         for i in range(5)])
    assert len(runs) == 5 and all(r["status"] == "pending" for r in runs)
    assert len({r["thread_id"] for r in runs}) == 5
    for i, run in enumerate(runs):
        assert await client.runs.join(run["thread_id"], run["run_id"]) == {"n": i + 2}


async def test_invalid_batch_item_creates_nothing(http) -> None:
    with WebhookReceiver() as receiver:
        valid = {"assistant_id": "quick", "input": {"n": 1}, "webhook": receiver.url}
        for bad, code in (({"assistant_id": "no-such-graph"}, 404),
                          ({"assistant_id": "quick", "webhook": "ftp://x"}, 422),
                          ({"assistant_id": "quick", "unknown": 1}, 422)):
            answer = http.post("/runs/batch", json=[valid, valid, bad, valid])
            assert answer.status_code == code, answer.text
            assert "2" in answer.json()["detail"]
        # The control: a valid batch made after them runs and calls the webhook. Had
        # the valid items above been created, they would have started before it (runs
        # start in creation order) and called it by then: only the control did.
        [control] = http.post("/runs/batch", json=[valid]).json()
        await wait_for_request(receiver, control["run_id"])
        assert [r["body"]["run_id"] for r in receiver.requests] == [control["run_id"]]
    assert http.post("/runs/batch", json={"assistant_id": "quick"}).status_code == 422
    assert http.post("/runs/batch", json=[{"assistant_id": "quick"}] * 1001).status_code == 422
    assert http.post("/runs/batch", json=[]).json() == []


# ------------------------------------------------- runs from an earlier checkpoint


async def test_run_from_an_earlier_checkpoint_forks_the_thread(client, http) -> None:
    tid = (await client.threads.create())["thread_id"]
    assert await client.runs.wait(tid, "quick", input={"n": 1}) == {"n": 3}
    history = await client.threads.get_history(tid, limit=20)
    middle = next(h for h in history if h["next"] == ["second"])
    assert middle["values"] == {"n": 2}
    # Continue from C (no input): only `second` runs, on C's state.
    replayed = await client.runs.wait(tid, "quick", input=None,
                                      checkpoint_id=middle["checkpoint"]["checkpoint_id"])
    assert replayed == {"n": 3}
    # From C with new input (as the reference: the input applies on C's state).
    forked = await client.runs.wait(tid, "quick", input={"n": 10},
                                    checkpoint=middle["checkpoint"])
    assert forked == {"n": 12}
    assert (await client.threads.get_state(tid))["values"] == {"n": 12}
    after = await client.threads.get_history(tid, limit=50)
    children = [h for h in after
                if (h["parent_checkpoint"] or {}).get("checkpoint_id")
                == middle["checkpoint"]["checkpoint_id"]]
    # The original continuation and both new branches start at C.
    assert len(children) == 3, [h["values"] for h in children]
    # Every checkpoint from before is still there.
    assert {h["checkpoint"]["checkpoint_id"] for h in history} <= {
        h["checkpoint"]["checkpoint_id"] for h in after}
    missing = http.post(f"/threads/{tid}/runs", json={
        "assistant_id": "quick", "checkpoint_id": str(uuid.uuid4())})
    assert missing.status_code == 404, missing.text


async def test_resume_a_paused_checkpoint_with_command(client) -> None:
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "hitl", input={"question": "ok?"})
    paused = await client.threads.get_state(tid)
    assert paused["next"] == ["ask"]
    answer = await client.runs.wait(tid, "hitl", command={"resume": "yes"},
                                    checkpoint_id=paused["checkpoint"]["checkpoint_id"])
    assert answer == {"question": "ok?", "answer": "yes", "done": True}


async def test_checkpoint_during_is_the_older_spelling_of_durability(client, http) -> None:
    tid = (await client.threads.create())["thread_id"]
    answer = http.post(f"/threads/{tid}/runs/wait", json={
        "assistant_id": "quick", "input": {"n": 1}, "checkpoint_during": False})
    assert answer.status_code == 200 and answer.json() == {"n": 3}
    run = (await client.runs.list(tid))[0]
    assert run["kwargs"]["durability"] == "sync"
    clash = http.post("/runs", json={"assistant_id": "quick", "checkpoint_during": True,
                                     "durability": "exit"})
    assert clash.status_code == 422, clash.text
    assert "checkpoint_during" in clash.text and "durability" in clash.text


async def test_scheduled_run_survives_a_shutdown_and_a_crash(tmp_path: Path) -> None:
    """One SQLite process: a shutdown (SIGTERM) interrupts pending runs (nothing else
    would start them) and a crash (SIGKILL) errors them at the next start, but a run
    scheduled with after_seconds stays queued and starts when due. One stop after the
    other on one server (a start-up fewer), each with runs of its own, made just
    before it; each scheduled run has ended before the next stop."""
    import signal

    server = ServerProcess(tmp_path, env={"RUNLANE_SHUTDOWN_GRACE": "0.2"}).start()
    try:
        for how in (signal.SIGTERM, signal.SIGKILL):
            client = get_client(url=server.url)
            tid = (await client.threads.create())["thread_id"]
            scheduled = await client.runs.create(tid, "quick", input={"n": 1}, after_seconds=8)
            created = time.monotonic()
            other = (await client.threads.create())["thread_id"]
            blocker = await client.runs.create(other, "sleepy",
                                               input={"steps": 100, "delay": 0.1})
            queued = await client.runs.create(other, "quick", input={"n": 1})
            server.stop(how)
            server.start()
            client = get_client(url=server.url)
            status = (await client.runs.get(tid, scheduled["run_id"]))["status"]
            if time.monotonic() - created < 7.5:  # (a loaded machine may restart slowly)
                assert status == "pending", how.name
                assert (await client.threads.get(tid))["status"] == "busy", how.name
            else:
                assert status in ("pending", "running", "success"), how.name
            assert (await client.runs.get(other, queued["run_id"]))["status"] in (
                "interrupted", "error"), how.name
            assert (await client.runs.get(other, blocker["run_id"]))["status"] in (
                "interrupted", "error"), how.name
            assert await client.runs.join(tid, scheduled["run_id"]) == {"n": 3}, how.name
            assert (await client.runs.get(tid, scheduled["run_id"]))["status"] == "success", \
                how.name
            assert (await client.threads.get(tid))["status"] == "idle", how.name
    finally:
        server.stop()


async def test_a_delayed_runs_own_strategy_applies_when_it_is_created(client) -> None:
    """As the reference server: multitask_strategy acts at creation. A delayed run
    created with `interrupt` stops the thread's active run at once, then waits for
    its own time."""
    tid = (await client.threads.create())["thread_id"]
    active = await client.runs.create(tid, "sleepy", input={"steps": 100, "delay": 0.05})
    delayed = await client.runs.create(tid, "quick", input={"n": 1}, after_seconds=2,
                                       multitask_strategy="interrupt")
    stopped = await until_terminal(client, tid, active["run_id"], timeout=3)
    assert stopped["status"] == "interrupted"
    assert stopped["cancel_reason"] == "multitask_interrupt"
    assert (await client.runs.get(tid, delayed["run_id"]))["status"] == "pending"
    final = await until_terminal(client, tid, delayed["run_id"])
    assert final["status"] == "success"
