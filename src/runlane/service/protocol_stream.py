"""A thread's v2 protocol event stream (POST /threads/{id}/stream/events, and the
WebSocket's subscriptions): every run on the thread in creation order, each run's
protocol events (protocol_events.RunEvents) made from its own event log, numbered
`seq = run.seq * RUN_SPAN + n`, filtered per subscription.

Nothing of its own is stored: each run's log is durable and replayable as every run
stream's is (the local log on one process, Redis Streams on a cluster), and the
numbering is a function of it, so any worker serves a `since` exactly: the events
after that seq, none lost, none repeated. A run whose log is no longer kept cannot
be replayed: a cursor inside (or before) it gets an explicit `resume_gap` error
event saying so, then the events that are still kept. Without `since`, the stream
replays every run whose log is still kept (as the reference replays the thread's
history), then follows new runs as they are created.

The stream of one run ends with its root `lifecycle` terminal event (completed,
failed, interrupted): nothing of that run comes after it, for any subscriber. The
connection stays open for the thread's next runs, as on the reference.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

from runlane.contract import TERMINAL
from runlane.errors import NotFound
from runlane.owners import Owner
from runlane.run_context import PROTOCOL_V2_MARKER
from runlane.serde import JSONObject, loads
from runlane.service.protocol_events import RunEvents
from runlane.service.protocol_wire import RUN_SPAN, Filter, envelope_error
from runlane.service.runs import Runlane
from runlane.service.thread_wait import ThreadWait

# Yielded between events when the stream was quiet for a while (thread_wait.py): the route
# sends its transport's keep-alive.
QUIET = None


class SinceFromTheFuture(ValueError):
    """`since` names no event this thread's stream issued or will issue."""


@dataclasses.dataclass
class ThreadView:
    """What one reader knows of the thread's current run (agent.getTree)."""

    run_id: str | None = None
    events: RunEvents | None = None
    last_seq: int = 0


def split_since(since: int) -> tuple[int, int]:
    """(run seq, the event's place in that run)."""
    return divmod(since, RUN_SPAN)


async def check_since(svc: Runlane, thread_id: str, since: int | None, owner: Owner) -> None:
    """A `since` past every run of the thread is from the future (or another thread's):
    refused before the stream starts, rather than a stream that never sends anything."""
    if since is None or since == 0:
        return
    run_seq, _ = split_since(since)
    if await svc.store.next_run_on_thread(thread_id, run_seq - 1, owner=owner) is None:
        raise SinceFromTheFuture(
            f"since={since} is not a seq of thread {thread_id}'s event stream: no run of the "
            f"thread is at or after it (a seq from the future, or another thread's)")


def _frames(chunk: bytes) -> list[tuple[int, str, Any] | None]:
    """A run stream's chunk as (id, event, data) frames; None for a heartbeat."""
    out: list[tuple[int, str, Any] | None] = []
    for piece in chunk.split(b"\n\n"):
        if not piece:
            continue
        if not piece.startswith(b"event: "):
            out.append(None)
            continue
        name, data, frame_id = "", b"null", 0
        for line in piece.split(b"\n"):
            if line.startswith(b"event: "):
                name = line[7:].decode()
            elif line.startswith(b"data: "):
                data = line[6:]
            elif line.startswith(b"id: "):
                frame_id = int(line[4:])
        out.append((frame_id, name, loads(data)))
    return out


def _millis(moment: Any) -> int:
    return int(moment.timestamp() * 1000) if moment is not None else int(time.time() * 1000)


