"""In-process run event logs: publish, replay from an id, live tail.

Each run has an append-only log of SSE frames with ids 1, 2, 3 ... so a reconnect
with `Last-Event-ID: n` gets exactly the events after n: none lost, none repeated
(ids never collide, unlike timestamps). A closed log is the end of the run's
stream. Finished logs are kept for a while for late reconnects, within a bound, so
memory does not grow with the number of completed runs.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator, Iterator
from typing import overload

from runlane.records import Run
from runlane.serde import dumps, dumps_model

# An SSE comment after this many idle seconds, as often as the reference server sends
# its own (`: heartbeat`), so proxies and browsers keep a quiet stream open.
HEARTBEAT = b": heartbeat\n\n"
HEARTBEAT_SECONDS = 5.0


class StreamCut(Exception):
    """The run's log here ended without the run's end: its worker stopped it without
    writing (fenced), and its end is recorded elsewhere. A follower must be cut, not
    ended: a clean end would tell its client that the stream is over."""


class Frames:
    """A run's encoded SSE frames, read as a list of bytes (frame i has id i + 1).

    A frame is kept either whole or in parts (`append_parts`), so that a part the
    frames before it already hold is stored once: a `messages-tuple` frame is a
    token's chunk and its model call's metadata, the same ~650 bytes for every token
    of a message, which made two thirds of a streaming run's log (about 100 KB per
    100-token answer, kept while the run streams). Parts are joined when read."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: list[bytes | tuple[bytes, ...]] = []

    def append(self, frame: bytes) -> None:
        self._items.append(frame)

    def append_parts(self, parts: tuple[bytes, ...]) -> None:
        self._items.append(parts)

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> bytes: ...
    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...
    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        if isinstance(index, slice):
            return [item if isinstance(item, bytes) else b"".join(item)
                    for item in self._items[index]]
        item = self._items[index]
        return item if isinstance(item, bytes) else b"".join(item)

    def __iter__(self) -> Iterator[bytes]:
        for item in self._items:
            yield item if isinstance(item, bytes) else b"".join(item)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Frames | list):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, as a list


