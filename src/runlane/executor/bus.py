"""Cross-worker signals over PostgreSQL LISTEN/NOTIFY.

The store NOTIFYs inside its transactions (delivered on commit); every worker LISTENs
and reacts: `runlane_wake` (a run may start: claim now, no polling delay),
`runlane_cancel` (a cancel was recorded: the owner interrupts its task at once),
`runlane_done` (a run ended: wake local waiters), `runlane_thread` (a run was admitted
on a thread, or the thread deleted: wake its thread streams). Notifications can be lost (a
dropped connection); every one of them has a fallback: the dispatcher's periodic
claim, the lease renewal that returns recorded cancels, waiters and thread streams
re-reading the store. After a reconnect everything is re-checked at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from runlane.backoff import Backoff
from runlane.loop_task import cancel_and_wait

log = logging.getLogger("runlane.bus")

CHANNELS = ("runlane_wake", "runlane_cancel", "runlane_done", "runlane_thread")


class PostgresBus:
    def __init__(
        self,
        url: str,
        *,
        on_wake: Callable[[], None],
        on_cancel: Callable[[str], None],
        on_done: Callable[[str], None],
        on_reconnect: Callable[[], None],
        on_thread: Callable[[str], None] = lambda _thread_id: None,
    ) -> None:
        self.url = url
        self._handlers = {
            "runlane_wake": lambda _payload: on_wake(),
            "runlane_cancel": on_cancel,
            "runlane_done": on_done,
            "runlane_thread": on_thread,
        }
        self._on_reconnect = on_reconnect
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="runlane-bus")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), 10)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _listen_forever(self) -> None:
        import psycopg

        backoff = Backoff("the LISTEN connection", log)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=5
                ) as conn:
                    for channel in CHANNELS:
                        await conn.execute(f"LISTEN {channel}")
                    self.connected.set()
                    backoff.succeeded()
                    self._on_reconnect()  # whatever was missed while not listening
                    async for note in conn.notifies():
                        handler = self._handlers.get(note.channel)
                        if handler is not None:
                            try:
                                handler(note.payload)
                            except Exception:  # pragma: no cover - a handler bug
                                log.exception("handling %s failed", note.channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any loss of the connection: reconnect
                self.connected.clear()
                await backoff.wait(exc)
