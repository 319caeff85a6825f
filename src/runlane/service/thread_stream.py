"""The thread-level stream (GET /threads/{id}/stream): every run on the thread, one
after another in creation order, as they happen, until the client goes away.

It is built on the per-run streams (`Runlane.stream_run`), so it works wherever they
do: from the local log on one process, from Redis Streams on a cluster. Between
runs it waits (service/thread_wait.py) for a notification (service/thread_signals.py):
a run admitted on the thread, or the thread deleted, wakes it, on this process at
once and from other workers by PostgreSQL NOTIFY; it then reads the store for the next
run after the current one. It reads on its own only every `Runlane.thread_stream_poll` seconds
(RUNLANE_THREAD_STREAM_POLL, default 5), in case a notification was lost; a run found
late loses nothing: its stream replays from its first event.

After each run's own events comes a `metadata` event `{"status": "run_done",
"run_id": ...}`, as the LangGraph server sends it (the SDK's clients look for that
shape; the run's final status is `GET /threads/{id}/runs/{run_id}`).

Event ids are `<run_id>:<n>` (the run's own event n) and `<run_id>:done` (the
run_done event after it), so `Last-Event-ID` resumes exactly: after event n of that
run, then the runs created after it. Without it, the stream starts at the thread's
oldest active run, or at the next run created.

stream_mode: `run_modes` (the default) sends every run event and run_done;
`lifecycle` only each run's start (`metadata`) and run_done; `state_update` only
the runs' `values` events (the thread's state after each step).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from runlane.contract import TERMINAL
from runlane.errors import NotFound
from runlane.observability import metrics
from runlane.owners import Owner
from runlane.serde import dumps
from runlane.service.runs import Runlane
from runlane.service.thread_wait import ThreadWait
from runlane.streams.local import HEARTBEAT

THREAD_STREAM_MODES = ("run_modes", "lifecycle", "state_update")
_LAST_EVENT_ID = re.compile(r"^([0-9a-fA-F-]{36}):(\d{1,18}|done)$")
_FRAME_ID = re.compile(rb"\nid: (\d+)\n\n$")


def parse_last_event_id(value: str | None) -> tuple[str, int | None] | None:
    """`<run_id>:<n>` or `<run_id>:done` -> (run_id, n or None). None (joined as
    without one: from the thread's oldest active run) for none, '-', and any id this
    stream did not issue, as the reference replays for an id it does not know."""
    match = _LAST_EVENT_ID.match((value or "").strip())
    if match is None or not match.group(1).isascii():
        return None
    position = match.group(2)
    return match.group(1).lower(), None if position == "done" else int(position)


def _event_names(modes: set[str]) -> frozenset[str] | None:
    """Which run events pass (None: all of them)."""
    if "run_modes" in modes:
        return None
    names: set[str] = set()
    if "lifecycle" in modes:
        names.add("metadata")
    if "state_update" in modes:
        names.add("values")
    return frozenset(names)


def _frame(event: str, data: object, event_id: str) -> bytes:
    return b"event: %s\ndata: %s\nid: %s\n\n" % (event.encode(), dumps(data), event_id.encode())


def _renumber(chunk: bytes, run_id: str, names: frozenset[str] | None) -> list[bytes]:
    """A run stream's frames with their ids made thread-wide; comments pass as they are."""
    out = []
    for piece in chunk.split(b"\n\n"):
        if not piece:
            continue
        frame = piece + b"\n\n"
        if not frame.startswith(b"event: "):
            out.append(frame)  # a heartbeat comment
            continue
        event = frame[7:frame.index(b"\n")].decode()
        if names is not None and event.split("|", 1)[0] not in names:
            continue
        match = _FRAME_ID.search(frame)
        if match is None:  # an end-of-stream error frame without an id
            out.append(frame)
            continue
        out.append(frame[:match.start()] + b"\nid: %s:%s\n\n" % (run_id.encode(), match.group(1)))
    return out


async def follow_thread(  # noqa: C901 - resume, wait, relay: one loop
    svc: Runlane, thread_id: str, *, modes: set[str], last_event_id: tuple[str, int | None] | None,
    owner: Owner = None,
) -> AsyncIterator[bytes]:
    """The thread's runs' events as `owner` may see them (the route checked the thread
    is the owner's; every read here stays the owner's too, see Store.run_seq)."""
    names = _event_names(modes)
    send_done = "run_modes" in modes or "lifecycle" in modes
    store = svc.store
    resume_run: str | None = None
    resume_after = 0
    # Listening before the first read: a run admitted from here on wakes the wait.
    with svc.thread_signals.listen(thread_id) as woken:
        if last_event_id is not None:
            run_id, position = last_event_id
            seq = await store.run_seq(thread_id, run_id, owner=owner)
            if seq is None:  # that run is gone: go on with whatever comes after now
                after_seq = await store.thread_stream_start(thread_id, owner=owner)
            elif position is None:  # it was done: the next run
                after_seq = seq
            else:
                after_seq, resume_run, resume_after = seq - 1, run_id, position
        else:
            after_seq = await store.thread_stream_start(thread_id, owner=owner)
        cause: str = "start"
        wait = ThreadWait(woken, svc.thread_stream_poll)
        first = True
        while True:
            woken.clear()  # set again by any notification from here on
            metrics.thread_stream_read(cause)
            found = await store.next_run_on_thread(thread_id, after_seq, owner=owner)
            if found is None:
                # (The route found the thread just before the first read.)
                if not first and await store.get_thread(thread_id, owner=owner) is None:
                    return  # the thread was deleted: nothing more will come
                first = False
                while (cause := await wait.idle()) == "heartbeat":
                    yield HEARTBEAT
                continue
            first = False
            run_id, seq = found
            after = resume_after if run_id == resume_run else 0
            try:
                frames: AsyncIterator[bytes] | None = await svc.stream_run(
                    thread_id, run_id, last_event_id=after, owner=owner)
            except NotFound:  # deleted since it was found: its run_done says so below
                frames = None
            async for chunk in frames or _nothing():
                batch = _renumber(chunk, run_id, names)
                if batch:
                    yield b"".join(batch)
            wait.sent()
            row = await store.get_run(thread_id, run_id, owner=owner)
            if row is not None and row.status not in TERMINAL:
                # The stream ended early (a relay problem): the client resumes from its
                # last id; ending here is what makes that happen.
                return
            if send_done:
                yield _frame("metadata", {"status": "run_done", "run_id": run_id},
                             f"{run_id}:done")
            after_seq, cause = seq, "start"


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield  # an async generator that yields nothing
