"""A2A end to end: the official a2a-sdk client against real `runlane serve` processes,
on SQLite and on a 3-worker PostgreSQL + Redis cluster (each request to the next
worker, so a task is read and cancelled on workers that did not create it).

What it proves: the agent card; message/send with a real-shaped chat agent
(examples/agents react_agent on its fake model) answering as a completed task with
the answer as an artifact; message/stream's events; a context is a thread (a second
message sees the conversation); tasks/get from the run record; and tasks/cancel as the
run contract: 20 concurrent duplicate cancels stop a long run once and all answer the
cancelled task, cancels racing completion always agree with the run's final stored
status, a finished task is TaskNotCancelableError naming its state, an unknown or
another owner's task is TaskNotFoundError. Bad JSON-RPC input is a JSON-RPC error,
never a 5xx.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from a2a.client import Client
from a2a.client.errors import A2AClientJSONRPCError
from a2a.types import (
    Task,
    TaskArtifactUpdateEvent,
    TaskIdParams,
    TaskQueryParams,
    TaskState,
    TaskStatusUpdateEvent,
)
from prometheus_client.parser import text_string_to_metric_families

from a2a_support import (
    TASK_NOT_CANCELABLE,
    TASK_NOT_FOUND,
    answer_text,
    connect,
    message,
    send,
)
from auth_support import secured_server
from conftest import BACKENDS, ServerProcess

AGENT = "react_agent"  # examples/agents: create_react_agent on the fake chat model
# "long" makes the fake model tell a 300-word story, a word every 20 ms: about 6 s.
LONG = "tell me a long story"


def _ids(task: Task) -> tuple[str, str]:
    thread_id, run_id = task.id.split(":")
    assert thread_id == task.context_id
    return thread_id, run_id


async def _run(client: Any, task: Task) -> dict[str, Any]:
    """The task's run, read with langgraph_sdk from the REST API."""
    thread_id, run_id = _ids(task)
    return await client.runs.get(thread_id, run_id)


async def _wait_status(client: Any, task: Task, wanted: set[str],
                       timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = await _run(client, task)
        if run["status"] in wanted:
            return run
        assert time.monotonic() < deadline, f"run stayed {run['status']}, wanted {wanted}"
        await asyncio.sleep(0.05)


async def _cancel_counts(server: Any) -> dict[str, float]:
    """runlane_cancel_requests by outcome, summed over every worker."""
    counts: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=30) as http:
        for url in getattr(server, "urls", [server.url]):
            text = (await http.get(f"{url}/metrics")).text
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == "runlane_cancel_requests_total":
                        outcome = sample.labels["outcome"]
                        counts[outcome] = counts.get(outcome, 0) + sample.value
    return counts


@pytest.fixture
async def agent(server: ServerProcess) -> AsyncIterator[Client]:
    client, http = await connect(server, AGENT)
    yield client
    await http.aclose()


# ------------------------------------------------------------------- the card


def test_agent_card(server: ServerProcess, http: httpx.Client) -> None:
    assistant_id = http.post("/assistants/search", json={"graph_id": AGENT}).json()[0][
        "assistant_id"]
    for path in (f"/a2a/{assistant_id}/.well-known/agent-card.json",
                 f"/a2a/{AGENT}/.well-known/agent-card.json", f"/a2a/{assistant_id}"):
        resp = http.get(path)
        assert resp.status_code == 200, (path, resp.text)
        card = resp.json()
        assert card["name"] == AGENT
        assert card["url"].endswith(f"/a2a/{assistant_id}")
        assert card["capabilities"]["streaming"] is True
        assert card["capabilities"]["pushNotifications"] is False
        assert [s["id"] for s in card["skills"]] == [f"{assistant_id}-main"]
        assert "text/plain" in card["defaultInputModes"]
    missing = http.get(f"/a2a/{uuid.uuid4()}/.well-known/agent-card.json")
    assert missing.status_code == 404 and "not found" in missing.json()["detail"]


# ------------------------------------------------------------------ sending


async def test_message_send_answers_a_completed_task(agent: Client, client: Any) -> None:
    task = await send(agent, message("hello there"))
    assert task.status.state is TaskState.completed
    assert answer_text(task) == "You said: hello there"
    run = await _run(client, task)  # the task is the run, the context its thread
    default = (await client.assistants.search(graph_id=AGENT, metadata={
        "created_by": "system"}))[0]
    assert run["status"] == "success" and run["assistant_id"] == default["assistant_id"]
    assert task.history and task.history[0].parts[0].root.text == "hello there"


