"""A2A's words for runlane's things, with no I/O: task ids, task states, a message's
parts as a graph's input, a graph's messages as an answer, and the agent card.

A task is a run and its context is the run's thread. The task id is
`{thread_id}:{run_id}`, as the reference server composes it, so `tasks/get` and
`tasks/cancel` (which carry only the task id) find the run without a second index.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentSkill,
    Artifact,
    DataPart,
    Message,
    Part,
    Role,
    Task,
    TaskState,
    TaskStatus,
    TextPart,
)

from runlane import __version__
from runlane.contract import RunStatus
from runlane.records import Assistant, Run

# What a message may carry and what an answer is made of (the reference's defaults).
INPUT_MODES = ["application/json", "text/plain"]
OUTPUT_MODES = ["application/json", "text/plain"]

# A run's status as the task state a client sees. A run that paused at interrupt()
# ended `success` but its thread waits for input: see `task_state`.
_STATES = {
    RunStatus.PENDING: TaskState.submitted,
    RunStatus.RUNNING: TaskState.working,
    RunStatus.SUCCESS: TaskState.completed,
    RunStatus.ERROR: TaskState.failed,
    RunStatus.TIMEOUT: TaskState.failed,
    RunStatus.INTERRUPTED: TaskState.canceled,
}


@dataclasses.dataclass(frozen=True)
class TaskRef:
    thread_id: str
    run_id: str

    @property
    def task_id(self) -> str:
        return f"{self.thread_id}:{self.run_id}"


def parse_task_id(task_id: str) -> TaskRef | None:
    """The run a task id names; None for anything runlane never issued (an unknown
    task, which is answered TaskNotFoundError like a missing one)."""
    thread_id, sep, run_id = task_id.partition(":")
    if not sep:
        return None
    try:
        return TaskRef(str(uuid.UUID(thread_id)), str(uuid.UUID(run_id)))
    except ValueError:
        return None


def task_state(run: Run, *, waits_for_input: bool = False) -> TaskState:
    """`waits_for_input`: the run ended `success` and left its thread paused at an
    interrupt() (and no later run has moved the thread on)."""
    if run.status is RunStatus.SUCCESS and waits_for_input:
        return TaskState.input_required
    return _STATES[run.status]


def graph_input(message: Message) -> dict[str, Any]:
    """A message's parts as the graph's input, as the reference maps them: each text
    part one human chat message (`messages`), each data part's object merged into the
    input's top level. ValueError saying what is accepted, for anything else."""
    messages: list[dict[str, Any]] = []
    data: dict[str, Any] = {}
    role = "human" if message.role is Role.user else "assistant"
    for index, part in enumerate(message.parts):
        root = part.root
        if isinstance(root, TextPart):
            messages.append({"role": role, "content": root.text, "id": message.message_id})
        elif isinstance(root, DataPart):
            data.update(root.data)
        else:
            raise ValueError(f"message.parts[{index}] is a {root.kind} part; this agent "
                             "accepts text and data parts")
    if not messages and not data:
        raise ValueError("the message has no text or data part to send to the agent")
    return {**({"messages": messages} if messages else {}), **data}


def resume_value(message: Message) -> Any:
    """What a message answering an input-required task resumes the graph with: its
    data part's object, or its text."""
    for part in message.parts:
        if isinstance(part.root, DataPart):
            return part.root.data
    return " ".join(p.root.text for p in message.parts if isinstance(p.root, TextPart))


def _is_ai(message: Any) -> bool:
    return isinstance(message, dict) and (
        message.get("type") in ("ai", "AIMessage", "AIMessageChunk")
        or message.get("role") in ("ai", "assistant"))


def _is_human(message: Any) -> bool:
    return isinstance(message, dict) and (
        message.get("type") in ("human", "HumanMessage")
        or message.get("role") in ("human", "user"))