class RunEventLog:
    __slots__ = ("_closers", "_last_second", "_last_shared", "_waiters", "closed",
                 "cut_short", "frames", "names")

    def __init__(self) -> None:
        self.frames = Frames()  # encoded SSE frames; frame i has id i + 1
        # The last part a frame shared (see publish_pair): the next frame's equal
        # part is stored as this same bytes object.
        self._last_shared = b""
        self._last_second: object = None  # the object _last_shared encodes
        self.names: list[str] = []  # event names, for stream_mode filtering on join
        self.closed = False
        self.cut_short = False  # closed by `cut`: followers raise StreamCut at the end
        # One future per follower waiting for the next frame (see _wait_change).
        self._waiters: list[asyncio.Future[bool]] = []
        # One future per task waiting for the end (see wait_closed); None: no waiter.
        self._closers: list[asyncio.Future[Run | None]] | None = None

    def publish(self, event: str, data: object) -> int:
        if self.closed:
            return 0
        event_id = len(self.frames) + 1
        payload = data if isinstance(data, bytes) else dumps(data)
        self.frames.append(
            b"event: %s\ndata: %s\nid: %d\n\n" % (event.encode(), payload, event_id)
        )
        self.names.append(event)
        self._wake()
        return event_id

    def publish_pair(self, event: str, first: object, second: object) -> int:
        """Publish `[first, second]` (the bytes `publish` would write for that list),
        keeping the encoding of `second` once when it equals the previous pair's: the
        metadata of a `messages-tuple` frame, identical for every token of a message
        (see Frames). langgraph passes the same metadata dict with every token of a
        model call (made once, when the call starts): that very object is encoded once
        (a mutation of it during the call would not be seen; langgraph makes none)."""
        if self.closed:
            return 0
        event_id = len(self.frames) + 1
        if second is not self._last_second or second is None:
            shared = dumps(second)
            if shared != self._last_shared:
                self._last_shared = shared
            self._last_second = second
        shared = self._last_shared
        self.frames.append_parts((
            b"event: %s\ndata: [%s," % (event.encode(), dumps_model(first)),
            shared,
            b"]\nid: %d\n\n" % event_id,
        ))
        self.names.append(event)
        self._wake()
        return event_id

    def close(self, final: Run | None = None) -> None:
        """The end of the run's stream. `final`: the run as it ended, when the closer
        is the settle that recorded it; its waiters get it (see wait_closed)."""
        if not self.closed:
            self.closed = True
            closers, self._closers = self._closers, None
            for closer in closers or ():
                if not closer.done():
                    closer.set_result(final)
            self._wake()

    def cut(self) -> None:
        """Close without the run's end (see StreamCut): followers get every frame
        published here, then StreamCut."""
        if not self.closed:
            self.cut_short = True
            self.close()

    def _wake(self) -> None:
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(True)

    async def wait_closed(self) -> Run | None:
        """Until the log closes: the end of the run, for `wait`, `join` and a cancel
        with wait=true. Each waiter awaits a future of its own, which `close` resolves
        directly, so the waiter resumes in the very next loop turn after the run
        settled, ahead of whatever the settle also woke (the dispatcher's next claim).
        (Through the shared, shielded change signal and `asyncio.wait_for` it took
        four turns, and the claim ran first: a third of a millisecond per cancel.)
        Cancelling a waiter, e.g. by `asyncio.timeout`, cancels only its own future.

        Returns the `final` run the log was closed with, else None (closed earlier,
        or by anything but the settle that recorded the run's end)."""
        if self.closed:
            return None
        closer: asyncio.Future[Run | None] = asyncio.get_running_loop().create_future()
        if self._closers is None:
            self._closers = []
        self._closers.append(closer)
        try:
            return await closer
        finally:
            if self._closers is not None and closer in self._closers:  # cancelled
                self._closers.remove(closer)

    def _waiter(self) -> asyncio.Future[bool]:
        """A future of the caller's own, resolved by the next frame or the close (True).

        This runs once per frame per follower, so it is the cheapest wait asyncio has:
        a future, no task, no timer (the heartbeat's timer is the follower's, armed
        once per idle period: see _Heartbeat). A shared future awaited through
        `asyncio.shield` and `asyncio.wait_for` made a task and two futures per frame
        per follower: a tenth of the server's CPU per streamed token."""
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return waiter

    async def _wait_change(self, timeout: float | None) -> bool:
        """Until the next frame or the close (True), or `timeout` seconds (False)."""
        loop = asyncio.get_running_loop()
        waiter = self._waiter()
        timer = None if timeout is None else loop.call_later(timeout, _expire, waiter)
        try:
            return await waiter
        finally:
            if timer is not None:
                timer.cancel()

    async def follow(
        self,
        after: int = 0,
        modes: frozenset[str] | None = None,
        heartbeat: float | None = HEARTBEAT_SECONDS,
    ) -> AsyncIterator[bytes]:
        """Yield batches of frames with id > `after`, live, until the log closes.

        While nothing happens, an SSE comment every `heartbeat` seconds keeps proxies
        from cutting an idle stream (clients ignore comments)."""
        position = max(after, 0)
        beat = None if heartbeat is None else _Heartbeat(heartbeat)
        try:
            while True:
                end = len(self.frames)
                if position < end:
                    if modes is None:
                        batch = self.frames[position:end]
                    else:
                        batch = [
                            frame
                            for frame, name in zip(
                                self.frames[position:end], self.names[position:end],
                                strict=True)
                            if name.split("|", 1)[0] in modes
                        ]
                    position = end
                    if batch:
                        if beat is not None:
                            beat.sent()
                        yield batch[0] if len(batch) == 1 else b"".join(batch)
                    continue
                if self.closed:
                    if self.cut_short:
                        raise StreamCut(f"the run's events after id {position} are "
                                        "recorded by another worker")
                    return
                waiter = self._waiter()
                if beat is not None:
                    beat.watch(waiter)
                if not await waiter:
                    self._forget_expired()
                    yield HEARTBEAT
        finally:
            if beat is not None:
                beat.stop()

    def _forget_expired(self) -> None:
        """Drop the waiters that timed out, so an idle log's list does not grow with
        each heartbeat of each follower."""
        self._waiters = [waiter for waiter in self._waiters if not waiter.done()]


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class _Heartbeat:
    """One follower's idle timer: resolves the follower's waiter with False once
    `interval` seconds passed since it last sent anything (or since the last
    heartbeat). Armed once per idle period, not once per frame: a frame sent only
    notes the time, and the timer, when it fires early, re-arms for what is left."""

    __slots__ = ("_handle", "_interval", "_last", "_loop", "_waiter")

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()
        self._waiter: asyncio.Future[bool] | None = None
        self._handle: asyncio.TimerHandle | None = None

    def sent(self) -> None:
        self._last = self._loop.time()

    def watch(self, waiter: asyncio.Future[bool]) -> None:
        """The follower waits on `waiter`: resolve it at the end of the idle period."""
        self._waiter = waiter
        if self._handle is None:
            self._handle = self._loop.call_at(self._last + self._interval, self._fire)

    def _fire(self) -> None:
        now = self._loop.time()
        due = self._last + self._interval
        waiter = self._waiter
        if now < due or waiter is None or waiter.done():
            # Something was sent since the timer was armed, or the follower is busy
            # sending: the idle period starts again from what it last did.
            self._handle = self._loop.call_at(due if now < due else now + self._interval,
                                              self._fire)
            return
        self._last = now
        self._waiter = None
        waiter.set_result(False)
        self._handle = self._loop.call_at(now + self._interval, self._fire)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


