"""The record of a check: every request and its answer, with monotonic timestamps.

An `Exchange` is one request and what came back (a status code and a compact body,
or a transport error, or the events of an SSE stream). A `RunRecord` is what the
checker knows about one run it created, including its final state, fetched at the
end of its scenario. Claims are the few facts a scenario states so the invariants
can judge them later (the thread's history before a rollback, the segments of a
dropped-and-rejoined stream, the spans of the `timed` graph).

Everything here is plain data: the invariants are pure functions of a `History`,
so they can be tested on hand-made histories.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from collections import defaultdict
from typing import Any

import httpx

ACTIVE = frozenset({"pending", "running"})
FINISHED = frozenset({"success", "error", "timeout"})  # terminal, not by a cancel
TERMINAL = FINISHED | {"interrupted"}
REMOVED = "removed"  # GET answers 404: rolled back (or deleted)
GONE = TERMINAL | {REMOVED}

# Fields of a run body worth keeping in the record (the rest is config noise).
RUN_KEYS = (
    "run_id", "thread_id", "status", "cancel_action", "cancel_reason", "stop_reason",
    "multitask_strategy", "error", "created_at", "updated_at", "cancel_outcome", "detail",
)
MAX_TEXT = 2000


@dataclasses.dataclass
class Exchange:
    """One request and its answer."""

    seq: int
    scenario: str
    kind: str  # thread create cancel get poll final list join stream bulk_cancel state history ...
    method: str
    path: str
    params: dict[str, str] | None = None
    body: Any = None
    headers: dict[str, str] | None = None
    thread_id: str | None = None
    run_id: str | None = None  # the run the request is about (for create: the run it made)
    run_ids: list[str] | None = None  # bulk cancel
    t_sent: float = 0.0
    t_done: float | None = None
    status: int | None = None
    answer: Any = None
    error: str | None = None  # transport error (no answer)
    timed_out: bool = False  # no answer within the checker's bound
    events: list[dict[str, Any]] | None = None  # SSE events received, in order
    dropped: bool = False  # the checker closed the stream on purpose
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    worker: int | None = None  # which of the server URLs answered (several: round robin)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def accepted(self) -> bool:
        """A cancel the server accepted (the contract's 202 / 200)."""
        return self.status in (200, 202)

    def describe(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in (self.params or {}).items())
        target = self.path + (f"?{query}" if query else "")
        if self.worker is not None:
            target = f"[w{self.worker}] {target}"
        if self.headers and self.headers.get("Last-Event-ID"):
            target += f" [Last-Event-ID: {self.headers['Last-Event-ID']}]"
        return f"{self.method} {target}"

    def outcome(self) -> str:
        if self.timed_out:
            return "no answer (timeout)"
        if self.error:
            return f"error: {self.error}"
        return str(self.status)


@dataclasses.dataclass
class RunRecord:
    run_id: str
    thread_id: str
    scenario: str
    graph: str
    input: Any
    strategy: str  # the multitask_strategy it was created with (enqueue if not given)
    created_seq: int
    t_created: float  # when the create answer arrived
    nominal: float = 0.0  # seconds it would run if nobody cancelled it
    final_status: str | None = None  # a terminal status, "removed", or "active" if never terminal
    final: Any = None  # compact body of the final fetch
    t_final: float | None = None
    settle_from: float | None = None  # when the checker began waiting for its end
    notes: list[str] = dataclasses.field(default_factory=list)
    webhook: str | None = None  # the URL it was created with (--webhooks)


@dataclasses.dataclass
class RollbackClaim:
    """`pre` is the thread (values, checkpoint ids) before the run could have changed it.
    If the run ends removed by a rollback, every checkpoint in `pre` must still exist,
    no checkpoint of the run may remain, and (if `compare_values`) the values must be
    `pre`'s again. The post-snapshot is `History.snapshots[thread_id]`."""

    thread_id: str
    run_id: str
    scenario: str
    pre: dict[str, Any]
    compare_values: bool


@dataclasses.dataclass
class StreamClaim:
    """A run streamed, dropped and rejoined with Last-Event-ID (or cut by a fault and
    resumed): `segments` are the seqs of the stream exchanges, in order; `replay` the
    seq of a join without Last-Event-ID once the run was over (its whole event log).
    `ticks`: the sleepy graph with stream_mode=custom, one {"tick": k} per step."""

    thread_id: str
    run_id: str
    scenario: str
    steps: int
    segments: list[int]
    replay: int | None = None
    ticks: bool = True


@dataclasses.dataclass
class SpanClaim:
    """The `timed` graph's spans on one thread: when each run's node executed."""

    thread_id: str
    scenario: str
    spans: list[dict[str, Any]]


@dataclasses.dataclass
class Observation:
    run_id: str
    status: str
    t_sent: float
    t_done: float
    seq: int
    kind: str = "get"  # the exchange's kind: get/poll/final/list/create/cancel


class History:
    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        self.settings: dict[str, Any] = settings or {}
        self.exchanges: list[Exchange] = []
        self.runs: dict[str, RunRecord] = {}
        self.rollback_claims: list[RollbackClaim] = []
        self.stream_claims: list[StreamClaim] = []
        self.span_claims: list[SpanClaim] = []
        self.snapshots: dict[str, dict[str, Any]] = {}  # thread id -> final snapshot
        self.scenarios: list[dict[str, Any]] = []
        self.chaos_events: list[dict[str, Any]] = []
        self.webhooks: list[dict[str, Any]] = []  # deliveries the receiver got (--webhooks)
        self._by_run: dict[str, list[Exchange]] = defaultdict(list)
        self._by_thread: dict[str, list[Exchange]] = defaultdict(list)

    @property
    def chaos(self) -> bool:
        return bool(self.settings.get("chaos"))

    def fault_windows(self) -> list[tuple[float, float]]:
        """(start, end) of every fault injected: from the fault to every worker ready."""
        return [(e["t"], e["t_end"]) for e in self.chaos_events
                if e.get("action") == "window" and e.get("t_end") is not None]

    def in_fault(self, ex: Exchange, slack: float = 10.0) -> bool:
        """The exchange overlapped a fault's window (plus `slack` after it: pools
        reconnect on their next use, after the service answers again)."""
        done = ex.t_done if ex.t_done is not None else ex.t_sent
        return any(ex.t_sent <= end + slack and done >= start
                   for start, end in self.fault_windows())

    # ----------------------------------------------------------------- recording

    def new_exchange(self, **fields: Any) -> Exchange:
        ex = Exchange(seq=len(self.exchanges), **fields)
        self.exchanges.append(ex)
        if ex.thread_id:
            self._by_thread[ex.thread_id].append(ex)
        if ex.run_id:
            self._by_run[ex.run_id].append(ex)
        for run_id in ex.run_ids or ():
            if run_id != ex.run_id:
                self._by_run[run_id].append(ex)
        return ex

    def attach(self, ex: Exchange, run_id: str) -> None:
        """Tie an exchange to a run learned from its answer (create, stream)."""
        if ex.run_id != run_id:
            ex.run_id = run_id
            self._by_run[run_id].append(ex)

    def add(self, ex: Exchange) -> Exchange:
        """Add a ready-made exchange (hand-made histories); its seq is reassigned."""
        ex.seq = len(self.exchanges)
        self.exchanges.append(ex)
        if ex.thread_id:
            self._by_thread[ex.thread_id].append(ex)
        if ex.run_id:
            self._by_run[ex.run_id].append(ex)
        for run_id in ex.run_ids or ():
            if run_id != ex.run_id:
                self._by_run[run_id].append(ex)
        return ex

    # ------------------------------------------------------------------- reading

    def for_run(self, run_id: str) -> list[Exchange]:
        return sorted(self._by_run.get(run_id, ()), key=lambda e: e.seq)

    def on_thread(self, thread_id: str) -> list[Exchange]:
        """The exchanges about one thread, in order (an index: long soaks have many)."""
        return list(self._by_thread.get(thread_id, ()))

    def of_kind(self, *kinds: str) -> list[Exchange]:
        return [e for e in self.exchanges if e.kind in kinds]

    def runs_on(self, thread_id: str) -> list[RunRecord]:
        return sorted((r for r in self.runs.values() if r.thread_id == thread_id),
                      key=lambda r: r.created_seq)

    # Over the complexity ceiling: one case per kind of exchange.
    def observations(self, run_id: str) -> list[Observation]:  # noqa: C901
        """Every status of the run the server told us, with when we asked and heard."""
        found: list[Observation] = []
        for ex in self._by_run.get(run_id, ()):
            if ex.t_done is None or ex.status is None:
                continue
            if ex.kind in ("get", "poll", "final") and ex.run_id == run_id:
                if ex.status == 404:
                    found.append(Observation(run_id, REMOVED, ex.t_sent, ex.t_done, ex.seq,
                                             ex.kind))
                elif ex.status == 200 and isinstance(ex.answer, dict) and ex.answer.get("status"):
                    found.append(Observation(run_id, ex.answer["status"], ex.t_sent, ex.t_done,
                                             ex.seq, ex.kind))
            elif ex.kind == "create" and ex.ok and isinstance(ex.answer, dict):
                if ex.answer.get("status"):
                    found.append(Observation(run_id, ex.answer["status"], ex.t_sent, ex.t_done,
                                             ex.seq, ex.kind))
            elif ex.kind == "cancel" and ex.run_id == run_id and isinstance(ex.answer, dict):
                status = ex.answer.get("status")
                if isinstance(status, str) and (status in TERMINAL or status in ACTIVE):
                    found.append(Observation(run_id, status, ex.t_sent, ex.t_done, ex.seq,
                                             ex.kind))
        rec = self.runs.get(run_id)
        if rec is not None:
            for ex in self.on_thread(rec.thread_id):
                if ex.kind != "list" or ex.t_done is None:
                    continue
                if not isinstance(ex.answer, list):
                    continue
                for run in ex.answer:
                    if isinstance(run, dict) and run.get("run_id") == run_id and run.get("status"):
                        found.append(Observation(run_id, run["status"], ex.t_sent, ex.t_done,
                                                 ex.seq, ex.kind))
        return sorted(found, key=lambda o: (o.t_done, o.seq))

    # ------------------------------------------------------------------ dumping

    def to_json(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "scenarios": self.scenarios,
            "chaos_events": self.chaos_events,
            "webhooks": self.webhooks,
            "runs": {k: dataclasses.asdict(v) for k, v in self.runs.items()},
            "rollback_claims": [dataclasses.asdict(c) for c in self.rollback_claims],
            "stream_claims": [dataclasses.asdict(c) for c in self.stream_claims],
            "span_claims": [dataclasses.asdict(c) for c in self.span_claims],
            "snapshots": self.snapshots,
            "exchanges": [dataclasses.asdict(e) for e in self.exchanges],
        }


# ---------------------------------------------------------------------- bodies


def compact_run(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in RUN_KEYS if k in body}


def compact(kind: str, body: Any) -> Any:
    """Keep what the invariants and a person reading a violation need."""
    if kind == "history" and isinstance(body, list):
        return [checkpoint_ref(c) for c in body if isinstance(c, dict)]
    if kind == "state" and isinstance(body, dict):
        return {"values": body.get("values"), "checkpoint_id": _checkpoint_id(body),
                "next": body.get("next")}
    if isinstance(body, dict):
        if "run_id" in body and "status" in body:
            kept = compact_run(body)
            if isinstance(body.get("run"), dict):
                kept["run"] = compact_run(body["run"])
            return kept
        if "kwargs" in body:
            body = {k: v for k, v in body.items() if k != "kwargs"}
        return _bounded(body)
    if isinstance(body, list):
        if all(isinstance(x, dict) and "run_id" in x for x in body):
            return [compact_run(x) for x in body]
        return _bounded(body)
    return _bounded(body)


def _bounded(value: Any) -> Any:
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) <= MAX_TEXT:
        return value
    return text[:MAX_TEXT] + "...(truncated)"