def text_of(content: Any) -> str:
    """A chat message's content as text (a string, or a list of content blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            block if isinstance(block, str) else str(block.get("text", ""))
            for block in content
            if isinstance(block, str) or (isinstance(block, dict) and block.get("type") == "text")
        )
    return ""


def answer_parts(values: Any) -> list[Part]:
    """The answer a finished run gave: the last AI message of the current turn (after
    the last human message), else the values themselves as data."""
    if isinstance(values, dict) and isinstance(values.get("messages"), list):
        messages = values["messages"]
        turn_start = max((i + 1 for i, m in enumerate(messages) if _is_human(m)), default=0)
        for message in reversed(messages[turn_start:]):
            if _is_ai(message):
                text = text_of(message.get("content"))
                if text:
                    return [Part(root=TextPart(text=text))]
    if isinstance(values, dict):
        public = {k: v for k, v in values.items() if not k.startswith("__")}
        return [Part(root=DataPart(data=public))]
    return [Part(root=TextPart(text="" if values is None else str(values)))]


def response_artifact(values: Any, assistant_id: str) -> Artifact:
    return Artifact(artifact_id=str(uuid.uuid4()), name="Assistant Response",
                    description=f"Response from assistant {assistant_id}",
                    parts=answer_parts(values))


def interrupt_artifact(interrupts: list[Any]) -> Artifact:
    """What a paused graph asks for, one data part per interrupt()."""
    parts = [Part(root=DataPart(data={"id": i.get("id"), "value": i.get("value")}))
             for i in interrupts if isinstance(i, dict)]
    return Artifact(artifact_id=str(uuid.uuid4()), name="Interrupt",
                    description="Agent requires input to continue", parts=parts)


def agent_message(text: str, ref: TaskRef) -> Message:
    return Message(role=Role.agent, parts=[Part(root=TextPart(text=text))],
                   message_id=str(uuid.uuid4()), task_id=ref.task_id,
                   context_id=ref.thread_id)


def status_text(run: Run, state: TaskState) -> str | None:
    """The words a task's status carries for a run that did not complete."""
    if state is TaskState.failed:
        error = run.error or {}
        return (f"the run failed ({run.stop_reason or run.status.value}): "
                f"{error.get('error', 'Error')}: {error.get('message', '')}".rstrip(": "))
    if state is TaskState.canceled:
        return f"the run was cancelled ({run.cancel_reason or 'user'})"
    return None


def task_of(run: Run, state: TaskState, *, artifacts: list[Artifact] | None = None,
            history: list[Message] | None = None) -> Task:
    """The task a run is, in the state given, stamped with the run's last change."""
    ref = TaskRef(run.thread_id, run.run_id)
    text = status_text(run, state)
    status = TaskStatus(state=state, timestamp=run.updated_at.isoformat(),
                        message=agent_message(text, ref) if text else None)
    return Task(id=ref.task_id, context_id=run.thread_id, status=status,
                artifacts=artifacts or None, history=history or None,
                metadata={"run_id": run.run_id, "run_status": run.status.value})


def agent_card(assistant: Assistant, base_url: str) -> AgentCard:
    """The card of one assistant, as the reference builds it: the assistant's name and
    description, one skill (the assistant itself), streaming on, no push notifications."""
    name = assistant.name or assistant.graph_id
    description = assistant.description or f"{name} assistant"
    url = f"{base_url.rstrip('/')}/a2a/{assistant.assistant_id}"
    skill = AgentSkill(id=f"{assistant.assistant_id}-main", name=f"{name} Capabilities",
                       description=description, tags=["assistant", "langgraph"],
                       examples=[], input_modes=INPUT_MODES, output_modes=OUTPUT_MODES)
    return AgentCard(
        name=name, description=description, url=url, version=__version__,
        capabilities=AgentCapabilities(streaming=True, push_notifications=False,
                                       state_transition_history=False),
        default_input_modes=INPUT_MODES, default_output_modes=OUTPUT_MODES, skills=[skill],
    )
