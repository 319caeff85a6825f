"""The v2 protocol's commands on a thread (POST /threads/{id}/commands and the
WebSocket): what `run.start` and `input.respond` ask for, checked and resolved into
an ordinary run request; the routes create it through the same path as
POST /threads/{id}/runs (auth handlers, multitask rules, compare-and-set admission).

As on the reference: `run.start` with an input on a thread that waits on interrupts
resumes it (the input is the resume value); `input.respond` answers interrupts by id
(one, or several at once), checked against the thread's pending interrupts."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import time
import uuid
from typing import Any

from runlane.owners import Owner
from runlane.run_context import PROTOCOL_V2_MARKER
from runlane.serde import JSONObject
from runlane.service.protocol_wire import MULTITASK_STRATEGIES, ProtocolInputError
from runlane.service.runs import Runlane

COMMANDS = ("run.start", "input.respond", "agent.getTree", "subscription.subscribe",
            "subscription.unsubscribe", "subscription.reconnect")
HTTP_COMMANDS = ("run.start", "input.respond", "agent.getTree")

# input.respond right after a run paused: its interrupts are recorded when the run
# settles, which may be a moment after the `input.requested` event was sent.
SETTLE_WAIT_SECONDS = 5.0


# The protocol's runs stream with langgraph's v3 protocol events (langgraph 1.2+).
SUPPORTED = importlib.util.find_spec("langgraph.stream.transformers") is not None
UNSUPPORTED = ("the v2 streaming protocol needs a langgraph with its v3 stream "
               "(langgraph.stream.transformers, langgraph 1.2 or later); this server has "
               "an older one: upgrade langgraph")


class NotSupported(RuntimeError):
    """The installed langgraph cannot run this protocol's runs."""


class NoSuchInterrupt(LookupError):
    """An interrupt id the thread is not waiting on."""


class NoInterruptedRun(LookupError):
    """input.respond on a thread with no run to resume."""


@dataclasses.dataclass(frozen=True)
class Command:
    id: int
    method: str
    params: JSONObject


def parse_command(payload: object) -> Command:
    """The envelope: an integer `id`, a string `method`, optional object `params`."""
    if (not isinstance(payload, dict) or not isinstance(payload.get("id"), int)
            or isinstance(payload.get("id"), bool) or not isinstance(payload.get("method"), str)):
        raise ProtocolInputError("protocol commands must be JSON objects with an integer `id` "
                                 "and a string `method`")
    params = payload.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ProtocolInputError(f"{payload['method']}: `params` must be a JSON object")
    return Command(payload["id"], payload["method"], params)


@dataclasses.dataclass
class RunPlan:
    """The run a command asks for, as POST /threads/{id}/runs takes it."""

    assistant_id: str
    input: Any = None
    command: JSONObject | None = None
    config: JSONObject = dataclasses.field(default_factory=dict)
    metadata: JSONObject | None = None
    multitask_strategy: str = "enqueue"
    checkpoint_id: str | None = None

    def body(self) -> JSONObject:
        """The RunCreate body: a run of this protocol (the executor streams
        langgraph's protocol events for it), resumable, creating the thread."""
        configurable = dict(self.config.get("configurable") or {})
        configurable[PROTOCOL_V2_MARKER] = True
        configurable.pop("checkpoint_id", None)
        body: JSONObject = {
            "assistant_id": self.assistant_id, "input": self.input,
            "config": {**self.config, "configurable": configurable},
            "metadata": self.metadata, "stream_mode": ["values"], "stream_subgraphs": True,
            "stream_resumable": True, "if_not_exists": "create",
            "multitask_strategy": self.multitask_strategy,
        }
        if self.command is not None:
            body["command"] = self.command
        if self.checkpoint_id is not None:
            body["checkpoint_id"] = self.checkpoint_id
        return body


def _object(params: JSONObject, key: str, method: str) -> JSONObject | None:
    value = params.get(key)
    if value is not None and not isinstance(value, dict):
        raise ProtocolInputError(f"{method}: `{key}` must be a JSON object")
    return value


def _strategy(params: JSONObject) -> str:
    strategy = params.get("multitaskStrategy", params.get("multitask_strategy"))
    return strategy if strategy in MULTITASK_STRATEGIES else "enqueue"


