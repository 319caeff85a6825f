"""One run's protocol events, made from its event log.

A run started by the v2 protocol publishes langgraph's own protocol events
(executor/execution.py `_stream_protocol`): `<method>|<namespace...>` frames whose data
is the event's params. `RunEvents` turns them into the wire's events as the reference
does (langgraph-api's EventStreamingSession): the root `lifecycle` (running at the
start, the run's end at the end) is the server's, subgraphs' lifecycle is forwarded
once per namespace, interrupts in `values`/`updates` become `input.requested`, custom
channels become `custom` events with a name, a finished tool's output is also a
`tool` message, `checkpoints` are sent once each.

It is deterministic: the same log gives the same events in the same order with the
same `event_id`s, on any worker, whenever it is read. That is what makes a thread's
`seq` (protocol_wire.RUN_SPAN) the same for every reader, and `since` exact.
"""

from __future__ import annotations

import json
from typing import Any

from runlane.serde import JSONObject
from runlane.service.protocol_wire import graph_name_of, is_prefix, state_payload

Namespace = list[str]


def _key(namespace: Namespace) -> str:
    return "\0".join(namespace)


class RunEvents:
    """Feed a run's log frames in order (`frame`), then its end (`finish`); each call
    returns the protocol events it produced, without `seq` (the stream numbers them)."""

    def __init__(self, run_id: str, graph_name: str) -> None:
        self.run_id = run_id
        self.graph_name = graph_name
        self._status: dict[str, str] = {}  # namespace key -> started|completed|...
        self._names: dict[str, tuple[Namespace, str]] = {}  # key -> (namespace, graph)
        self._announced: set[str] = set()
        self._interrupts: set[str] = set()
        self._checkpoints: set[tuple[str, str]] = set()
        self.ended = False  # the root's terminal lifecycle was sent
        self.interrupted = False  # the run paused on an interrupt
        self._frame_id = 0
        self._part = 0
        self._out: list[JSONObject] = []

    # ----------------------------------------------------------------- wire

    def _emit(self, method: str, namespace: Namespace, data: Any, *,
              node: str | None = None, timestamp: int | None = None,
              event_id: str | None = None) -> None:
        params: JSONObject = {"namespace": namespace, "timestamp": timestamp or 0,
                              "data": data}
        if node is not None:
            params["node"] = node
        if event_id is None:
            # The log frame it came from, and its place among that frame's events.
            event_id = f"{self.run_id}:{self._frame_id}"
            if self._part:
                event_id += f".{self._part}"
            self._part += 1
        # `seq` is the stream's to number (its place here: the reference's key order).
        self._out.append({"type": "event", "event_id": event_id, "seq": 0, "method": method,
                          "params": params})

    def _take(self) -> list[JSONObject]:
        out, self._out = self._out, []
        return out

    # --------------------------------------------------------------- intake

    def start(self, timestamp: int) -> list[JSONObject]:
        """The run's first frame (its `metadata`): the root is running."""
        self._set([], "running", self.graph_name)
        self._emit("lifecycle", [], {"event": "running", "graph_name": self.graph_name},
                   timestamp=timestamp, event_id=f"{self.run_id}:lifecycle:running")
        return self._take()

    def frame(self, frame_id: int, name: str, data: Any, timestamp: int) -> list[JSONObject]:
        self._frame_id, self._part = frame_id, 0
        if name == "error":
            message = data.get("message") if isinstance(data, dict) else None
            self._terminal("failed", timestamp,
                           error=message if isinstance(message, str) else str(data))
            return self._take()
        method, *segments = name.split("|")
        if not isinstance(data, dict) or "data" not in data:
            return []  # not a protocol event (a run of the other protocol)
        namespace: Namespace = list(data.get("namespace") or segments)
        given = data.get("timestamp")
        stamp = given if isinstance(given, int) else timestamp
        self._dispatch(method, namespace, data, stamp)
        return self._take()

    def _dispatch(self, method: str, namespace: Namespace,  # noqa: C901 - one per method
                  params: JSONObject, stamp: int) -> None:
        payload = params.get("data")
        node = params.get("node") if isinstance(params.get("node"), str) else None
        if method == "lifecycle":
            self._lifecycle(namespace, payload, stamp)
            return
        if method == "checkpoints":
            if isinstance(payload, dict) and isinstance(payload.get("id"), str):
                seen = (_key(namespace), payload["id"])
                if seen not in self._checkpoints:
                    self._checkpoints.add(seen)
                    self._emit("checkpoints", namespace, payload, timestamp=stamp,
                               event_id=f"{self.run_id}:checkpoint:{seen[0]}:{seen[1]}")
            return
        if namespace:
            self._register(namespace)
        if method == "values":
            requests = _interrupt_requests(params.get("interrupts"))
            requests += _interrupt_requests(
                payload.get("__interrupt__") if isinstance(payload, dict) else None)
            self._input_requested(namespace, requests, stamp)
            payload = state_payload(payload)
            if not isinstance(payload, dict) or payload:
                self._emit("values", namespace, payload, timestamp=stamp)
            return
        if method == "updates":
            # Forwarded as langgraph made it ({node: values} from its updates
            # transformer), as the reference does: the producing node only when the
            # event names it (params.node, or a `node` key of the payload).
            if node is None and isinstance(payload, dict) and isinstance(payload.get("node"), str):
                node = payload["node"] or None
            if node == "__interrupt__":
                values = payload.get("values") if isinstance(payload, dict) else None
                self._input_requested(namespace, _interrupt_requests(values), stamp)
                return
            payload = state_payload(payload)
            if not isinstance(payload, dict) or payload:
                self._emit("updates", namespace, payload, node=node, timestamp=stamp)
            if node:
                self._child_completed(namespace, node, stamp)
            return
        if method.startswith("custom:"):
            self._emit("custom", namespace, {"name": method[len("custom:"):],
                                             "payload": payload}, timestamp=stamp)
            return
        if method == "tools" and isinstance(payload, dict):
            payload = dict(payload)
            extra = payload.pop("__node", None)
            node = node or (extra if isinstance(extra, str) and extra else None)
            self._emit("tools", namespace, payload, node=node, timestamp=stamp)
            self._tool_message(namespace, payload, stamp)
            return
        if method in ("messages", "tasks", "custom", "tools"):
            self._emit(method, namespace, payload, node=node, timestamp=stamp)

    # ------------------------------------------------------------ lifecycle

    def _set(self, namespace: Namespace, status: str, graph_name: str | None = None) -> None:
        key = _key(namespace)
        known = self._names.get(key)
        name = graph_name or (known[1] if known else None) or (
            self.graph_name if not namespace else graph_name_of(namespace))
        self._names[key] = (list(namespace), name)
        self._status[key] = status

    def _register(self, namespace: Namespace) -> None:
        """Every prefix of a namespace events came from is open (no wire event: the
        announcements are langgraph's own `lifecycle` `started`)."""
        for length in range(1, len(namespace) + 1):
            partial = namespace[:length]
            if self._status.get(_key(partial)) != "started":
                self._set(partial, "started")

    def _lifecycle(self, namespace: Namespace, payload: Any, stamp: int) -> None:
        if not isinstance(payload, dict) or not isinstance(payload.get("event"), str):
            if namespace:
                self._register(namespace)
            return
        inner = payload.get("namespace")
        if (isinstance(inner, list) and all(isinstance(s, str) for s in inner)
                and len(inner) > len(namespace)):
            namespace = list(inner)
        if not namespace:
            return  # the root's lifecycle is the server's (start, _terminal)
        event = payload["event"]
        graph = payload.get("graph_name") if isinstance(payload.get("graph_name"), str) \
            else None
        if event == "started":
            key = _key(namespace)
            if key not in self._announced:
                self._announced.add(key)
                self._set(namespace, "started", graph)
                self._emit("lifecycle", namespace, payload, timestamp=stamp)
            return
        if event in ("running", "completed", "failed", "interrupted"):
            error = payload.get("error") if isinstance(payload.get("error"), str) else None
            cause = payload.get("cause") if isinstance(payload.get("cause"), dict) else None
            self._namespace_status(namespace, event, stamp, graph, error=error, cause=cause)
            return
        self._register(namespace)

    def _namespace_status(self, namespace: Namespace, status: str, stamp: int,
                          graph: str | None = None, *, error: str | None = None,
                          cause: JSONObject | None = None) -> None:
        key = _key(namespace)
        if namespace and key not in self._status:
            self._register(namespace)
        known = self._names.get(key)
        name = graph or (known[1] if known else None) or (
            self.graph_name if not namespace else graph_name_of(namespace))
        if (self._status.get(key) == status and known and known[1] == name
                and error is None and cause is None):
            return
        self._set(namespace, status, name)
        data: JSONObject = {"event": status, "graph_name": name}
        if error is not None:
            data["error"] = error
        if cause is not None:
            data["cause"] = cause
        self._emit("lifecycle", namespace, data, timestamp=stamp,
                   event_id=f"{self.run_id}:lifecycle:{key}:{status}")

    def _child_completed(self, parent: Namespace, node: str, stamp: int) -> None:
        """An update from `node` at `parent`: its subgraph (`node:<task id>`) is done
        (the oldest still open of that name)."""
        if node.startswith("__"):
            return
        for key, (namespace, name) in list(self._names.items()):
            if (len(namespace) == len(parent) + 1 and namespace[:-1] == parent
                    and self._status.get(key) == "started"
                    and (namespace[-1] == node or namespace[-1].startswith(f"{node}:"))):
                self._namespace_status(namespace, "completed", stamp, name)
                return

    def _input_requested(self, namespace: Namespace, requests: list[JSONObject],
                         stamp: int) -> None:
        emitted = False
        for request in requests:
            interrupt_id = request["interrupt_id"]
            if interrupt_id in self._interrupts:
                continue
            self._interrupts.add(interrupt_id)
            self._emit("input.requested", namespace, request, timestamp=stamp,
                       event_id=f"{self.run_id}:input:{_key(namespace)}:{interrupt_id}")
            emitted = True
        if emitted:
            # The run stopped for an answer: the root is interrupted at once (as the
            # reference: clients show the question without waiting for the run's end).
            self.interrupted = True
            self._namespace_status([], "interrupted", stamp, self.graph_name)
            self.ended = True

    def _tool_message(self, namespace: Namespace, payload: JSONObject, stamp: int) -> None:
        """A finished tool's output, also as a `tool` message on `messages`."""
        output = payload.get("output")
        if payload.get("event") != "tool-finished" or not isinstance(output, dict):
            return
        call_id = payload.get("tool_call_id")
        if not isinstance(call_id, str):
            call_id = output.get("tool_call_id") if isinstance(
                output.get("tool_call_id"), str) else None
        message_id = output.get("id") if isinstance(output.get("id"), str) and output["id"] \
            else (f"tool-{call_id}" if call_id else None)
        if message_id is None:
            return
        content = output.get("content")
        if not isinstance(content, str):
            content = "" if content is None else json.dumps(content, default=str)
        start: JSONObject = {"event": "message-start", "role": "tool", "id": message_id}
        if call_id is not None:
            start["tool_call_id"] = call_id
        where = [*namespace, f"tools:{call_id}"] if call_id is not None else namespace
        for data in (start,
                     {"event": "content-block-start", "index": 0,
                      "content": {"type": "text", "text": ""}},
                     {"event": "content-block-delta", "index": 0,
                      "content": {"type": "text", "text": content}},
                     {"event": "content-block-finish", "index": 0,
                      "content": {"type": "text", "text": content}},
                     {"event": "message-finish", "metadata": {}}):
            self._emit("messages", where, data, timestamp=stamp)

    def _terminal(self, status: str, stamp: int, *, error: str | None = None) -> None:
        if self.ended:
            return
        self.ended = True
        # Every subgraph still open is completed first, the deepest first.
        still_open = sorted(
            (namespace for key, (namespace, _) in self._names.items()
             if namespace and self._status.get(key) == "started"),
            key=len, reverse=True)
        for namespace in still_open:
            if self._status.get(_key(namespace)) == "started":
                self._namespace_status(namespace, "completed", stamp)
        self._namespace_status([], status, stamp, self.graph_name, error=error)

    def tree(self, namespace: Namespace) -> JSONObject:
        key = _key(namespace)
        known = self._names.get(key)
        name = known[1] if known else (self.graph_name if not namespace
                                       else graph_name_of(namespace))
        result: JSONObject = {"namespace": namespace,
                              "status": self._status.get(key, "started"), "graph_name": name}
        children = sorted(ns for ns, _ in self._names.values()
                          if len(ns) == len(namespace) + 1 and is_prefix(ns, tuple(namespace)))
        if children:
            result["children"] = [self.tree(child) for child in children]
        return result

    def finish(self, run_status: str, timestamp: int, *,
               cancel_reason: str | None = None) -> list[JSONObject]:
        """The run ended with `run_status` (its record's): the root's last lifecycle
        event, unless one was sent (an interrupt, an error frame)."""
        if run_status == "success":
            self._terminal("completed", timestamp)
        elif run_status in ("error", "timeout"):
            self._terminal("failed", timestamp, error=f"run ended with status {run_status}")
        elif run_status == "interrupted":
            # A cancel: interrupted, with why (the run's cancel reason).
            self._terminal("interrupted", timestamp,
                           error=f"run cancelled ({cancel_reason or 'cancel'})")
        return self._take()


def _interrupt_requests(value: Any) -> list[JSONObject]:
    """Interrupts (langgraph's `{id, value}`) as `input.requested` data."""
    if isinstance(value, dict) and isinstance(value.get("__interrupt__"), list):
        value = value["__interrupt__"]
    requests: list[JSONObject] = []
    for entry in value if isinstance(value, list) else ():
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            request: JSONObject = {"interrupt_id": entry["id"]}
            if "value" in entry:
                request["payload"] = entry["value"]
            requests.append(request)
    return requests


def tree(events: RunEvents | None) -> JSONObject:
    """agent.getTree: the run's namespaces and their statuses, nested."""
    if events is None:
        return {"namespace": [], "status": "started", "graph_name": "root"}
    return events.tree([])