def _checkpoint_id(state: dict[str, Any]) -> str | None:
    if state.get("checkpoint_id"):
        return state["checkpoint_id"]
    checkpoint = state.get("checkpoint") or {}
    return checkpoint.get("checkpoint_id") if isinstance(checkpoint, dict) else None


def checkpoint_ref(state: dict[str, Any]) -> dict[str, Any]:
    metadata = state.get("metadata") or {}
    return {
        "checkpoint_id": _checkpoint_id(state),
        "run_id": metadata.get("run_id") if isinstance(metadata, dict) else None,
        "step": metadata.get("step") if isinstance(metadata, dict) else None,
        "created_at": state.get("created_at"),
    }


def parse_body(resp: httpx.Response) -> Any:
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        return resp.text[:MAX_TEXT]


# ------------------------------------------------------------------------- SSE


def parse_event_id(value: str | None) -> tuple[int, ...] | None:
    """Event ids as comparable tuples: `7` -> (7,), `1795577562836-0` -> (1795577562836, 0)."""
    if value is None:
        return None
    parts = re.findall(r"\d+", value)
    return tuple(int(p) for p in parts) if parts else None


class SSEParser:
    """Incremental text/event-stream parser: feed lines, get complete events."""

    def __init__(self) -> None:
        self._fields: dict[str, str] = {}
        self._data: list[str] = []

    def line(self, line: str) -> dict[str, Any] | None:
        if line == "":
            if not self._fields and not self._data:
                return None
            event = {"event": self._fields.get("event", "message"), "id": self._fields.get("id"),
                     "data": _decode("\n".join(self._data))}
            self._fields, self._data = {}, []
            return event
        if line.startswith(":"):
            return None  # comment (heartbeat)
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name in ("event", "id", "retry"):
            self._fields[name] = value
        return None


