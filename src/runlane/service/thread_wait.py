"""Waiting for a thread's next run, shared by the thread streams (thread_stream.py, the
SSE thread stream; protocol_stream.py, the v2 protocol's): until a notification wakes
the wait (service/thread_signals.py: a run admitted on the thread, or the thread
deleted), or the fallback poll is due (`Runlane.thread_stream_poll`, in case a
notification was lost), with a heartbeat whenever the stream was quiet for
HEARTBEAT_SECONDS meanwhile, so that proxies and clients keep the connection.
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from runlane.streams.local import HEARTBEAT_SECONDS

# What ended one `ThreadWait.idle`: a notification, the fallback poll, or a heartbeat due.
Woke = Literal["notified", "poll", "heartbeat"]


class ThreadWait:
    """One stream's wait between runs, and its clock of when it last sent anything."""

    def __init__(self, woken: asyncio.Event, poll_seconds: float) -> None:
        self.woken = woken
        self.poll_seconds = poll_seconds
        self.quiet_since = time.monotonic()
        self._poll_at: float | None = None  # the fallback poll of the wait under way

    def sent(self) -> None:
        """The stream sent something now: the next heartbeat is due a full period later."""
        self.quiet_since = time.monotonic()

    def heartbeat_due(self) -> bool:
        """Whether the stream was quiet for HEARTBEAT_SECONDS; if so, it counts as sent
        now (the caller sends the heartbeat)."""
        if time.monotonic() - self.quiet_since < HEARTBEAT_SECONDS:
            return False
        self.sent()
        return True

    async def idle(self) -> Woke:
        """Wait for the next run: "notified" or "poll" when the store should be read
        again, "heartbeat" when the caller should send one and call again (the fallback
        poll stays where it was)."""
        if self._poll_at is None:
            self._poll_at = time.monotonic() + self.poll_seconds
        while True:
            if self.heartbeat_due():
                return "heartbeat"
            timeout = min(self.quiet_since + HEARTBEAT_SECONDS, self._poll_at) - time.monotonic()
            if await _notified(self.woken, timeout):
                self._poll_at = None
                return "notified"
            if time.monotonic() >= self._poll_at:
                self._poll_at = None
                return "poll"


async def _notified(woken: asyncio.Event, timeout: float) -> bool:
    """Whether `woken` is set within `timeout` seconds."""
    try:
        await asyncio.wait_for(woken.wait(), max(timeout, 0.0))
    except TimeoutError:
        return False
    return True