def _checkpoint_id(config: JSONObject | None) -> str | None:
    configurable = (config or {}).get("configurable")
    value = configurable.get("checkpoint_id") if isinstance(configurable, dict) else None
    if value is None:
        return None
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ProtocolInputError(f"run.start: config.configurable.checkpoint_id must be a "
                                 f"checkpoint id (a UUID), got {value!r}") from None


async def plan_run_start(svc: Runlane, thread_id: str, params: JSONObject,
                         owner: Owner) -> RunPlan:
    if not SUPPORTED:
        raise NotSupported(UNSUPPORTED)
    assistant_id = params.get("assistant_id")
    if not isinstance(assistant_id, str) or not assistant_id:
        raise ProtocolInputError("run.start requires an `assistant_id` (a graph id or an "
                                 "assistant's id)")
    config = _object(params, "config", "run.start") or {}
    metadata = _object(params, "metadata", "run.start")
    plan = RunPlan(assistant_id, config=config, metadata=metadata,
                   multitask_strategy=_strategy(params), checkpoint_id=_checkpoint_id(config))
    value = params.get("input")
    if value is not None and await _pending_interrupts(svc, thread_id, owner, wait=False):
        plan.command = {"resume": value}  # the thread waits on an answer: this is it
    else:
        plan.input = value
    return plan


def _responses(params: JSONObject) -> list[tuple[str, Any]]:
    entries = params.get("responses")
    if entries is None:
        entries = [params]
    elif not isinstance(entries, list) or not entries:
        raise ProtocolInputError("input.respond: `responses` must be a non-empty array of "
                                 "{interrupt_id, response, namespace}")
    out = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("interrupt_id"), str):
            raise ProtocolInputError("input.respond requires an `interrupt_id` (a string) for "
                                     "every response")
        namespace = entry.get("namespace", [])
        if not isinstance(namespace, list) or not all(isinstance(s, str) for s in namespace):
            raise ProtocolInputError("input.respond: `namespace` must be an array of strings")
        out.append((entry["interrupt_id"], entry.get("response")))
    return out


async def plan_input_respond(svc: Runlane, thread_id: str, params: JSONObject,
                             owner: Owner) -> RunPlan:
    if not SUPPORTED:
        raise NotSupported(UNSUPPORTED)
    answers = _responses(params)
    update = _object(params, "update", "input.respond")
    config = _object(params, "config", "input.respond") or {}
    metadata = _object(params, "metadata", "input.respond")
    pending = await _pending_interrupts(svc, thread_id, owner, wait=True)
    for interrupt_id, _ in answers:
        if interrupt_id not in pending:
            raise NoSuchInterrupt(f"thread {thread_id} is not waiting on interrupt "
                                  f"{interrupt_id!r} (unknown, or already answered)")
    thread = await svc.store.get_thread(thread_id, owner=owner)
    assistant_id = (thread.metadata or {}).get("assistant_id") if thread else None
    if not isinstance(assistant_id, str):
        latest = await svc.store.list_runs(thread_id, limit=1, offset=0, status=None,
                                           owner=owner)
        if not latest:
            raise NoInterruptedRun(f"thread {thread_id} has no interrupted run to resume")
        assistant_id = latest[0].assistant_id
    command: JSONObject = {"resume": dict(answers)}
    if update is not None:
        command["update"] = update
    if params.get("goto") is not None:
        command["goto"] = params["goto"]
    return RunPlan(assistant_id, command=command, config=config, metadata=metadata,
                   multitask_strategy=_strategy(params))


async def _pending_interrupts(svc: Runlane, thread_id: str, owner: Owner, *,
                              wait: bool) -> set[str]:
    """The ids of the interrupts the thread waits on. With `wait`, a busy thread is
    given a moment to settle (its run just paused)."""
    deadline = time.monotonic() + (SETTLE_WAIT_SECONDS if wait else 0)
    while True:
        thread = await svc.store.get_thread(thread_id, owner=owner)
        if thread is None:
            return set()
        found = {entry["id"] for entries in (thread.interrupts or {}).values()
                 if isinstance(entries, list)
                 for entry in entries if isinstance(entry, dict) and isinstance(
                     entry.get("id"), str)}
        if found or thread.status != "busy" or time.monotonic() >= deadline:
            return found
        await asyncio.sleep(0.05)