async def test_context_is_the_thread(agent: Client, client: Any) -> None:
    """A second message on the context continues the conversation: the same thread,
    holding both turns, answered by a second task (run)."""
    first = await send(agent, message("what is 12 * 7"))
    assert first.status.state is TaskState.completed
    assert "84" in answer_text(first)  # the calculator tool ran
    second = await send(agent, message("hello again", context_id=first.context_id))
    assert second.status.state is TaskState.completed
    assert second.context_id == first.context_id and second.id != first.id
    assert answer_text(second) == "You said: hello again"
    values = (await client.threads.get_state(first.context_id))["values"]
    humans = [m["content"] for m in values["messages"] if m["type"] == "human"]
    assert humans == ["what is 12 * 7", "hello again"]
    runs = await client.runs.list(first.context_id)
    assert {r["run_id"] for r in runs} == {_ids(first)[1], _ids(second)[1]}


async def test_message_stream(server: ServerProcess, client: Any) -> None:
    streaming, transport = await connect(server, AGENT, streaming=True)
    try:
        # (the client updates one task object as events arrive: its state is read
        # at each event)
        events = [(task, update, task.status.state)
                  async for task, update in streaming.send_message(message("hello stream"))]
    finally:
        await transport.aclose()
    updates = [update for _, update, _ in events]
    assert updates[0] is None  # the task itself first
    assert events[0][2] is TaskState.submitted
    states = [u.status.state for u in updates if isinstance(u, TaskStatusUpdateEvent)]
    assert states[0] is TaskState.working and states[-1] is TaskState.completed
    assert [u.final for u in updates if isinstance(u, TaskStatusUpdateEvent)][-1] is True
    tokens = "".join(u.status.message.parts[0].root.text for u in updates
                     if isinstance(u, TaskStatusUpdateEvent) and u.status.message)
    artifacts = [u.artifact for u in updates if isinstance(u, TaskArtifactUpdateEvent)]
    assert len(artifacts) == 1
    answer = artifacts[0].parts[0].root.text
    assert answer == "You said: hello stream"
    assert tokens.strip() == answer  # the words as they streamed make the answer
    task = events[-1][0]
    assert (await _run(client, task))["status"] == "success"


# ------------------------------------------------------------------ reading


async def test_tasks_get(server: ServerProcess, agent: Client) -> None:
    sent = await send(agent, message("hello get"))
    got = await agent.get_task(TaskQueryParams(id=sent.id))
    assert got.id == sent.id and got.context_id == sent.context_id
    assert got.status.state is TaskState.completed
    assert answer_text(got) == "You said: hello get"
    for unknown in (f"{uuid.uuid4()}:{uuid.uuid4()}", f"{sent.context_id}:{uuid.uuid4()}",
                    str(uuid.uuid4()), "not-a-task"):
        with pytest.raises(A2AClientJSONRPCError) as err:
            await agent.get_task(TaskQueryParams(id=unknown))
        assert err.value.error.code == TASK_NOT_FOUND, unknown
    # A task of another assistant is not this agent's.
    other, transport = await connect(server, "echo")
    try:
        with pytest.raises(A2AClientJSONRPCError) as err:
            await other.get_task(TaskQueryParams(id=sent.id))
        assert err.value.error.code == TASK_NOT_FOUND
    finally:
        await transport.aclose()


def test_tasks_get_after_restart(fresh_server: ServerProcess) -> None:
    """tasks/get reads the run record: a restarted server answers it."""

    async def remember() -> Task:
        client, transport = await connect(fresh_server, AGENT)
        try:
            return await send(client, message("remember me"))
        finally:
            await transport.aclose()

    async def get(task_id: str) -> Task:
        client, transport = await connect(fresh_server, AGENT)
        try:
            return await client.get_task(TaskQueryParams(id=task_id))
        finally:
            await transport.aclose()

    sent = asyncio.run(remember())
    fresh_server.restart()
    got = asyncio.run(get(sent.id))
    assert got.status.state is TaskState.completed and answer_text(got) == "You said: remember me"


# ------------------------------------------------------------------- cancel


