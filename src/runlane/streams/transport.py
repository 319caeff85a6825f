"""The run-event transport: how a run's events reach followers beyond this process's
own logs (the `StreamBroker`). The executor and the service call it unconditionally.

- `LocalTransport`: one process. Every run executes here, so its local log is its
  whole stream: nothing crosses a process boundary.
- `RedisTransport`: scale-out. Any worker may execute a run and any worker may serve
  its stream, so events go through Redis Streams (see redis.py).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from runlane.observability.logs import failure_logged
from runlane.streams.local import RunEventLog, StreamBroker
from runlane.streams.redis import RedisEventBridge, StreamEnded

log = logging.getLogger("runlane.service")


def metadata_event(run_id: str) -> dict[str, Any]:
    """Event 1 of every run's stream."""
    return {"run_id": run_id, "attempt": 1}


class RunEventTransport(Protocol):
    @property
    def crosses_workers(self) -> bool:
        """Whether runs may execute on other workers: then the stream of a run not
        executing here is read from the transport, not from a local log."""
        ...

    def before_admission(self, run_id: str, *, resumable: bool) -> None:
        """A run is about to be admitted (it may start within its own admission)."""
        ...

    async def after_admission(self, run_id: str) -> None:
        """A run was admitted; any worker may execute it."""
        ...

    def relay(self, run_id: str, event_log: RunEventLog) -> None:
        """The run starts executing here: what its local log holds goes out from now
        on, and the stream ends when the log closes."""
        ...

    def detach(self, run_id: str) -> None:
        """This worker stops owning a run without recording its end (fenced): the
        worker that records it ends the stream. Call before closing the local log."""
        ...

    async def end(self, run_id: str, *, error: object | None = None) -> None:
        """End the stream of a run this worker finished without executing it (a
        reaped run, a pending run cancelled or deleted). Best effort."""
        ...

    async def discard(self, run_id: str) -> None:
        """The run was deleted: its stream goes too. Best effort."""
        ...

    def follow(
        self, run_id: str, after: int, modes: frozenset[str] | None, *,
        wait_for_start: bool, run_finished: Callable[[], Awaitable[bool]],
    ) -> AsyncIterator[bytes]:
        """SSE frames of a run executing on any worker, after event `after`, until
        its end (only when `crosses_workers`)."""
        ...

    async def ping(self) -> bool:
        """Whether the transport answers (readiness)."""
        ...

    async def aclose(self) -> None:
        """Relay what is still owed (briefly), then close connections."""
        ...


class LocalTransport:
    """One process: every run's stream is its local log."""

    crosses_workers = False

    def __init__(self, broker: StreamBroker) -> None:
        self.broker = broker

    def before_admission(self, run_id: str, *, resumable: bool) -> None:
        # The log exists before the run can start, so the metadata event is first.
        self.broker.open(run_id).publish("metadata", metadata_event(run_id))
        if resumable:
            # Replayable for an hour after the end. (Scale-out: Redis keeps every
            # ended stream that long; see streams/redis.py.)
            self.broker.keep_resumable(run_id)

    async def after_admission(self, run_id: str) -> None:
        """Nothing more: the run's log was opened before its admission."""

    def relay(self, run_id: str, event_log: RunEventLog) -> None:
        """Nothing to relay: followers read the local log."""

    def detach(self, run_id: str) -> None:
        """Nothing to detach: no other process records the run's end."""

    async def end(self, run_id: str, *, error: object | None = None) -> None:
        """Nothing beyond closing the local log, which the caller does."""

    async def discard(self, run_id: str) -> None:
        """Nothing beyond discarding the local log, which the caller does."""

    def follow(
        self, run_id: str, after: int, modes: frozenset[str] | None, *,
        wait_for_start: bool, run_finished: Callable[[], Awaitable[bool]],
    ) -> AsyncIterator[bytes]:
        raise RuntimeError("one process: every run's stream is its local log")

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        """No connections to close."""


class RedisTransport:
    """Scale-out: run events through Redis Streams, for followers on any worker."""

    crosses_workers = True

    def __init__(self, bridge: RedisEventBridge) -> None:
        self.bridge = bridge

    def before_admission(self, run_id: str, *, resumable: bool) -> None:
        """Nothing yet: the run's stream is written once it is admitted. (Redis keeps
        every ended stream for an hour, resumable or not.)"""

    async def after_admission(self, run_id: str) -> None:
        # Any worker may execute it: its events go through Redis, metadata first
        # (the executing worker writes the same event 1 if it gets there first).
        with failure_logged(log, "run %s: writing its metadata event to Redis", run_id), \
                contextlib.suppress(StreamEnded):
            # StreamEnded: the run already ended elsewhere; its stream is complete.
            await self.bridge.streams.publish(run_id, 1, "metadata", metadata_event(run_id))

    def relay(self, run_id: str, event_log: RunEventLog) -> None:
        # The creator wrote event 1 to Redis, not here; the same bytes again keep this
        # log's ids aligned with the run's stream (ids already in Redis are skipped by
        # the forwarder).
        if not event_log.frames:
            event_log.publish("metadata", metadata_event(run_id))
        self.bridge.forward(run_id, event_log)

    def detach(self, run_id: str) -> None:
        self.bridge.detach(run_id)

    async def end(self, run_id: str, *, error: object | None = None) -> None:
        with failure_logged(log, "run %s: ending its stream in Redis", run_id):
            await self.bridge.end(run_id, error=error)

    async def discard(self, run_id: str) -> None:
        with failure_logged(log, "run %s: discarding its stream in Redis", run_id):
            await self.bridge.discard(run_id)

    def follow(
        self, run_id: str, after: int, modes: frozenset[str] | None, *,
        wait_for_start: bool, run_finished: Callable[[], Awaitable[bool]],
    ) -> AsyncIterator[bytes]:
        return self.bridge.follow(run_id, after, modes, wait_for_start=wait_for_start,
                                  run_finished=run_finished)

    async def ping(self) -> bool:
        return await self.bridge.ping()

    async def aclose(self) -> None:
        await self.bridge.aclose()
