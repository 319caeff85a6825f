"""Helpers for the v2 thread streaming protocol tests (tests/compat/test_thread_stream_v2.py,
tests/test_v2_reconnect.py): raw SSE and WebSocket readers that check the wire format,
the protocol's filter rules written out independently (to compute what a filtered
stream must carry from an unfiltered one), and the reduction of events to their
deterministic content for frame-by-frame comparisons between servers.

The protocol, as the reference server (langgraph-api 0.16) serves it:
- `POST /threads/{id}/stream/events`, body `{channels, namespaces?, depth?, since?}`:
  SSE frames `event: <method>`, `data: <event JSON>`, `id: <seq>`; each event is
  `{type: "event", event_id, seq, method, params: {namespace, timestamp, data, node?}}`.
  The stream follows the thread across runs and does not end when a run does.
- `POST /threads/{id}/commands`, body `{id: int, method, params}`: answered
  `{type: "success", id, result, meta: {applied_through_seq}}` or
  `{type: "error", id, error, message}` (HTTP 200; 400 for a malformed envelope).
- a WebSocket on the events path: the same commands (plus `subscription.*`) as text
  frames, answered in band, events as text frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

ALL_CHANNELS = ["values", "updates", "messages", "tools", "custom", "lifecycle", "input",
                "tasks", "checkpoints"]
ROOT_END = ("completed", "failed")

Event = dict[str, Any]


# ------------------------------------------------------------------ reading events


def lifecycle_phase(event: Event) -> str | None:
    if event.get("method") != "lifecycle":
        return None
    data = event["params"].get("data") or {}
    return data.get("event") if isinstance(data, dict) else None


def is_root_end(event: Event, phases: tuple[str, ...] = ROOT_END) -> bool:
    """The root graph's terminal lifecycle event (a subgraph's does not end the run)."""
    return not event["params"].get("namespace") and lifecycle_phase(event) in phases


def root_ends(count: int = 1, phases: tuple[str, ...] = ROOT_END) -> Callable[[list[Event]], bool]:
    """A stop condition: `count` root terminal lifecycle events seen."""
    return lambda events: sum(is_root_end(e, phases) for e in events) >= count


def through_seq(seq: int) -> Callable[[list[Event]], bool]:
    """A stop condition: an event with this `seq` (or a later one) seen."""
    return lambda events: bool(events) and events[-1]["seq"] >= seq


def parse_frame(lines: list[str]) -> Event | None:
    """One SSE frame -> its event, checking that `event:` names the method and `id:`
    carries the seq (what the protocol's SSE framing says)."""
    fields: dict[str, str] = {}
    data: list[str] = []
    for line in lines:
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name:
            fields[name] = value
    if not data:
        return None
    event = json.loads("\n".join(data))
    assert event.get("type") == "event", f"not an event frame: {event}"
    assert fields.get("event") == event["method"], f"frame `event:` {fields} vs {event}"
    assert fields.get("id") == str(event["seq"]), f"frame `id:` {fields} vs seq {event['seq']}"
    return event


async def sse_events(response: httpx.Response) -> AsyncIterator[Event]:
    """The events of an SSE answer of the thread's event stream, as they arrive."""
    frame: list[str] = []
    async for line in response.aiter_lines():
        if line:
            frame.append(line)
            continue
        event = parse_frame(frame)
        frame = []
        if event is not None:
            yield event


async def read_sse(http: httpx.AsyncClient, thread_id: str, body: dict[str, Any], *,
                   until: Callable[[list[Event]], bool], timeout: float = 60,
                   headers: dict[str, str] | None = None,
                   opened: asyncio.Event | None = None) -> list[Event]:
    """Open the thread's event stream with `body` and read until `until(events)`;
    `opened` is set once the server has answered (the stream is connected)."""
    events: list[Event] = []

    async def read() -> None:
        async with http.stream("POST", f"/threads/{thread_id}/stream/events", json=body,
                               headers={"accept": "text/event-stream", **(headers or {})},
                               timeout=httpx.Timeout(timeout, read=None)) as response:
            if response.status_code != 200:
                raise AssertionError(f"stream/events answered {response.status_code}: "
                                     f"{(await response.aread()).decode()[:300]}")
            assert response.headers["content-type"].startswith("text/event-stream")
            if opened is not None:
                opened.set()
            async with contextlib.aclosing(sse_events(response)) as arriving:
                async for event in arriving:
                    events.append(event)
                    if until(events):
                        return
            raise AssertionError(f"the stream ended before the condition; got {brief(events)}")

    try:
        await asyncio.wait_for(read(), timeout)
    except TimeoutError:
        raise AssertionError(f"condition not met within {timeout}s; got {brief(events)}") from None
    return events


async def command(http: httpx.AsyncClient, thread_id: str, method: str,
                  params: dict[str, Any] | None = None, command_id: int = 1) -> dict[str, Any]:
    """A command over HTTP; its answer (success or error envelope)."""
    response = await http.post(f"/threads/{thread_id}/commands",
                               json={"id": command_id, "method": method, "params": params or {}})
    if response.status_code != 200:
        raise AssertionError(f"{method} answered {response.status_code}: {response.text[:300]}")
    return response.json()


def ws_url(base_url: str, thread_id: str) -> str:
    return re.sub(r"^http", "ws", base_url.rstrip("/")) + f"/threads/{thread_id}/stream/events"


class WsSession:
    """One WebSocket on the thread's events path: commands answered in band, events
    kept in arrival order."""

    def __init__(self, websocket: Any) -> None:
        self.ws = websocket
        self.events: list[Event] = []
        self.answers: dict[Any, dict[str, Any]] = {}
        self.next_id = 1

    async def _receive(self) -> None:
        message = json.loads(await self.ws.recv())
        if message.get("type") == "event":
            self.events.append(message)
        else:
            self.answers[message.get("id")] = message

    async def send(self, method: str, params: dict[str, Any] | None = None,
                   timeout: float = 30) -> dict[str, Any]:
        command_id = self.next_id
        self.next_id += 1
        await self.ws.send(json.dumps({"id": command_id, "method": method,
                                       "params": params or {}}))
        return await self.answer(command_id, timeout)

    async def answer(self, command_id: Any, timeout: float = 30) -> dict[str, Any]:
        async def wait() -> dict[str, Any]:
            while command_id not in self.answers:
                await self._receive()
            return self.answers.pop(command_id)

        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"no answer to command {command_id} within {timeout}s") from None

    async def read_until(self, until: Callable[[list[Event]], bool],
                         timeout: float = 60) -> list[Event]:
        async def wait() -> None:
            while not until(self.events):
                await self._receive()

        try:
            await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"condition not met within {timeout}s; got "
                                 f"{brief(self.events)}") from None
        return self.events


