"""The v2 streaming protocol's vocabulary (langchain-protocol; the reference server
langgraph-api 0.16 is the oracle): channels, namespaces and subscription filters,
the command/error envelopes, and the state shape `values`/`updates` carry.

Pure functions over JSON; the event stream is service/protocol_stream.py, a run's
events service/protocol_events.py, the commands service/protocol_commands.py."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from runlane.serde import JSONObject

CHANNELS = ("values", "updates", "messages", "tools", "custom", "lifecycle", "input",
            "tasks", "checkpoints")
CHANNELS_TEXT = ", ".join(CHANNELS) + ", or custom:<name>"

# What run.start and input.respond accept as multitaskStrategy (anything else: the
# reference's default for this protocol, enqueue).
MULTITASK_STRATEGIES = ("reject", "rollback", "interrupt", "enqueue")

# A thread's event `seq` is `run.seq * RUN_SPAN + n`: n the event's place among its
# run's protocol events. Every worker computes the same number for the same event
# from the run's own durable log, so a `since` cursor means the same thing wherever
# the reconnect lands, and no counter is shared. Seqs grow with the thread (runs are
# numbered in creation order) but are not contiguous, which the protocol allows
# (the SDKs only keep the highest seq seen). 10^7 events per run; run numbers up
# to 9 * 10^8 keep every seq below 2^53 (JavaScript's exact integers).
RUN_SPAN = 10_000_000


def is_channel(value: object) -> bool:
    return isinstance(value, str) and (
        value in CHANNELS or (value.startswith("custom:") and len(value) > len("custom:")))


def envelope_error(command_id: object, code: str, message: str, **extra: Any) -> JSONObject:
    """The protocol's ErrorResponse."""
    return {"type": "error", "id": command_id if isinstance(command_id, int) else None,
            "error": code, "message": message, **extra}


def envelope_success(command_id: int, result: JSONObject, applied_through_seq: int) -> JSONObject:
    return {"type": "success", "id": command_id, "result": result,
            "meta": {"applied_through_seq": applied_through_seq}}


class ProtocolInputError(ValueError):
    """A malformed command or subscription: answered as `invalid_argument`."""


@dataclasses.dataclass(frozen=True)
class Filter:
    """Which events one subscription (an SSE connection, a WebSocket subscription)
    receives: by channel (`custom:<name>` matching custom events of that name), by
    namespace prefix and depth below it."""

    channels: frozenset[str]
    namespaces: tuple[tuple[str, ...], ...] | None = None
    depth: int | None = None

    def matches(self, event: JSONObject) -> bool:
        method = event.get("method")
        channel = "input" if method == "input.requested" else method
        params = event.get("params") or {}
        if channel == "custom":
            data = params.get("data")
            name = data.get("name") if isinstance(data, dict) else None
            if "custom" not in self.channels and (
                    not isinstance(name, str) or f"custom:{name}" not in self.channels):
                return False
        elif channel not in self.channels:
            return False
        if not self.namespaces:
            return True
        namespace = params.get("namespace") or []
        return any(is_prefix(namespace, prefix)
                   and (self.depth is None or len(namespace) - len(prefix) <= self.depth)
                   for prefix in self.namespaces)


def parse_filter(body: object, what: str) -> Filter:
    """A subscription's filter from `channels` (required), `namespaces`, `depth`.
    Unknown channels and malformed fields are refused, saying what is accepted (the
    reference drops a malformed `namespaces` or `depth` silently: runlane says so)."""
    if not isinstance(body, dict):
        raise ProtocolInputError(f"{what} must be a JSON object with `channels`")
    channels = body.get("channels")
    if not isinstance(channels, list) or not channels:
        raise ProtocolInputError(f"{what}: `channels` is required and must be a non-empty "
                                 f"array of channel names ({CHANNELS_TEXT})")
    bad = [repr(c) if not isinstance(c, str) else c for c in channels if not is_channel(c)]
    if bad:
        raise ProtocolInputError(f"{what}: unsupported channels: {', '.join(bad[:5])}; "
                                 f"accepted: {CHANNELS_TEXT}")
    namespaces = body.get("namespaces")
    if namespaces is not None and not (
            isinstance(namespaces, list)
            and all(isinstance(ns, list) and all(isinstance(s, str) for s in ns)
                    for ns in namespaces)):
        raise ProtocolInputError(f"{what}: `namespaces` must be an array of namespaces, "
                                 "each an array of strings (e.g. [[\"agent\"]])")
    depth = body.get("depth")
    if depth is not None and (not isinstance(depth, int) or isinstance(depth, bool)
                              or depth < 0):
        raise ProtocolInputError(f"{what}: `depth` must be a non-negative integer")
    return Filter(frozenset(channels),
                  tuple(tuple(ns) for ns in namespaces) if namespaces else None, depth)


