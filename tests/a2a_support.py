"""The A2A client side the A2A suites share (test_a2a.py against runlane,
compat/test_a2a.py side by side with the reference): the official a2a-sdk client
connected to an assistant's agent, messages, and what a task answered."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from a2a.client import Client, ClientConfig, ClientFactory
from a2a.types import Message, MessageSendConfiguration, Part, Role, Task, TextPart

# A2A's JSON-RPC error codes.
TASK_NOT_FOUND = -32001
TASK_NOT_CANCELABLE = -32002


def transport(server: Any) -> httpx.AsyncBaseTransport | None:
    """On a cluster, each request to the next worker (a task is read and cancelled
    on workers that did not create it); one server: httpx's own."""
    urls = getattr(server, "urls", None)
    if urls and len(urls) > 1:
        from cluster import RoundRobinTransport

        return RoundRobinTransport(urls)
    return None


async def connect(server: Any, assistant_id: str, *, streaming: bool = False,
                  headers: dict[str, str] | None = None) -> tuple[Client, httpx.AsyncClient]:
    """The official client, from the agent card it resolves at the assistant's agent
    URL; and its httpx client, for the caller to close."""
    http = httpx.AsyncClient(timeout=120, transport=transport(server), headers=headers or {})
    client = await ClientFactory.connect(
        f"{server.url}/a2a/{assistant_id}",
        client_config=ClientConfig(httpx_client=http, streaming=streaming))
    return client, http


def message(text: str, *, context_id: str | None = None,
            task_id: str | None = None) -> Message:
    return Message(role=Role.user, parts=[Part(root=TextPart(text=text))],
                   message_id=str(uuid.uuid4()), context_id=context_id, task_id=task_id)


async def send(client: Client, sent: Message, *, blocking: bool = True) -> Task:
    """message/send: the task it answers (never a bare message)."""
    async for event in client.send_message(
            sent, configuration=MessageSendConfiguration(blocking=blocking)):
        assert isinstance(event, tuple), event  # a task, never a bare message
        return event[0]
    raise AssertionError("message/send answered nothing")


def answer_text(task: Task) -> str:
    """The text of the task's artifacts: the agent's answer."""
    assert task.artifacts, task
    return "".join(p.root.text for a in task.artifacts for p in a.parts
                   if isinstance(p.root, TextPart))
