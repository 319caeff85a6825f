"""Leases (scale-out): every worker renews the leases of the runs it executes, and
finishes the runs of workers that stopped renewing.

- Renewal is one statement for all of a worker's runs; it also returns their
  recorded cancels (the fallback for a lost NOTIFY).
- Fencing: a run missing from the renewal's answer is no longer this worker's (it
  was reaped), and a worker that could not renew for a whole lease stops all its
  runs; either way it stops them without writing (its store writes are also fenced
  by worker id, so a late write can never land).
- Reaping: a run whose lease ended more than `grace` ago is finished by whichever
  worker notices: `interrupted` if a cancel was recorded, `error` (worker lost)
  otherwise; a recorded rollback is adopted and completed.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Awaitable, Callable

from runlane.executor.executor import Executor
from runlane.observability import logs
from runlane.records import Run
from runlane.serde import utcnow
from runlane.store import Store

log = logging.getLogger("runlane.leases")


class LeaseKeeper:
    def __init__(
        self,
        *,
        store: Store,
        executor: Executor,
        lease_seconds: float,
        grace_seconds: float,
        on_reaped: Callable[[Run], Awaitable[None]],
        complete_rollback: Callable[[Run], Awaitable[None]],
        housekeeping: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.executor = executor
        self.lease_seconds = lease_seconds
        self.grace_seconds = grace_seconds
        self.on_reaped = on_reaped
        self.complete_rollback = complete_rollback
        self.housekeeping = housekeeping
        self._task: asyncio.Task[None] | None = None
        self._last_renewed = time.monotonic()
        self.renewals = 0
        self.takeovers = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="runlane-leases")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _loop(self) -> None:
        interval = self.lease_seconds / 3
        cycle = 0
        while True:
            await asyncio.sleep(interval)
            await self.renew()
            await self.reap()
            cycle += 1
            if self.housekeeping is not None and cycle % 30 == 0:
                try:
                    await self.housekeeping()
                except Exception as exc:  # noqa: BLE001 - the lease loop must not die
                    log.warning("housekeeping failed (%s)", exc)

    async def renew(self) -> None:
        mine = self.executor.local_run_ids
        try:
            leases = await self.store.renew_leases(self.executor.worker_id,
                                                   self.executor.lease_until(), only=mine)
        except Exception as exc:  # noqa: BLE001 - any failure is a missed renewal
            if time.monotonic() - self._last_renewed > self.lease_seconds:
                log.error("could not renew leases for %.0fs (%s): stopping %d runs without "
                          "writing", self.lease_seconds, exc, len(mine))
                for run_id in mine:
                    self.executor.fence(run_id)
            else:
                log.warning("lease renewal failed (%s); retrying", exc)
            return
        self._last_renewed = time.monotonic()
        self.renewals += 1
        for run_id in mine - set(leases):
            # Not ours any more (reaped while we were away): stop without writing. (A run
            # being finalized here has just ended by its own CAS; its task is done.)
            if run_id in self.executor.local_run_ids and run_id not in self.executor.settling:
                log.error("run %s was taken over by another worker: stopping it", run_id)
                self.executor.fence(run_id)
        for run_id, cancel_action in leases.items():
            if cancel_action is not None:
                self.executor.deliver_cancel(run_id)

    async def reap(self) -> None:
        deadline = utcnow() - datetime.timedelta(seconds=self.grace_seconds)
        try:
            finished, adopted = await self.store.reap_expired(
                deadline, self.executor.worker_id, self.executor.lease_until()
            )
        except Exception as exc:  # noqa: BLE001 - the next cycle reaps again
            log.warning("reaping expired runs failed (%s)", exc)
            return
        for run in finished:
            self.takeovers += 1
            # Its worker stopped renewing its lease: this worker finished it.
            logs.run_status(run, "running", level=logging.WARNING,
                            lost_worker=run.worker_id,
                            taken_over_by=self.executor.worker_id)
            await self.on_reaped(run)
        for run in adopted:
            self.takeovers += 1
            await self.complete_rollback(run)
