"""The cron scheduler: one loop per worker that fires due crons.

Every worker runs it; a firing happens once across them because each is claimed with
a compare-and-set on the cron's `next_run_date` (`CronStore.claim`) before its run
is created. The loop sleeps until the earliest next firing (at most `max_sleep`, so
crons created on other workers are noticed), so on several workers they all wake
at the firing instant and race for it: the CAS picks one.

A claimed firing stays recorded until the admission of its run clears it (see
store/crons.py): a worker that dies between claiming a firing and creating its run
leaves it to whichever worker (or the restarted one) finds it past its deadline,
`FIRING_HOLD` after the claim. Exactly one run per firing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os

from runlane.backoff import Backoff
from runlane.errors import BadSchedule, DatabaseUnavailable
from runlane.loop_task import LoopTask
from runlane.observability import metrics
from runlane.serde import utcnow
from runlane.service.crons import Crons, next_firing

log = logging.getLogger("runlane.scheduler")
# How long a claimed firing is the claimer's alone; past it, any worker creates its run.
FIRING_HOLD = datetime.timedelta(seconds=5)
# Test hook, off by default: stall this long right after claiming a firing, so a test
# can kill the worker between the claim and the run's creation.
STALL_ENV = "RUNLANE_TEST_CRON_STALL_AFTER_CLAIM"


class CronScheduler(LoopTask):
    task_name = "runlane-cron-scheduler"

    def __init__(self, crons: Crons, *, max_sleep: float = 1.0) -> None:
        super().__init__()
        self.crons = crons
        self.max_sleep = max_sleep
        self._wakeup = asyncio.Event()
        self.fired = 0  # firings this worker claimed
        self._stall = float(os.environ.get(STALL_ENV) or 0)
        self._backoff = Backoff("cron scheduler tick", log)

    def start(self) -> None:
        self.crons.on_change = self.wake
        super().start()

    def wake(self) -> None:
        self._wakeup.set()

    async def stop(self) -> None:
        """Fire nothing more (shutdown): a firing under way finishes creating its run."""
        await super().stop()

    async def _loop(self) -> None:
        while True:
            delay = self.max_sleep
            try:
                await self.tick()
                earliest = await self.crons.store.earliest_next_run()
                if earliest is not None:
                    delay = min(self.max_sleep, max(0.0, (earliest - utcnow()).total_seconds()))
                self._backoff.succeeded()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the database is away: retry, backing off
                # Not woken meanwhile (a cron changed here): that would retry at once.
                await self._backoff.wait(exc, trace=not isinstance(exc, DatabaseUnavailable))
                continue
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), delay)

    async def tick(self) -> int:
        """Claim and fire every due cron; how many this worker fired."""
        fired = 0
        now = utcnow()
        for cron, firing_at, seen_until in await self.crons.store.abandoned_firings(now):
            taken = await self.crons.store.take_over(cron.cron_id, firing_at, seen_until,
                                                     now + FIRING_HOLD)
            if taken is not None:
                log.warning("cron %s: taking over its firing at %s (its claimer did not "
                            "create the run in time)", cron.cron_id, firing_at.isoformat(),
                            extra={"event": "cron_firing_taken_over",
                                   "cron_id": cron.cron_id})
                fired += 1
                await self.crons.fire(taken, firing_at)
        for cron in await self.crons.store.due(now):
            seen = cron.next_run_date
            assert seen is not None  # due() selects crons with a next firing
            end_time = cron.end_time
            try:
                # Missed firings (downtime) collapse into this one: the next is after now.
                following = next_firing(cron.schedule, cron.payload.get("timezone"),
                                        end_time, max(now, seen))
            except BadSchedule as exc:  # cannot happen for a validated cron; never loop on it
                log.error("cron %s: schedule no longer valid (%s); disabling it",
                          cron.cron_id, exc)
                following = None
            # end_time moved before this firing: claimed only to retire it.
            retire = end_time is not None and seen > end_time
            claimed = await self.crons.store.claim(
                cron.cron_id, seen, following, now,
                firing_until=None if retire else now + FIRING_HOLD)
            metrics.cron_claim(claimed is not None)
            if claimed is None or retire:
                continue  # another worker fired it, or it changed meanwhile
            fired += 1
            self.fired += 1
            if self._stall:
                log.warning("cron %s: firing at %s claimed; stalling %ss (%s)", cron.cron_id,
                            seen.isoformat(), self._stall, STALL_ENV)
                await asyncio.sleep(self._stall)
            await self.crons.fire(claimed, seen)
        return fired