# A run created with stream_resumable=true: its events stay replayable this long
# after it ended (the same as a Redis stream's TTL after its end, see redis.py).
RESUMABLE_RETENTION_SECONDS = 3600.0


class StreamBroker:
    """Owns every run's log. Live logs stay until their run ends. Finished ones are
    kept `retention_seconds`, at most `max_finished` of them (best effort); those of
    runs created with `stream_resumable=true` are kept `resumable_retention_seconds`
    whatever else finishes (at most `max_resumable`, a memory bound far above any
    normal load)."""

    def __init__(self, retention_seconds: float = 120.0, max_finished: int = 256,
                 resumable_retention_seconds: float = RESUMABLE_RETENTION_SECONDS,
                 max_resumable: int = 100_000) -> None:
        self._logs: dict[str, RunEventLog] = {}
        self._finished: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._resumable: set[str] = set()  # runs whose logs are kept longer
        self._finished_resumable: collections.OrderedDict[str, float] = (
            collections.OrderedDict())
        self.retention_seconds = retention_seconds
        self.max_finished = max_finished
        self.resumable_retention_seconds = resumable_retention_seconds
        self.max_resumable = max_resumable

    def keep_resumable(self, run_id: str) -> None:
        """The run was created with stream_resumable=true."""
        self._resumable.add(run_id)

    def open(self, run_id: str) -> RunEventLog:
        log = self._logs.get(run_id)
        if log is None:
            log = self._logs[run_id] = RunEventLog()
        return log

    def get(self, run_id: str) -> RunEventLog | None:
        return self._logs.get(run_id)

    def close(self, run_id: str, final: Run | None = None) -> None:
        log = self._logs.get(run_id)
        if log is None:
            return
        log.close(final)
        finished = (self._finished_resumable if run_id in self._resumable
                    else self._finished)
        finished[run_id] = time.monotonic()
        finished.move_to_end(run_id)
        self._evict()

    def cut(self, run_id: str) -> None:
        """A run stopped here without writing (fenced): its followers here are cut,
        and its log is not kept for replays (another worker records the rest)."""
        log = self._logs.pop(run_id, None)
        self._finished.pop(run_id, None)
        self._finished_resumable.pop(run_id, None)
        self._resumable.discard(run_id)
        if log is not None:
            log.cut()

    def discard(self, run_id: str) -> None:
        log = self._logs.pop(run_id, None)
        self._finished.pop(run_id, None)
        self._finished_resumable.pop(run_id, None)
        self._resumable.discard(run_id)
        if log is not None:
            log.close()

    def _evict(self) -> None:
        now = time.monotonic()
        for finished, keep_for, most in (
                (self._finished, self.retention_seconds, self.max_finished),
                (self._finished_resumable, self.resumable_retention_seconds,
                 self.max_resumable)):
            while finished:
                run_id, closed_at = next(iter(finished.items()))
                if len(finished) <= most and closed_at > now - keep_for:
                    break
                finished.popitem(last=False)
                self._logs.pop(run_id, None)
                self._resumable.discard(run_id)

    @property
    def live_count(self) -> int:
        return len(self._logs) - len(self._finished) - len(self._finished_resumable)
