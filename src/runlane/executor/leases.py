"""Leases (scale-out): every worker renews the leases of the runs it executes, and
finishes the runs of workers that stopped renewing.

- Renewal is one statement for all of a worker's runs; it also returns their
  recorded cancels (the fallback for a lost NOTIFY).
- Fencing: a run missing from the renewal's answer is no longer this worker's (it
  was reaped), and a worker whose last successful renewal is older than a lease
  stops all its runs, whether the renewals failed (database down) or never happened
  (the process was stopped, or its loop stalled): on resuming it fences before it
  renews. Either way it stops them without writing (its store writes are also fenced
  by worker id, so a late write can never land). Until the renewal, its checkpoint
  writes are refused by the same clock (`lease_held`, store/checkpoint_fence.py),
  and on PostgreSQL each one also checks in its own transaction that its run is
  still running on this worker.
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

from runlane.backoff import Backoff
from runlane.executor.executor import Executor
from runlane.loop_task import LoopTask
from runlane.observability import logs
from runlane.records import Run
from runlane.serde import utcnow
from runlane.store import Store

log = logging.getLogger("runlane.leases")


class LeaseKeeper(LoopTask):
    task_name = "runlane-leases"

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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`clock`: a monotonic clock that counts the time the process was stopped
        (time.monotonic does, on Linux: CLOCK_MONOTONIC); tests pass their own."""
        super().__init__()
        self.store = store
        self.executor = executor
        self.lease_seconds = lease_seconds
        self.grace_seconds = grace_seconds
        self.on_reaped = on_reaped
        self.complete_rollback = complete_rollback
        self.housekeeping = housekeeping
        self.clock = clock
        # When the last successful renewal was *sent*: the leases it set end a lease
        # after that, by the wall clock it read then (Executor.lease_until).
        self._last_renewed = self._last_attempt = clock()
        self.renewals = 0
        self.takeovers = 0
        # Renewals and reaps keep their own period (a lease's third) through an
        # outage: the backoffs only keep the log to one line per outage.
        self._renewing = Backoff("lease renewal", log)
        self._reaping = Backoff("reaping expired runs", log)
        self._housekeeping = Backoff("housekeeping", log)

    def lease_held(self, run_id: str | None = None) -> bool:
        """Whether this worker's lease (of `run_id`: also counting its claim) still
        runs, by its own clock: the last successful renewal (or the run's claim) was
        sent less than a lease ago. Past that a reaper may take the run over (a grace
        later), so nothing of it may be written any more."""
        since = self._last_renewed
        if run_id is not None:
            claimed = self.executor.leased_at(run_id)
            if claimed is not None and claimed > since:
                since = claimed
        return self.clock() - since < self.lease_seconds

    async def _loop(self) -> None:
        interval = self.lease_seconds / 3
        cycle = 0
        while True:
            # Renew every `interval` from the last renewal sent, not `interval` after
            # the last cycle ended: a slow reap must not age the leases.
            await asyncio.sleep(max(0.0, interval - (self.clock() - self._last_attempt)))
            await self.renew()
            await self.reap()
            cycle += 1
            if self.housekeeping is not None and cycle % 30 == 0:
                try:
                    await self.housekeeping()
                except Exception as exc:  # noqa: BLE001 - the lease loop must not die
                    self._housekeeping.failed(exc)
                else:
                    self._housekeeping.succeeded()

    def _executing(self) -> set[str]:
        """The runs executing here that this worker has not stopped (fenced)."""
        return self.executor.local_run_ids - self.executor.fenced_run_ids

    async def renew(self) -> None:
        sent = self._last_attempt = self.clock()
        # After a gap longer than a lease since the last renewal (this process was
        # stopped, or its loop stalled), its runs may have been taken over, and their
        # graph tasks are about to resume: stop them before anything else (their
        # writes are refused meanwhile: lease_held). A run claimed since keeps going.
        lapsed = {run_id for run_id in self._executing() - self.executor.settling
                  if not self.lease_held(run_id)}
        if lapsed:
            log.error("no lease renewal for %.1fs (longer than the %.1fs lease): "
                      "stopping %d run(s) without writing", sent - self._last_renewed,
                      self.lease_seconds, len(lapsed))
        for run_id in lapsed:
            self.executor.fence(run_id)
        mine = self._executing()
        try:
            leases = await self.store.renew_leases(self.executor.worker_id,
                                                   self.executor.lease_until(), only=mine)
        except Exception as exc:  # noqa: BLE001 - any failure is a missed renewal
            lost = {run_id for run_id in mine if not self.lease_held(run_id)}
            if lost:
                log.error("could not renew leases for %.0fs (%s): stopping %d runs without "
                          "writing", self.lease_seconds, exc, len(lost))
                for run_id in lost:
                    self.executor.fence(run_id)
            self._renewing.failed(exc)
            return
        self._renewing.succeeded()
        self._last_renewed = sent
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
            self._reaping.failed(exc)
            return
        self._reaping.succeeded()
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
