"""Filling this worker's run slots: the dispatcher claims startable runs into free
slots when woken, a run's admission may start it at once when nothing else could
want its slot (start at admission), delayed runs wake it when due, and a periodic
recheck bounds the wait for a wake-up that never came."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from typing import TYPE_CHECKING

from runlane.backoff import Backoff
from runlane.errors import DatabaseUnavailable
from runlane.records import Run
from runlane.serde import utcnow
from runlane.store import Store

if TYPE_CHECKING:  # supervision.py imports DispatchSignal from here
    from runlane.executor.supervision import Supervision

log = logging.getLogger("runlane.executor")



class DispatchSignal:
    """The dispatcher's wake-up, made before the dispatcher and the supervisors that
    ring it: everything that may let a pending run start (a run created or ended, a
    slot freed, a cancel, a NOTIFY, a delayed run coming due) calls `wake`.

    It also says whether a slot coming free matters (`slot_matters`), which depends
    on what the dispatcher's last claim found (`starved`, recorded here by it)."""

    def __init__(self, *, starts_at_admission: bool) -> None:
        # One SQLite process: a run admitted while nothing waits may start in its own
        # admission (see Dispatcher.reserve_slot).
        self.starts_at_admission = starts_at_admission
        # The last claim filled every free slot (or found none): startable runs may be
        # waiting, so a slot coming free must wake the dispatcher.
        self.starved = False
        # The pending wake-up is the periodic recheck's, not one for a reason.
        self.rechecking = False
        self._event = asyncio.Event()

    def wake(self) -> None:
        self.rechecking = False  # woken for a reason (see Dispatcher._recheck)
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        """Until woken; the wake-up is then consumed."""
        await self._event.wait()
        self._event.clear()

    def slot_matters(self) -> bool:
        """Whether a slot coming free may let a waiting run start: on a cluster always
        (other workers' runs), on one SQLite process only if the last claim left
        startable runs without a slot."""
        return self.starved or not self.starts_at_admission


class Dispatcher:
    def __init__(
        self,
        *,
        store: Store,
        supervision: Supervision,
        signal: DispatchSignal,
        worker_id: str,
        max_concurrency: int,
        lease_seconds: float,
        recheck_seconds: float = 1.0,
    ) -> None:
        self.store = store
        self.supervision = supervision
        self.signal = signal
        self.worker_id = worker_id
        self.max_concurrency = max_concurrency
        self.lease_seconds = lease_seconds
        self.recheck_seconds = recheck_seconds
        # Slots promised to runs being admitted right now (see reserve_slot).
        self._reserved = 0
        # True while the dispatcher claims: it may be about to fill the free slots.
        self._claiming = False
        self._task: asyncio.Task[None] | None = None
        self._due_timer: asyncio.TimerHandle | None = None
        self._stopping = False
        self._backoff = Backoff("claiming runs", log)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="runlane-dispatch")
        self.signal.wake()
        self._recheck()

    async def stop_claiming(self) -> None:
        """Claim no more runs; the runs executing here go on."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def lease_until(self) -> datetime.datetime:
        return utcnow() + datetime.timedelta(seconds=self.lease_seconds)

    def _recheck(self) -> None:
        """A safety net: claim at least every `recheck_seconds`, so a run that became
        startable without a wake-up (a lost notification on a cluster, a bug on one
        process: then logged) waits that long at worst, never forever."""
        if self._stopping:
            return
        if not self.signal.is_set():  # else a real wake-up is already on its way
            self.signal.wake()
            self.signal.rechecking = True
        asyncio.get_running_loop().call_later(self.recheck_seconds, self._recheck)

    # ----------------------------------------------------- start at admission

    def reserve_slot(self) -> bool:
        """A slot for a run being admitted now, so that its admission can also start
        it (Store.create_run's `start`), sparing a claim transaction and a dispatcher
        turn. Only when nothing else could want the slot first: on one SQLite process
        every event that can make a pending run startable (a run created or ended, a
        cancel, a delayed run coming due) wakes the dispatcher, so a dispatcher that
        is idle, not woken and not claiming means no run is waiting to start, and
        creation order is kept. Undo with `release_slot`, or use with `start_admitted`."""
        if (not self.signal.starts_at_admission or self._stopping or self._claiming
                or self.signal.starved or self.signal.is_set() or self._free_slots() <= 0):
            return False
        timer = self._due_timer
        if timer is not None and timer.when() <= asyncio.get_running_loop().time():
            return False  # a delayed run is due and its wake-up is late: it goes first
        self._reserved += 1
        return True

    def release_slot(self) -> None:
        """The admission did not start its run (or failed): the slot is free again."""
        self._reserved -= 1
        self.signal.wake()

    def start_admitted(self, run: Run) -> None:
        """Execute a run its admission started (running, leased to this worker)."""
        self._reserved -= 1
        self.supervision.spawn(run)

    def _free_slots(self) -> int:
        """Slots neither executing a run nor promised to one being admitted."""
        return self.max_concurrency - self.supervision.occupied_slots - self._reserved

    # ------------------------------------------------------------------ claims

    async def _loop(self) -> None:
        signal = self.signal
        while not self._stopping:
            await signal.wait()
            rechecking, signal.rechecking = signal.rechecking, False
            self._claiming = True
            # Until a claim takes fewer runs than it could, some may wait for a slot.
            signal.starved = True
            try:
                while (free := self._free_slots()) > 0:
                    # The claimed runs' leases run from here, by this worker's clock
                    # (their checkpoint writes are fenced by it: leases.py).
                    sent = time.monotonic()
                    claimed, due = await self.store.claim(self.worker_id, self.lease_until(),
                                                          free)
                    self._backoff.succeeded()
                    self._wake_when_due(due)
                    if claimed is None:  # raced another worker for a thread: soon again
                        asyncio.get_running_loop().call_later(0.02, signal.wake)
                        break
                    if claimed and rechecking and signal.starts_at_admission:
                        log.warning("startable run(s) %s found by the periodic recheck, not "
                                    "by a wake-up: a wake-up was missed",
                                    ", ".join(r.run_id for r in claimed))
                    for run in claimed:
                        self.supervision.spawn(run, leased_at=sent)
                    if len(claimed) < free:
                        signal.starved = False  # every startable run has a slot
                        break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the store is away: retry, backing off
                # Wake-ups that come meanwhile (the periodic recheck, runs ending) are
                # coalesced into the one after the delay; the bus reconnecting when
                # the database is back wakes it too (one more attempt, then backoff).
                await self._backoff.wait(exc, trace=not isinstance(exc, DatabaseUnavailable))
                signal.wake()
            finally:
                self._claiming = False

    def _wake_when_due(self, due: datetime.datetime | None) -> None:
        """Delayed runs (`after_seconds`): wake again when the earliest becomes due
        (the claim reports when). Every worker does this after each claim (creating a
        delayed run NOTIFYs a wake to all), so on a cluster all of them try at the due
        time and the claim's CAS gives the run to one. A full pool claims nothing, and
        a freed slot wakes the dispatcher anyway."""
        if self._due_timer is not None:
            self._due_timer.cancel()
            self._due_timer = None
        if due is None:
            return
        delay = max((due - utcnow()).total_seconds(), 0.0) + 0.005
        self._due_timer = asyncio.get_running_loop().call_later(delay, self.signal.wake)
