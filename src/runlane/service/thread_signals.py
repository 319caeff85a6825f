"""Wake-ups for thread streams: "something happened on thread X, read the store again".

A thread stream (service/thread_stream.py) waits between runs for the next run on
its thread. Rather than polling the store, it waits on an event of this hub, which
is set when a run is admitted on the thread or the thread is deleted:

- by this process, right after its own transaction committed (`Runlane.admit_run`,
  `Runlane.delete_thread`): enough on SQLite, where this process is the only one;
- on PostgreSQL also by the bus (executor/bus.py): the store NOTIFYs
  `runlane_thread` with the thread id in the same transactions, so a run admitted on
  another worker wakes this worker's streams when it commits.

A signal says only "look again": the stream re-reads the store, so a spurious or
duplicate wake-up costs one read and a lost one (a dropped LISTEN connection) costs
a delay until the stream's slow fallback poll. After a reconnect of the bus every
stream is woken (`wake_all`), since notifications may have been missed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


class ThreadSignals:
    """Per-thread events of the streams this process serves (one event per stream)."""

    def __init__(self) -> None:
        self._listeners: dict[str, set[asyncio.Event]] = {}

    def notify(self, thread_id: str) -> None:
        """Something changed on the thread: every stream following it reads again."""
        for event in self._listeners.get(thread_id, ()):
            event.set()

    def wake_all(self) -> None:
        """Notifications may have been lost (the bus reconnected): everyone reads."""
        for listeners in self._listeners.values():
            for event in listeners:
                event.set()

    @contextlib.contextmanager
    def listen(self, thread_id: str) -> Iterator[asyncio.Event]:
        """An event set by every `notify(thread_id)` while the block runs. Clear it
        before reading the store, so a notification during the read is kept."""
        event = asyncio.Event()
        self._listeners.setdefault(thread_id, set()).add(event)
        try:
            yield event
        finally:
            listeners = self._listeners.get(thread_id)
            if listeners is not None:
                listeners.discard(event)
                if not listeners:
                    del self._listeners[thread_id]