async def follow_protocol(  # noqa: C901 - resume, wait, replay, number: one loop
    svc: Runlane, thread_id: str, flt: Filter, *, since: int | None, owner: Owner = None,
    view: ThreadView | None = None,
) -> AsyncIterator[JSONObject | None]:
    """The thread's protocol events after `since` that pass `flt`, as `owner` may see
    them; QUIET when nothing was sent for a while. Ends when the thread is deleted, or
    when a run's stream was cut (a relay problem: the client resumes with `since`)."""
    view = view if view is not None else ThreadView()
    store = svc.store
    cursor_run, cursor_at = split_since(since) if since else (0, 0)
    after_seq = max(cursor_run - 1, 0)
    seen_thread = False
    with svc.thread_signals.listen(thread_id) as woken:
        wait = ThreadWait(woken, svc.thread_stream_poll)
        while True:
            woken.clear()
            found = await store.next_run_on_thread(thread_id, after_seq, owner=owner)
            if found is None:
                thread = await store.get_thread(thread_id, owner=owner)
                if thread is None and seen_thread:
                    return  # deleted: nothing more will come
                seen_thread = seen_thread or thread is not None
                while await wait.idle() == "heartbeat":
                    yield QUIET
                continue
            seen_thread = True
            run_id, seq = found
            if since and seq > cursor_run and after_seq == cursor_run - 1 and cursor_at:
                # The cursor's run is gone (deleted, rolled back): what was left of it
                # after the cursor cannot be told.
                yield envelope_error(None, "resume_gap", (
                    f"events after since={since} were missed: the run they belonged to is "
                    "no longer on the thread"), since=since, min_available_seq=seq * RUN_SPAN)
            skip = cursor_at if seq == cursor_run else 0
            row = await store.get_run(thread_id, run_id, owner=owner)
            if row is None:
                after_seq = seq
                continue
            events = RunEvents(run_id, row.graph_id)
            view.run_id, view.events = run_id, events
            legacy = not ((row.kwargs.get("config") or {}).get("configurable") or {}).get(
                PROTOCOL_V2_MARKER)
            stamp = _millis(row.created_at)
            place = 0
            missing = False
            try:
                frames: AsyncIterator[bytes] | None = await svc.stream_run(
                    thread_id, run_id, last_event_id=0, owner=owner)
            except NotFound:
                frames = None
            first = True
            async for chunk in frames or _nothing():
                for frame in _frames(chunk):
                    if frame is None:
                        if wait.heartbeat_due():
                            yield QUIET
                        continue
                    frame_id, name, data = frame
                    if first:
                        first = False
                        if frame_id != 1:
                            missing = True
                            break
                        produced = events.start(stamp)
                    elif legacy:
                        produced = events.frame(frame_id, *_as_protocol(name, data), stamp)
                    else:
                        produced = events.frame(frame_id, name, data, stamp)
                    for event in produced:
                        place += 1
                        stamp = event["params"].get("timestamp") or stamp
                        if place <= skip:
                            continue
                        event["seq"] = view.last_seq = seq * RUN_SPAN + place
                        if flt.matches(event):
                            wait.sent()
                            yield event
                if missing:
                    break
            if first or missing:
                # Nothing of the run's log is kept any more (a finished run's log is
                # kept for a while, see docs/streaming.md).
                if since and seq >= cursor_run:
                    yield envelope_error(None, "resume_gap", (
                        f"events of run {run_id} after since={since} were missed: its "
                        "events are no longer kept"), since=since,
                        min_available_seq=(seq + 1) * RUN_SPAN)
                after_seq = seq
                continue
            row = await store.get_run(thread_id, run_id, owner=owner)
            if row is not None and row.status not in TERMINAL:
                return  # the run's stream was cut early: the client resumes with since
            for event in events.finish(row.status if row is not None else "interrupted",
                                       stamp, cancel_reason=row.cancel_reason if row else None):
                place += 1
                if place <= skip:
                    continue
                event["seq"] = view.last_seq = seq * RUN_SPAN + place
                if flt.matches(event):
                    yield event
            if skip > place and seq == cursor_run:
                yield envelope_error(None, "invalid_argument", (
                    f"since={since} is past the last event of run {run_id} "
                    f"({seq * RUN_SPAN + place}): not a seq this stream issued"))
                return
            after_seq = seq


def _as_protocol(name: str, data: Any) -> tuple[str, Any]:
    """A run of the other protocol (POST /threads/{id}/runs) on the same thread: its
    values, updates, custom and tasks events as protocol params (its messages are
    message tuples, not content blocks: left out, as on the reference)."""
    method, *segments = name.split("|")
    if method in ("values", "updates", "tasks"):
        return name, {"namespace": segments, "data": data}
    if method == "custom":
        return name, {"namespace": segments, "data": {"payload": data}}
    if method == "error":
        return name, data
    return name, None


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield  # an async generator that yields nothing