def brief(events: list[Event]) -> list[tuple[Any, ...]]:
    """Events as (seq, method, namespace, what) for failure messages."""
    out = []
    for e in events[-40:]:
        data = e["params"].get("data")
        what = data.get("event") if isinstance(data, dict) else None
        out.append((e["seq"], e["method"], e["params"].get("namespace"), what))
    return out


# ------------------------------------------------------------------ the protocol's filter


def channel_of(event: Event) -> str:
    method = event["method"]
    if method == "input.requested":
        return "input"
    if method == "custom":
        data = event["params"].get("data")
        name = data.get("name") if isinstance(data, dict) else None
        return f"custom:{name}" if name else "custom"
    return method


def segment_matches(candidate: str, prefix: str) -> bool:
    """A namespace segment (`researcher:<task id>`) matches its prefix segment exactly,
    or by name when the prefix names no task (`researcher`)."""
    return candidate == prefix or (":" not in prefix and candidate.split(":", 1)[0] == prefix)


def in_namespaces(namespace: list[str], prefixes: list[list[str]] | None,
                  depth: int | None) -> bool:
    if not prefixes:
        return True
    for prefix in prefixes:
        if len(prefix) > len(namespace):
            continue
        if all(segment_matches(c, p) for c, p in zip(namespace, prefix, strict=False)) and (
                depth is None or len(namespace) - len(prefix) <= depth):
            return True
    return False


def selected(event: Event, channels: list[str], namespaces: list[list[str]] | None = None,
             depth: int | None = None) -> bool:
    """Whether a stream subscribed with this filter carries `event`."""
    channel = channel_of(event)
    if channel not in channels and not (channel.startswith("custom:") and "custom" in channels):
        return False
    return in_namespaces(event["params"].get("namespace") or [], namespaces, depth)


# ------------------------------------------------------------------ frames


UUIDISH = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|"
                     r"[0-9a-f]{32}|lc_run--[0-9a-f-]+|run-[0-9a-f-]+")
VOLATILE = {"id", "timestamp", "created_at", "updated_at", "ts", "run_id", "thread_id",
            "interrupt_id", "trigger_call_id", "checkpoint_id", "parent_id", "usage",
            "response_metadata", "additional_kwargs", "usage_metadata", "lc_versions"}


def _namespace(namespace: list[str]) -> list[str]:
    # `researcher:<task id>` -> `researcher` (task ids differ per run)
    return [segment.split(":", 1)[0] for segment in namespace]


def _reduce(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reduce(v) for k, v in sorted(value.items()) if k not in VOLATILE}
    if isinstance(value, list):
        return [_reduce(v) for v in value]
    if isinstance(value, str):
        return UUIDISH.sub("<id>", value)
    return value


def frame(event: Event) -> dict[str, Any]:
    """An event's deterministic content: method, namespace by name, node, and its data
    without ids, timestamps, usage or model metadata."""
    params = event["params"]
    out: dict[str, Any] = {"method": event["method"],
                           "namespace": _namespace(params.get("namespace") or [])}
    if params.get("node") is not None:
        out["node"] = params["node"]
    out["data"] = _reduce(params.get("data"))
    return out


def frames(events: list[Event]) -> list[dict[str, Any]]:
    """The deterministic content of a run's events in order, with the envelope checked:
    seqs strictly increasing, event ids unique."""
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs)), f"seqs not strictly increasing: {seqs}"
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids)), "an event_id repeats"
    return [frame(e) for e in events]


def frame_diff(expected: list[dict[str, Any]], got: list[dict[str, Any]]) -> str:
    """'' when equal, else where the two first differ (for an assertion message)."""
    if expected == got:
        return ""
    for index, (a, b) in enumerate(zip(expected, got, strict=False)):
        if a != b:
            return (f"frame {index} differs:\n  expected {json.dumps(a)[:600]}\n"
                    f"  got      {json.dumps(b)[:600]}")
    longer = expected if len(expected) > len(got) else got
    extra = json.dumps(longer[min(len(expected), len(got))])[:600]
    return f"lengths differ: expected {len(expected)}, got {len(got)}; first extra: {extra}"
