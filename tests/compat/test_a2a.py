"""A2A side by side with the reference: every assistant is an agent at
/a2a/{assistant_id}, driven here by the official a2a-sdk client (the A2A 0.3 method
names, which both servers accept). The agent card, message/send and message/stream
with the chat agent of the corpus (react_agent, examples/agents), tasks/get, and
tasks/cancel: of a finished task, of a running one, and repeated (where runlane
differs on purpose: docs/differences.md)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, Client
from a2a.client.errors import A2AClientJSONRPCError
from a2a.types import (
    TaskArtifactUpdateEvent,
    TaskIdParams,
    TaskQueryParams,
    TaskState,
    TaskStatusUpdateEvent,
)

from a2a_support import TASK_NOT_CANCELABLE, answer_text, connect, message, send
from compat.support import default_assistant, wait_terminal


async def _agent(server: Any, client: Any, *, streaming: bool = False) -> tuple[Client, Any]:
    """The chat agent of the corpus, by the id each server gives its default assistant."""
    assistant = await default_assistant(client, "react_agent")
    return await connect(server, assistant["assistant_id"], streaming=streaming)


@pytest.mark.compat("a2a", "a2a.agent_card")
async def test_a2a_agent_card(server, client):
    assistant = await default_assistant(client, "react_agent")
    assistant_id = assistant["assistant_id"]
    async with httpx.AsyncClient(timeout=60) as http:
        card = await A2ACardResolver(http, f"{server.url}/a2a/{assistant_id}").get_agent_card()
    assert card.name == "react_agent"
    assert card.url.endswith(f"/a2a/{assistant_id}")
    assert card.capabilities.streaming is True
    assert [skill.id for skill in card.skills] == [f"{assistant_id}-main"]
    assert "text/plain" in card.default_input_modes


@pytest.mark.compat("a2a", "a2a.message/send", "a2a.tasks/get")
async def test_a2a_message_send_and_get(server, client):
    agent, http = await _agent(server, client)
    try:
        task = await send(agent, message("hello there"))
        assert task.status.state is TaskState.completed
        assert answer_text(task) == "You said: hello there"
        # The task is a run of the assistant, on the context's thread.
        runs = await client.runs.list(task.context_id)
        assert [r["run_id"] for r in runs] == [task.id.split(":")[1]]
        got = await agent.get_task(TaskQueryParams(id=task.id))
        assert got.status.state is TaskState.completed
        assert got.context_id == task.context_id
    finally:
        await http.aclose()


@pytest.mark.compat("a2a", "a2a.message/stream")
async def test_a2a_message_stream(server, client):
    agent, http = await _agent(server, client, streaming=True)
    try:
        events = [(update, task.status.state)
                  async for task, update in agent.send_message(message("hello stream"))]
    finally:
        await http.aclose()
    states = [state for _, state in events]
    assert states[-1] is TaskState.completed
    assert TaskState.working in states
    artifacts = [u.artifact for u, _ in events if isinstance(u, TaskArtifactUpdateEvent)]
    assert [p.root.text for a in artifacts for p in a.parts] == ["You said: hello stream"]
    finals = [u for u, _ in events if isinstance(u, TaskStatusUpdateEvent) and u.final]
    assert len(finals) == 1


@pytest.mark.compat("a2a", "a2a.tasks/cancel")
async def test_a2a_cancel_finished(server, client):
    """A completed task is not cancelable: TaskNotCancelableError."""
    agent, http = await _agent(server, client)
    try:
        done = await send(agent, message("hello"))
        with pytest.raises(A2AClientJSONRPCError) as err:
            await agent.cancel_task(TaskIdParams(id=done.id))
        assert err.value.error.code == TASK_NOT_CANCELABLE
    finally:
        await http.aclose()


@pytest.mark.compat("a2a", "a2a.tasks/cancel", "a2a.message/stream")
async def test_a2a_cancel_running(server, client, is_reference):
    """A running task (started by message/stream, which names the task at once) is
    cancelled: the answer is the task `canceled` and its run ends `interrupted`.
    Cancelling it again: runlane answers the cancelled task again (idempotent, as its
    REST cancel), the reference TaskNotCancelableError (docs/differences.md)."""
    streaming, stream_http = await _agent(server, client, streaming=True)
    agent, http = await _agent(server, client)
    try:
        events = streaming.send_message(message("tell me a long story"))
        first, _ = await anext(events)
        thread_id, run_id = first.id.split(":")
        for _ in range(400):  # until the run is running (at most ~20 s)
            if (await client.runs.get(thread_id, run_id))["status"] == "running":
                break
            await asyncio.sleep(0.05)
        cancelled = await agent.cancel_task(TaskIdParams(id=first.id))
        assert cancelled.status.state is TaskState.canceled
        assert (await wait_terminal(client, thread_id, run_id))["status"] == "interrupted"
        await events.aclose()
        if is_reference:
            with pytest.raises(A2AClientJSONRPCError) as err:
                await agent.cancel_task(TaskIdParams(id=first.id))
            assert err.value.error.code == TASK_NOT_CANCELABLE
        else:
            again = await agent.cancel_task(TaskIdParams(id=first.id))
            assert again.status.state is TaskState.canceled
    finally:
        await http.aclose()
        await stream_http.aclose()
