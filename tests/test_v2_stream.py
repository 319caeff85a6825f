"""The v2 streaming protocol (docs/v2-streaming.md) on a real server, both backends:
langgraph_sdk's `client.threads.stream()` over SSE and WebSocket, raw SSE frames and
commands (httpx), resume with `since`, cancel on the lifecycle channel, bad input.

On the cluster every request goes to the next worker (`client`, `spread_http`), so a
command, the stream and each reconnect are served by different workers."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from typing import Any

import httpx
import pytest

from conftest import sdk_client
from contract_support import cancel_url, wait_final

pytest_plugins = ("contract_fixtures",)
pytestmark = pytest.mark.usefixtures("no_server_errors")

ALL = ["values", "updates", "messages", "tools", "custom", "lifecycle", "input", "tasks",
       "checkpoints"]
TERMINAL = ("completed", "failed", "interrupted")


async def command(http: httpx.AsyncClient, thread_id: str, method: str,
                  params: dict[str, Any], command_id: int = 1) -> dict[str, Any]:
    resp = await http.post(f"/threads/{thread_id}/commands",
                           json={"id": command_id, "method": method, "params": params})
    assert resp.status_code == 200, resp.text
    return resp.json()


def is_root_end(event: dict[str, Any]) -> bool:
    params = event.get("params") or {}
    return (event.get("method") == "lifecycle" and not params.get("namespace")
            and params["data"]["event"] in TERMINAL)


async def read_events(http: httpx.AsyncClient, thread_id: str, *, since: int | None = None,
                      channels: list[str] | None = None, ends: int = 1,
                      stop_after: int | None = None, **filters: Any) -> list[dict[str, Any]]:
    """Events (and protocol error events) of the thread's stream until `ends` root
    terminal lifecycle events were read, or `stop_after` events (a dropped stream)."""
    body: dict[str, Any] = {"channels": channels or ALL, **filters}
    if since is not None:
        body["since"] = since
    events: list[dict[str, Any]] = []
    async with http.stream("POST", f"/threads/{thread_id}/stream/events", json=body) as resp:
        assert resp.status_code == 200, await resp.aread()
        assert resp.headers["content-type"].startswith("text/event-stream")
        name = None
        async for line in resp.aiter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("id: "):
                assert int(line[4:]) == events[-1]["seq"]
            elif line.startswith("data: "):
                event = json.loads(line[6:])
                assert name == ("error" if event["type"] == "error" else event["method"])
                events.append(event)
                if stop_after is not None and len(events) >= stop_after:
                    return events
                if is_root_end(event):
                    ends -= 1
                    if ends == 0:
                        return events
    raise AssertionError(f"the stream ended before its run did: {events[-3:]}")


def user(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


# ------------------------------------------------------------------ the SDK


@pytest.mark.parametrize("transport", ["sse", "websocket"])
async def test_sdk_thread_stream_runs_a_tool_calling_agent(server, transport):
    client = sdk_client(server)
    async with client.threads.stream(assistant_id="react_agent", transport=transport) as thread:
        started = await thread.run.start(input=user("weather in Paris?"))
        assert uuid.UUID(started["run_id"])
        output = await asyncio.wait_for(thread.output, 60)
    kinds = [m["type"] for m in output["messages"]]
    assert kinds == ["human", "ai", "tool", "ai"]
    assert output["messages"][2]["content"] == "sunny, 21 °C in Paris"
    final = json.dumps(output["messages"][3]["content"], ensure_ascii=False)
    assert "sunny, 21 °C in Paris" in final
    # The thread was created on first use, and holds the run's result.
    state = await client.threads.get_state(thread.thread_id)
    assert [m["type"] for m in state["values"]["messages"]] == kinds
    runs = await client.runs.list(thread.thread_id)
    assert [r["status"] for r in runs] == ["success"]


@pytest.mark.parametrize("transport", ["sse", "websocket"])
async def test_sdk_answers_an_interrupt_with_input_respond(server, transport):
    client = sdk_client(server)
    async with client.threads.stream(assistant_id="hitl_agent", transport=transport) as thread:
        await thread.run.start(input=user("transfer 50 to Alice"))
        for _ in range(600):
            if thread.interrupted:
                break
            await asyncio.sleep(0.05)
        assert thread.interrupted and len(thread.interrupts) == 1
        # The question is on the stream as soon as asked; the run settles after it.
        for _ in range(600):
            if (await client.threads.get(thread.thread_id))["status"] == "interrupted":
                break
            await asyncio.sleep(0.05)
        assert (await client.threads.get(thread.thread_id))["status"] == "interrupted"
        await thread.run.respond(True)
        output = await asyncio.wait_for(thread.output, 60)
    tool = [m for m in output["messages"] if m["type"] == "tool"]
    assert tool and "50" in tool[-1]["content"] and "Alice" in tool[-1]["content"]
    assert (await client.threads.get(thread.thread_id))["status"] == "idle"
    runs = await client.runs.list(thread.thread_id)
    assert [r["status"] for r in runs] == ["success", "success"]


# ------------------------------------------------------------- frames, commands


async def test_frames_of_an_interrupt_and_its_answer(spread_http, client):
    thread_id = str(uuid.uuid4())
    started = await command(spread_http, thread_id, "run.start",
                            {"assistant_id": "hitl_agent", "input": user("transfer 50 to Alice")})
    assert started["type"] == "success" and started["meta"] == {"applied_through_seq": 0}
    first = await read_events(spread_http, thread_id)
    assert first[0]["params"]["data"] == {"event": "running", "graph_name": "hitl_agent"}
    asked = [e for e in first if e["method"] == "input.requested"]
    assert len(asked) == 1 and asked[0]["params"]["data"]["payload"]["action"] == "transfer_money"
    assert first[-1]["params"]["data"]["event"] == "interrupted"
    assert [e["seq"] for e in first] == sorted({e["seq"] for e in first})  # grows, no repeats
    interrupt_id = asked[0]["params"]["data"]["interrupt_id"]

    # A wrong id is the protocol's error, naming it; the right one resumes the run.
    wrong = await command(spread_http, thread_id, "input.respond",
                          {"interrupt_id": "nope", "namespace": [], "response": True})
    assert wrong["type"] == "error" and wrong["error"] == "no_such_interrupt"
    assert "nope" in wrong["message"]
    answered = await command(spread_http, thread_id, "input.respond",
                             {"interrupt_id": interrupt_id, "namespace": [], "response": True})
    assert answered == {"type": "success", "id": 1, "result": {},
                        "meta": {"applied_through_seq": 0}}
    rest = await read_events(spread_http, thread_id, since=first[-1]["seq"])
    # The root is interrupted as soon as the question is asked (as on the reference);
    # the paused run's last state follows, then the resumed run.
    paused_id = started["result"]["run_id"]
    tail = [e["method"] for e in rest if e["event_id"].startswith(paused_id)]
    assert tail == ["values"]
    resumed = rest[len(tail):]
    assert resumed[0]["params"]["data"]["event"] == "running"
    assert resumed[0]["seq"] > rest[0]["seq"] > first[-1]["seq"]
    assert rest[-1]["params"]["data"]["event"] == "completed"
    assert not {e["event_id"] for e in rest} & {e["event_id"] for e in first}
    again = await command(spread_http, thread_id, "input.respond",
                          {"interrupt_id": interrupt_id, "namespace": [], "response": True})
    assert again["error"] == "no_such_interrupt"  # answered already

    # Without `since`: both runs again, exactly as they were sent.
    everything = await read_events(spread_http, thread_id, ends=2)
    assert everything == first + rest
    tree = await command(spread_http, thread_id, "agent.getTree", {})
    assert tree["result"]["tree"]["status"] == "completed"


async def test_subgraphs_lifecycle_namespaces_and_depth(spread_http):
    thread_id = str(uuid.uuid4())
    await command(spread_http, thread_id, "run.start",
                  {"assistant_id": "subgraph_agent", "input": user("weather in Paris?")})
    events = await read_events(spread_http, thread_id)
    lifecycle = [(tuple(s.split(":")[0] for s in e["params"]["namespace"]),
                  e["params"]["data"]["event"]) for e in events if e["method"] == "lifecycle"]
    assert lifecycle == [((), "running"), (("researcher",), "started"),
                         (("researcher",), "completed"), (("write",), "started"),
                         (("write",), "completed"), ((), "completed")]
    spaces = {tuple(e["params"]["namespace"]) for e in events}
    researcher = next(ns for ns in spaces if ns and ns[0].startswith("researcher:"))

    # Filtered by namespace prefix (a name matches name:<task id>) and by depth.
    scoped = await read_events(spread_http, thread_id, channels=["messages", "values"],
                               namespaces=[["researcher"]], stop_after=5)
    assert scoped and all(tuple(e["params"]["namespace"]) == researcher for e in scoped)
    root = [e for e in events if not e["params"]["namespace"]
            and e["method"] in ("values", "lifecycle")]
    only_root = await read_events(spread_http, thread_id, channels=["values", "lifecycle"],
                                  namespaces=[[]], depth=0)
    assert only_root == root
    tree = (await command(spread_http, thread_id, "agent.getTree", {}))["result"]["tree"]
    assert [c["graph_name"] for c in tree["children"]] == ["researcher", "write"]
    assert {c["status"] for c in tree["children"]} == {"completed"}


async def test_custom_channels_by_name(spread_http):
    thread_id = str(uuid.uuid4())
    await command(spread_http, thread_id, "run.start",
                  {"assistant_id": "sleepy", "input": {"steps": 3}})
    events = await read_events(spread_http, thread_id, channels=["custom", "lifecycle"])
    custom = [e["params"]["data"] for e in events if e["method"] == "custom"]
    assert custom == [{"tick": n} for n in (1, 2, 3)]
    named = await read_events(spread_http, thread_id, channels=["custom:nothing", "lifecycle"])
    assert [e["method"] for e in named] == ["lifecycle", "lifecycle"]


async def test_resume_with_since_replays_exactly_the_rest(spread_http):
    """A finished run read whole, then resumed from many random cursors (each request
    on the next worker on the cluster): exactly the events after the cursor."""
    thread_id = str(uuid.uuid4())
    await command(spread_http, thread_id, "run.start",
                  {"assistant_id": "research_agent", "input": user("research cats")})
    whole = await read_events(spread_http, thread_id)
    assert len(whole) > 50
    cursors = [*random.Random(13).sample(range(len(whole) - 1), 12), 0, len(whole) - 2]
    for k in cursors:
        rest = await read_events(spread_http, thread_id, since=whole[k]["seq"])
        assert rest == whole[k + 1:], f"since the {k}th event"


async def test_dropped_streams_of_a_live_run_resume_without_loss(spread_http):
    """A live run's stream dropped at random points and resumed with `since` each time
    (on the cluster: another worker each time): the pieces are the whole stream."""
    thread_id = str(uuid.uuid4())
    await command(spread_http, thread_id, "run.start",
                  {"assistant_id": "sleepy", "input": {"steps": 30, "delay": 0.05}})
    rng = random.Random(7)
    pieces: list[dict[str, Any]] = []
    while not pieces or not is_root_end(pieces[-1]):
        since = pieces[-1]["seq"] if pieces else None
        pieces += await read_events(spread_http, thread_id, since=since,
                                    stop_after=rng.randint(1, 6))
    whole = await read_events(spread_http, thread_id)
    assert pieces == whole
    assert [e["params"]["data"]["tick"] for e in whole
            if e["method"] == "custom"] == list(range(1, 31))


async def test_a_finished_run_ends_for_every_subscriber(spread_http):
    thread_id = str(uuid.uuid4())
    await command(spread_http, thread_id, "run.start",
                  {"assistant_id": "sleepy", "input": {"steps": 10, "delay": 0.05}})
    seen = await asyncio.gather(*(read_events(spread_http, thread_id) for _ in range(6)))
    assert all(events == seen[0] for events in seen)
    assert seen[0][-1]["params"]["data"] == {"event": "completed", "graph_name": "sleepy"}


async def test_rest_cancel_shows_interrupted_on_lifecycle_and_nothing_after(spread_http, client):
    thread_id = str(uuid.uuid4())
    run_id = (await command(spread_http, thread_id, "run.start", {
        "assistant_id": "sleepy", "input": {"steps": 200, "delay": 0.05}}))["result"]["run_id"]
    seen = await read_events(spread_http, thread_id, channels=["custom"], stop_after=3)
    assert len(seen) == 3
    resp = await spread_http.post(cancel_url(thread_id, run_id))
    assert resp.status_code == 202, resp.text
    final = await wait_final(client, thread_id, run_id)
    assert final is not None and final["status"] == "interrupted"
    # A run after it: the stream goes from the cancelled run's end to the next run.
    await command(spread_http, thread_id, "run.start", {"assistant_id": "quick", "input": {}})
    events = await read_events(spread_http, thread_id, ends=2)
    mine = [i for i, e in enumerate(events) if e["event_id"].startswith(run_id)]
    end = events[mine[-1]]
    assert is_root_end(end) and end["params"]["data"]["event"] == "interrupted"
    assert "cancel" in end["params"]["data"]["error"]
    assert mine == list(range(len(mine)))  # nothing of it after its end
    assert events[-1]["params"]["data"]["event"] == "completed"
    assert len([e for e in events if e["method"] == "custom"]) < 200


async def test_run_start_follows_the_multitask_rules(spread_http, client):
    thread_id = str(uuid.uuid4())
    first = await command(spread_http, thread_id, "run.start", {
        "assistant_id": "sleepy", "input": {"steps": 40, "delay": 0.05}})
    refused = await command(spread_http, thread_id, "run.start", {
        "assistant_id": "quick", "input": {}, "multitaskStrategy": "reject"})
    assert refused["type"] == "error" and refused["error"] == "unknown_error"
    queued = await command(spread_http, thread_id, "run.start", {"assistant_id": "quick",
                                                            "input": {}})
    assert queued["type"] == "success"
    events = await read_events(spread_http, thread_id, channels=["lifecycle"], ends=2)
    order = [(e["event_id"].split(":")[0], e["params"]["data"]["event"]) for e in events]
    assert order == [(first["result"]["run_id"], "running"),
                     (first["result"]["run_id"], "completed"),
                     (queued["result"]["run_id"], "running"),
                     (queued["result"]["run_id"], "completed")]
    runs = await client.runs.list(thread_id)
    assert sorted(r["status"] for r in runs) == ["success", "success"]


async def test_a_cursor_in_a_rolled_back_run_is_told_events_were_missed(spread_http, client):
    thread_id = str(uuid.uuid4())
    doomed = await command(spread_http, thread_id, "run.start", {
        "assistant_id": "sleepy", "input": {"steps": 200, "delay": 0.05}})
    seen = await read_events(spread_http, thread_id, channels=["custom"], stop_after=2)
    after = await command(spread_http, thread_id, "run.start", {
        "assistant_id": "quick", "input": {}, "multitaskStrategy": "rollback"})
    assert after["type"] == "success"
    # Once its rollback is complete the run is gone, and its events with it.
    assert await wait_final(client, thread_id, doomed["result"]["run_id"]) is None
    events = await read_events(spread_http, thread_id, since=seen[-1]["seq"])
    assert events[0]["type"] == "error" and events[0]["error"] == "resume_gap"
    assert events[0]["since"] == seen[-1]["seq"]
    assert events[0]["min_available_seq"] <= events[1]["seq"]
    assert all(e["event_id"].startswith(after["result"]["run_id"]) for e in events[1:])
    assert events[-1]["params"]["data"]["event"] == "completed"


# ------------------------------------------------------------------ WebSocket


async def test_websocket_subscriptions(server):
    import websockets

    thread_id = str(uuid.uuid4())
    url = server.url.replace("http", "ws") + f"/threads/{thread_id}/stream/events"
    async with websockets.connect(url) as ws:
        async def ask(message: dict[str, Any]) -> dict[str, Any]:
            await ws.send(json.dumps(message))
            while True:
                answer = json.loads(await ws.recv())
                if answer.get("type") != "event":
                    return answer

        sub = await ask({"id": 1, "method": "subscription.subscribe",
                         "params": {"channels": ["lifecycle", "custom"]}})
        assert sub["type"] == "success" and sub["result"]["subscription_id"]
        bad = await ask({"id": 2, "method": "subscription.subscribe",
                         "params": {"channels": ["nope"]}})
        assert bad["error"] == "invalid_argument" and "nope" in bad["message"]
        started = await ask({"id": 3, "method": "run.start",
                             "params": {"assistant_id": "sleepy", "input": {"steps": 3}}})
        assert started["type"] == "success"
        events: list[dict[str, Any]] = []
        while not events or not is_root_end(events[-1]):
            message = json.loads(await ws.recv())
            assert message["type"] == "event"
            events.append(message)
        assert [e["method"] for e in events] == ["lifecycle", *["custom"] * 3, "lifecycle"]
        gone = await ask({"id": 4, "method": "subscription.unsubscribe",
                          "params": {"subscription_id": sub["result"]["subscription_id"]}})
        assert gone["type"] == "success"
        again = await ask({"id": 5, "method": "subscription.unsubscribe",
                           "params": {"subscription_id": sub["result"]["subscription_id"]}})
        assert again["error"] == "no_such_subscription"
        resumed = await ask({"id": 6, "method": "subscription.reconnect",
                             "params": {"channels": ["lifecycle", "custom"],
                                        "since": events[1]["seq"]}})
        assert resumed["type"] == "success"
        rest = [json.loads(await ws.recv()) for _ in range(3)]
        assert rest == events[2:]
        unknown = await ask({"id": 7, "method": "state.fork", "params": {}})
        assert unknown["error"] == "unknown_command"
        tree = await ask({"id": 8, "method": "agent.getTree", "params": {}})
        assert tree["result"]["tree"]["status"] == "completed"
        assert tree["meta"]["applied_through_seq"] == events[-1]["seq"]


# ------------------------------------------------------------------ bad input


async def test_bad_input_is_a_clear_4xx_or_the_protocols_error(spread_http):
    thread_id = str(uuid.uuid4())
    url = f"/threads/{thread_id}/stream/events"
    for body, words in (
            ({"channels": ["values", "nope"]}, "nope"),
            ({"channels": []}, "channels"),
            ({}, "channels"),
            ([1, 2], "JSON object"),
            ({"channels": ["values"], "since": True}, "since"),
            ({"channels": ["values"], "since": -1}, "since"),
            ({"channels": ["values"], "depth": "deep"}, "depth"),
            ({"channels": ["values"], "namespaces": "agent"}, "namespaces"),
            ({"channels": ["values"], "since": 999_999_999_000_000}, "future")):
        resp = await spread_http.post(url, json=body)
        assert resp.status_code == 400 and words in resp.json()["detail"], (body, resp.text)
    resp = await spread_http.post(url, content=b"{not json")
    assert resp.status_code == 422 and "not valid JSON" in resp.json()["detail"]

    commands = f"/threads/{thread_id}/commands"
    resp = await spread_http.post(commands, content=b"[")
    assert resp.status_code == 422 and "not valid JSON" in resp.json()["detail"]
    resp = await spread_http.post(commands, json={"method": "run.start"})
    assert resp.status_code == 400 and resp.json() == {
        "type": "error", "id": None, "error": "invalid_argument",
        "message": resp.json()["message"], "detail": resp.json()["message"]}
    assert "integer `id`" in resp.json()["message"]
    for method, params, code in (
            ("run.fly", {}, "unknown_command"),
            ("run.start", {}, "invalid_argument"),
            ("run.start", {"assistant_id": "react_agent", "config": "x"}, "invalid_argument"),
            ("run.start", {"assistant_id": "no-such-graph"}, "unknown_error"),
            ("input.respond", {}, "invalid_argument"),
            ("input.respond", {"interrupt_id": "x"}, "no_such_interrupt"),
            ("agent.getTree", {}, "no_such_run"),
            ("subscription.subscribe", {"channels": ["values"]}, "not_supported")):
        answer = await command(spread_http, thread_id, method, params, command_id=9)
        assert answer["type"] == "error" and answer["id"] == 9, answer
        assert answer["error"] == code and answer["message"], answer
    resp = await spread_http.post("/threads/not-a-uuid/commands",
                             json={"id": 1, "method": "agent.getTree"})
    assert resp.status_code == 422


async def test_cors_on_the_protocol_routes(spread_http):
    origin = {"origin": "https://app.example"}
    for path in ("stream/events", "commands"):
        url = f"/threads/{uuid.uuid4()}/{path}"
        preflight = await spread_http.options(url, headers={
            **origin, "access-control-request-method": "POST",
            "access-control-request-headers": "content-type"})
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["access-control-allow-origin"] in ("*", origin["origin"])
    answer = await spread_http.post(f"/threads/{uuid.uuid4()}/commands", headers=origin,
                               json={"id": 1, "method": "agent.getTree"})
    assert answer.headers["access-control-allow-origin"] in ("*", origin["origin"])


# ------------------------------------------------- the module's stream_transformers


async def _picked(server: Any, assistant_id: str) -> tuple[list[dict], list[dict]]:
    """(events of `custom:progress`, `custom:note` and lifecycle; events of `custom`) of
    one `picker` run through the SDK."""
    client = sdk_client(server)
    async with client.threads.stream(assistant_id=assistant_id) as session:
        named = session.subscribe(["custom:progress", "custom:note", "lifecycle"])
        named_events: list[dict] = []

        async def collect() -> list[dict]:
            async for event in named:
                named_events.append(event)
                if is_root_end(event):
                    return named_events
            raise AssertionError(f"the subscription ended early: {named_events}")

        task = asyncio.create_task(asyncio.wait_for(collect(), 60))
        # No wait for the subscription to open: without `since` it replays the
        # thread's runs, so it sees the whole run whenever it opens.
        await session.run.start(input={"count": 6})
        assert (await asyncio.wait_for(session.output, 60))["picked"] == 6
        await task
        # Every custom event, read whole from the thread's stream.
        every = await read_events(client.http.client, session.thread_id,
                                  channels=["custom", "lifecycle"])
    return named_events, every


async def test_the_modules_stream_transformers_reach_custom_name_subscribers(server):
    """`picker`'s module exports `stream_transformers` (a class and an instance): its
    channels reach `custom:<name>` subscribers, each only its own, and `custom` carries
    them next to the node's own custom events (runlane's CustomTransformer is kept)."""
    named, every = await _picked(server, "picker")
    picked = [e["params"]["data"] for e in named if e["method"] == "custom"]
    assert picked == [{"name": "progress" if i % 2 == 0 else "note", "payload": {"i": i}}
                      for i in range(6)]
    assert {e["method"] for e in named} == {"custom", "lifecycle"}
    custom = [e["params"]["data"] for e in every if e["method"] == "custom"]
    assert [d for d in custom if "name" not in d] == [
        {"to": "progress" if i % 2 == 0 else "note", "i": i} for i in range(6)]
    assert [d for d in custom if "name" in d] == picked


@pytest.mark.parametrize("assistant_id", ["picker_ignored", "picker_raising"])
async def test_a_bad_stream_transformers_leaves_the_run_unharmed(server, assistant_id):
    """A `stream_transformers` that is not a callable (ignored at start-up) or raises
    (each run goes on with the built-ins): the run completes, `custom` has the node's
    events, and the named channels nothing."""
    named, every = await _picked(server, assistant_id)
    assert [e["method"] for e in named] == ["lifecycle", "lifecycle"]
    custom = [e["params"]["data"] for e in every if e["method"] == "custom"]
    assert custom == [{"to": "progress" if i % 2 == 0 else "note", "i": i}
                      for i in range(6)]
    ended = [e["params"]["data"]["event"] for e in every if is_root_end(e)]
    assert ended == ["completed"]
