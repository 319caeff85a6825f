"""The TTL sweeper: applies expired threads' TTL (see store/threads.py), and deletes
expired Idempotency-Keys (see store/idempotency.py; an expired key is also taken over
by the next request that uses it, swept or not).

Every worker runs one. It sleeps until the earliest `expires_at` in the store (at
most `max_sleep`: langgraph.json's checkpointer.ttl.sweep_interval_minutes, else 30 s,
so a TTL set through another worker is seen soon enough; the worker that sets one
expiring sooner than that wakes its own sweeper at once), then expires what is due.
Workers sweeping together are safe: each expiry locks and re-checks its thread, so
exactly one worker acts on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Awaitable, Callable

from runlane.backoff import Backoff
from runlane.loop_task import LoopTask
from runlane.serde import utcnow
from runlane.service.runs import Runlane
from runlane.service.thread_holds import release
from runlane.store.thread_checkpoints import prune_keep_latest

log = logging.getLogger("runlane.ttl")
BATCH = 100  # threads expired per batch (checkpointer.ttl.sweep_limit)


class TTLSweeper(LoopTask):
    task_name = "runlane-ttl"

    def __init__(self, service: Runlane, *, wakeup: asyncio.Event,
                 max_sleep: float = 30.0, batch: int = BATCH,
                 prune: Callable[[str], Awaitable[None]] | None = None) -> None:
        super().__init__()
        self.service = service
        self.batch = batch
        # Keeps each namespace's latest checkpoint of a thread (a seam for the tests).
        self._prune = prune or (lambda thread_id: prune_keep_latest(service.checkpoints,
                                                                    thread_id))
        self.max_sleep = max_sleep
        # Set when a TTL is set or changed on this worker (Runlane.thread_ttl_changed).
        self._wake = wakeup
        # Expiring is never urgent: retried up to `max_sleep` (at most 5 s) apart.
        self._backoff = Backoff("thread TTL sweep", log, cap=min(5.0, max_sleep))

    async def _loop(self) -> None:
        while True:
            try:
                delay = await self.sweep()
                self._backoff.succeeded()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the database is away: try again later
                # Not woken meanwhile (a TTL set here): that would retry at once.
                delay = self._backoff.failed(exc)
                self.service.sweep_planned_at = utcnow() + datetime.timedelta(seconds=delay)
                await asyncio.sleep(delay)
                continue
            self._wake.clear()
            self.service.sweep_planned_at = utcnow() + datetime.timedelta(seconds=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def expire(self, thread_id: str, now: datetime.datetime) -> None:
        """Apply one due thread's TTL."""
        store = self.service.store
        result = await store.expire_thread(thread_id, now)
        if result.action == "deleted":
            await self.service.after_thread_deleted(thread_id, result.deleted_runs)
            log.info("thread %s expired: deleted", thread_id,
                     extra={"event": "thread_expired", "thread_id": thread_id,
                            "ttl_strategy": "delete"})
        elif result.action == "pruned":
            # The expiry held the thread (no run starts on it) until the prune is done.
            assert result.hold_token is not None
            try:
                await self._prune(thread_id)
            finally:
                await release(store, thread_id, result.hold_token, self.service.executor.wake)
            log.info("thread %s expired: checkpoints pruned to the latest", thread_id,
                     extra={"event": "thread_expired", "thread_id": thread_id,
                            "ttl_strategy": "keep_latest"})

    async def sweep(self) -> float:
        """Expire what is due; how long until the next expiry (seconds)."""
        store = self.service.store
        while True:
            now = utcnow()
            due = await store.expired_thread_ids(now, self.batch)
            for thread_id in due:
                await self.expire(thread_id, now)
            if len(due) < self.batch:
                break
        while await store.sweep_idempotency_keys(utcnow(), BATCH) == BATCH:
            pass
        expiries = [when for when in (await store.next_thread_expiry(),
                                      await store.next_idempotency_expiry())
                    if when is not None]
        if not expiries:
            return self.max_sleep
        return min(self.max_sleep, max(0.05, (min(expiries) - utcnow()).total_seconds()))