@pytest.mark.race
async def test_concurrent_duplicate_cancels_stop_the_run_once(
        server: ServerProcess, agent: Client, client: Any) -> None:
    task = await send(agent, message(LONG), blocking=False)
    assert task.status.state in (TaskState.submitted, TaskState.working)
    await _wait_status(client, task, {"running"})
    before = await _cancel_counts(server)
    answers = await asyncio.gather(*(agent.cancel_task(TaskIdParams(id=task.id))
                                     for _ in range(20)), return_exceptions=True)
    assert all(isinstance(a, Task) for a in answers), answers
    assert {a.status.state for a in answers} == {TaskState.canceled}
    assert {a.id for a in answers} == {task.id}
    after = await _cancel_counts(server)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    assert delta.get("recorded") == 1, delta  # one cancel recorded, by one of the 20
    assert delta.get("already_recorded", 0) + delta.get("already_interrupted", 0) == 19, delta
    run = await _run(client, task)
    assert run["status"] == "interrupted" and run["cancel_reason"] == "user"
    again = await agent.cancel_task(TaskIdParams(id=task.id))  # and later: the same answer
    assert again.status.state is TaskState.canceled
    got = await agent.get_task(TaskQueryParams(id=task.id))
    assert got.status.state is TaskState.canceled


async def test_cancel_of_a_finished_task_names_its_state(
        server: ServerProcess, agent: Client, client: Any) -> None:
    done = await send(agent, message("hello cancel"))
    with pytest.raises(A2AClientJSONRPCError) as err:
        await agent.cancel_task(TaskIdParams(id=done.id))
    assert err.value.error.code == TASK_NOT_CANCELABLE
    assert "completed" in (err.value.error.message or "")
    assert (await _run(client, done))["status"] == "success"  # untouched

    raising, transport = await connect(server, "raising_agent")
    try:
        failed = await send(raising, message("what is the weather"))
        assert failed.status.state is TaskState.failed
        assert failed.status.message and "weather service is down" in (
            failed.status.message.parts[0].root.text)
        with pytest.raises(A2AClientJSONRPCError) as err:
            await raising.cancel_task(TaskIdParams(id=failed.id))
        assert err.value.error.code == TASK_NOT_CANCELABLE
        assert "failed" in (err.value.error.message or "")
    finally:
        await transport.aclose()
    for unknown in (f"{uuid.uuid4()}:{uuid.uuid4()}", "bogus"):
        with pytest.raises(A2AClientJSONRPCError) as err:
            await agent.cancel_task(TaskIdParams(id=unknown))
        assert err.value.error.code == TASK_NOT_FOUND


@pytest.mark.race
async def test_cancel_racing_completion_agrees_with_the_stored_status(
        agent: Client, client: Any) -> None:
    """Short runs, each cancelled (twice at once) after a random delay: every answer
    is the run's final stored status: `canceled` only for an `interrupted` run,
    TaskNotCancelableError (`completed`) only for a `success` one."""
    seen: dict[str, int] = {"canceled": 0, "completed": 0}
    for _ in range(30):
        task = await send(agent, message("hi"), blocking=False)
        await asyncio.sleep(random.uniform(0, 0.4))
        answers = await asyncio.gather(
            agent.cancel_task(TaskIdParams(id=task.id)),
            agent.cancel_task(TaskIdParams(id=task.id)), return_exceptions=True)
        final = await _wait_status(client, task, {"success", "interrupted", "error"})
        for answer in answers:
            if isinstance(answer, Task):
                assert answer.status.state is TaskState.canceled
                assert final["status"] == "interrupted", (answer, final)
                seen["canceled"] += 1
            else:
                assert isinstance(answer, A2AClientJSONRPCError), answer
                assert answer.error.code == TASK_NOT_CANCELABLE, answer
                assert "completed" in (answer.error.message or "")
                assert final["status"] == "success", (answer, final)
                seen["completed"] += 1
        kinds = {isinstance(a, Task) for a in answers}
        assert len(kinds) == 1, answers  # both cancels of one run agree
    print("cancel racing completion:", seen)


# --------------------------------------------------------- another owner's task


@pytest.mark.parametrize("backend", BACKENDS)
async def test_another_owners_task_is_not_found(backend: str) -> None:
    with secured_server("api-key", backend) as secured:
        alice, alice_http = await connect(secured.server, AGENT,
                                          headers=secured.headers_for("alice"))
        bob, bob_http = await connect(secured.server, AGENT, headers=secured.headers_for("bob"))
        try:
            task = await send(alice, message(LONG), blocking=False)
            for call in (bob.get_task(TaskQueryParams(id=task.id)),
                         bob.cancel_task(TaskIdParams(id=task.id))):
                with pytest.raises(A2AClientJSONRPCError) as err:
                    await call
                assert err.value.error.code == TASK_NOT_FOUND
                assert err.value.error.message == f"task {task.id!r} not found"
            # bob cannot continue alice's context either (her thread is not his)
            with pytest.raises(A2AClientJSONRPCError):
                await send(bob, message("hi", context_id=task.context_id))
            mine = await alice.get_task(TaskQueryParams(id=task.id))
            assert mine.status.state in (TaskState.submitted, TaskState.working)
            cancelled = await alice.cancel_task(TaskIdParams(id=task.id))
            assert cancelled.status.state is TaskState.canceled
            anonymous = await bob_http.post(  # no credentials: 401 before JSON-RPC
                f"{secured.url}/a2a/{AGENT}", headers={"x-api-key": ""},
                json={"jsonrpc": "2.0", "id": 1, "method": "tasks/get",
                      "params": {"id": task.id}})
            assert anonymous.status_code == 401
        finally:
            await alice_http.aclose()
            await bob_http.aclose()