def parse_since(value: object, what: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProtocolInputError(f"{what}: `since` must be a non-negative integer (the "
                                 "`seq` of the last event received)")
    return value


def is_prefix(namespace: list[str] | tuple[str, ...], prefix: tuple[str, ...]) -> bool:
    """`prefix` starts `namespace`; a prefix segment without `:` also matches a segment
    with a task id (`agent` matches `agent:<task id>`), as on the reference."""
    if len(prefix) > len(namespace):
        return False
    for segment, candidate in zip(prefix, namespace, strict=False):
        if candidate == segment:
            continue
        if ":" in segment or candidate.split(":", 1)[0] != segment:
            return False
    return True


def graph_name_of(namespace: list[str]) -> str:
    return namespace[-1].split(":", 1)[0] if namespace else "root"


# ------------------------------------------------------------------ state shapes


_MESSAGE_TYPES = {"human": "human", "user": "human", "ai": "ai", "assistant": "ai",
                  "system": "system", "tool": "tool", "function": "function",
                  "remove": "remove"}
_BLOCK_TYPES = frozenset({
    "text", "reasoning", "tool_call", "tool_call_chunk", "invalid_tool_call",
    "server_tool_call", "server_tool_call_chunk", "server_tool_call_result", "image",
    "audio", "video", "file", "non_standard"})


def _block(value: object) -> JSONObject | None:
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return None
    if value["type"] in _BLOCK_TYPES:
        return value
    if value["type"] == "image_url":
        image = value.get("image_url")
        url = image if isinstance(image, str) else (
            image.get("url") if isinstance(image, dict) else None)
        return {"type": "image", "url": url} if isinstance(url, str) else None
    return {"type": "non_standard", "value": dict(value)}


def _content(content: object) -> object:
    if not isinstance(content, list):
        return content
    blocks: list[JSONObject] = []
    for entry in content:
        block = {"type": "text", "text": entry} if isinstance(entry, str) else _block(entry)
        if block is not None:
            blocks.append(block)
    return blocks or content


def _tool_calls(calls: list[Any]) -> tuple[list[JSONObject], list[JSONObject]]:
    valid: list[JSONObject] = []
    invalid: list[JSONObject] = []
    for call in calls:
        if not isinstance(call, dict):
            continue
        function: JSONObject = call["function"] if isinstance(call.get("function"), dict) \
            else {}
        name = call.get("name") if isinstance(call.get("name"), str) else function.get("name")
        args = call["args"] if "args" in call else function.get("arguments")
        if isinstance(args, str):
            try:
                args = json.loads(args) if args else {}
            except ValueError:
                entry = {"type": "invalid_tool_call", "name": name, "args": args,
                         "error": "Malformed args."}
                invalid.append({k: v for k, v in entry.items() if v is not None})
                continue
        if not isinstance(name, str):
            invalid.append({"type": "invalid_tool_call", "error": "Incomplete tool call."})
            continue
        entry = {"type": "tool_call", "name": name, "args": {} if args is None else args}
        if isinstance(call.get("id"), str):
            entry["id"] = call["id"]
        valid.append(entry)
    return valid, invalid


def _message(value: JSONObject) -> JSONObject:
    kind = _MESSAGE_TYPES[value["type"]]
    message: JSONObject = {"type": kind, "content": _content(value.get("content", ""))}
    for key in ("id", "name"):
        if isinstance(value.get(key), str):
            message[key] = value[key]
    if kind in ("ai", "human") and isinstance(value.get("example"), bool):
        message["example"] = value["example"]
    if isinstance(value.get("response_metadata"), dict) and value["response_metadata"]:
        message["response_metadata"] = value["response_metadata"]
    if kind == "tool":
        if isinstance(value.get("tool_call_id"), str):
            message["tool_call_id"] = value["tool_call_id"]
        if value.get("status") in ("success", "error"):
            message["status"] = value["status"]
        if "artifact" in value:
            message["artifact"] = value["artifact"]
    if kind == "ai":
        valid, invalid = _tool_calls(value.get("tool_calls") or [])
        invalid = [i for i in value.get("invalid_tool_calls") or [] if isinstance(i, dict)] \
            or invalid
        if valid:
            message["tool_calls"] = valid
        if invalid:
            message["invalid_tool_calls"] = invalid
    return message


def _is_message(value: object) -> bool:
    return isinstance(value, dict) and value.get("type") in _MESSAGE_TYPES


def state_payload(value: Any) -> Any:
    """State as the protocol shows it: messages in the protocol's compact shape
    (content blocks, no empty fields), `__interrupt__` left out (interrupts go to the
    `input` channel)."""
    if isinstance(value, list):
        return [_message(v) if _is_message(v) else state_payload(v) for v in value]
    if not isinstance(value, dict):
        return value
    return {key: ([_message(v) if _is_message(v) else v for v in entry]
                  if key == "messages" and isinstance(entry, list) else state_payload(entry))
            for key, entry in value.items() if key != "__interrupt__"}