def _decode(data: str) -> Any:
    try:
        value = json.loads(data)
    except ValueError:
        return data[:MAX_TEXT]
    return _bounded(value)


# -------------------------------------------------------------------- recorder


class Clock:
    """Monotonic seconds since the check started."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self) -> float:
        return round(time.monotonic() - self.t0, 6)


class Recorder:
    """Sends requests with httpx and records each one in the history.

    With several server URLs (the workers of one deployment), each request goes to
    the next one in turn, as behind a load balancer; a request whose connection is
    refused (a worker killed or restarting) is sent to the next worker instead."""

    def __init__(self, client: httpx.AsyncClient, history: History, clock: Clock,
                 timeout: float, urls: list[str]) -> None:
        self.client = client
        self.history = history
        self.clock = clock
        self.timeout = timeout
        self.urls = [u.rstrip("/") for u in urls]
        self._next = 0

    def _targets(self) -> list[int]:
        first = self._next % len(self.urls)
        self._next += 1
        return [(first + i) % len(self.urls) for i in range(len(self.urls))]

    async def call(
        self, scenario: str, kind: str, method: str, path: str, *,
        params: dict[str, str] | None = None, json_body: Any = None,
        thread_id: str | None = None, run_id: str | None = None,
        run_ids: list[str] | None = None, extra: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Exchange:
        ex = self.history.new_exchange(
            scenario=scenario, kind=kind, method=method, path=path, params=params,
            body=json_body, thread_id=thread_id, run_id=run_id, run_ids=run_ids,
            extra=dict(extra or {}),
        )
        bound = timeout or self.timeout
        ex.t_sent = self.clock()
        try:
            async with asyncio.timeout(bound):
                targets = self._targets()
                for attempt, worker in enumerate(targets):
                    ex.worker = worker if len(self.urls) > 1 else None
                    try:
                        resp = await self.client.request(
                            method, self.urls[worker] + path, params=params, json=json_body,
                            timeout=bound + 5,
                        )
                        break
                    except httpx.ConnectError:
                        if attempt == len(targets) - 1:
                            raise
            ex.status = resp.status_code
            ex.answer = compact(kind, parse_body(resp))
        except TimeoutError:
            ex.timed_out = True
            ex.error = f"no answer within {bound:g}s"
        except httpx.TimeoutException as exc:
            ex.timed_out = True
            ex.error = f"{type(exc).__name__}: no answer within {bound:g}s"
        except httpx.HTTPError as exc:
            ex.error = f"{type(exc).__name__}: {exc}"[:300]
        ex.t_done = self.clock()
        return ex

    async def stream(
        self, scenario: str, kind: str, method: str, path: str, *,
        json_body: Any = None, headers: dict[str, str] | None = None,
        thread_id: str | None = None, run_id: str | None = None,
        max_events: int | None = None, timeout: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Exchange:
        """An SSE request: read events until the server ends the stream, or drop the
        connection after `max_events` events (what a client that goes away does)."""
        ex = self.history.new_exchange(
            scenario=scenario, kind=kind, method=method, path=path, body=json_body,
            headers=headers, thread_id=thread_id, run_id=run_id, extra=dict(extra or {}),
        )
        ex.events = []
        bound = timeout or self.timeout
        ex.t_sent = self.clock()
        worker = self._targets()[0]
        ex.worker = worker if len(self.urls) > 1 else None
        try:
            async with asyncio.timeout(bound):
                async with self.client.stream(method, self.urls[worker] + path,
                                              json=json_body, headers=headers,
                                              timeout=bound + 5) as resp:
                    ex.status = resp.status_code
                    location = resp.headers.get("content-location")
                    if location:
                        ex.extra["content_location"] = location
                    if resp.status_code != 200:
                        await resp.aread()
                        ex.answer = compact(kind, parse_body(resp))
                    else:
                        parser = SSEParser()
                        async for line in resp.aiter_lines():
                            event = parser.line(line.rstrip("\r"))
                            if event is None:
                                continue
                            event["t"] = self.clock()
                            ex.events.append(event)
                            if max_events is not None and len(ex.events) >= max_events:
                                ex.dropped = True
                                break
        except TimeoutError:
            ex.timed_out = True
            ex.error = f"the stream did not end within {bound:g}s"
        except httpx.TimeoutException as exc:
            ex.timed_out = True
            ex.error = f"{type(exc).__name__}: no data within {bound:g}s"
        except httpx.HTTPError as exc:
            ex.error = f"{type(exc).__name__}: {exc}"[:300]
        ex.t_done = self.clock()
        return ex