# --------------------------------------------------------------- bad input


BAD_REQUESTS: list[tuple[Any, int]] = [
    ([1, 2], -32600),
    ({"jsonrpc": "1.0", "id": 1, "method": "tasks/get", "params": {"id": "x"}}, -32600),
    ({"jsonrpc": "2.0", "id": 1}, -32600),
    ({"jsonrpc": "2.0", "id": 1, "method": "tasks/bogus"}, -32601),
    ({"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {}}, -32602),
    ({"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": 5}}, -32602),
    ({"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": {
        "role": "user", "messageId": "m", "contextId": "not-a-uuid",
        "parts": [{"kind": "text", "text": "hi"}]}}}, -32602),
    ({"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": {
        "role": "user", "messageId": "m", "parts": [{"kind": "file", "file": {
            "uri": "https://example.com/a.png"}}]}}}, -32005),
    ({"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": {
        "role": "user", "messageId": "m", "taskId": "nope",
        "parts": [{"kind": "text", "text": "hi"}]}}}, TASK_NOT_FOUND),
    ({"jsonrpc": "2.0", "id": 1, "method": "tasks/resubscribe", "params": {"id": "x"}}, -32004),
    # The SDK refuses it from the card (pushNotifications: false) as an internal error
    # that says so.
    ({"jsonrpc": "2.0", "id": 1, "method": "tasks/pushNotificationConfig/set", "params": {
        "taskId": "x", "pushNotificationConfig": {"url": "https://example.com"}}}, -32603),
]


def test_bad_jsonrpc_is_a_jsonrpc_error(http: httpx.Client) -> None:
    resp = http.post(f"/a2a/{AGENT}", content=b"{not json",
                     headers={"content-type": "application/json"})
    assert resp.status_code == 200 and resp.json()["error"]["code"] == -32700, resp.text
    for body, code in BAD_REQUESTS:
        resp = http.post(f"/a2a/{AGENT}", json=body)
        assert resp.status_code == 200, (body, resp.status_code, resp.text)
        if resp.headers["content-type"].startswith("text/event-stream"):
            data = [line[6:] for line in resp.text.splitlines() if line.startswith("data: ")]
            assert len(data) == 1, resp.text
            error = json.loads(data[0])["error"]
        else:
            error = resp.json()["error"]
        assert error["code"] == code, (body, error)
    empty = http.post(f"/a2a/{AGENT}")
    assert empty.status_code == 200 and empty.json()["error"]["code"] == -32700, empty.text
    # No agent at that URL: a 404, like its card.
    for method in ("message/send", "tasks/get", "tasks/cancel"):
        resp = http.post(f"/a2a/{uuid.uuid4()}", json={
            "jsonrpc": "2.0", "id": 1, "method": method, "params": {
                "id": "x", "message": {"role": "user", "messageId": "m",
                                       "parts": [{"kind": "text", "text": "hi"}]}}})
        assert resp.status_code == 404, resp.text
        assert "not found" in resp.json()["detail"]


# ------------------------------------------------------- human in the loop


async def test_input_required_and_resume(server: ServerProcess, client: Any) -> None:
    hitl, transport = await connect(server, "hitl_agent")
    try:
        paused = await send(hitl, message("transfer 50 to Alice"))
        assert paused.status.state is TaskState.input_required
        assert paused.artifacts and paused.artifacts[0].name == "Interrupt"
        assert (await _run(client, paused))["status"] == "success"  # a pause is not a cancel
        with pytest.raises(A2AClientJSONRPCError) as err:
            await hitl.cancel_task(TaskIdParams(id=paused.id))
        assert err.value.error.code == TASK_NOT_CANCELABLE
        assert "input-required" in (err.value.error.message or "")
        resumed = await send(hitl, message("approve", context_id=paused.context_id,
                                               task_id=paused.id))
        assert resumed.status.state is TaskState.completed, resumed
        assert resumed.context_id == paused.context_id
        got = await hitl.get_task(TaskQueryParams(id=paused.id))
        assert got.status.state is TaskState.completed  # no longer waiting
    finally:
        await transport.aclose()
