"""Filling this worker's run slots: the dispatcher claims startable runs into free
slots when woken, a run's admission may start it at once when nothing else could
want its slot (start at admission), delayed runs wake it when due, and a periodic
recheck bounds the wait for a wake-up that never came.

On a cluster the same rules make the wake-up targeted: the worker that admits a run
starts it in the admission's own transaction when it has a free slot and knows of no
run waiting for one, and only a run it cannot start (its slots are full, a run ahead
of it on its thread, a delay, a hold) is announced to every worker (the store's WAKE
NOTIFY), each of which then claims. A run's end wakes the local dispatcher only when
a run may be waiting for the slot (`starved`: the last claim filled every free slot,
or a wake-up came while none was free). Every worker hears every WAKE, so a worker
that is not starved knows of no waiting run: the claim fan-out per run is gone, and
the periodic recheck remains the safety net for a lost notification."""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from typing import TYPE_CHECKING

from runlane.backoff import Backoff
from runlane.errors import DatabaseUnavailable
from runlane.loop_task import cancel_and_wait
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

    def __init__(self, *, single_process: bool) -> None:
        # One SQLite process sees every event that makes a run startable: a run the
        # periodic recheck finds is a bug there (logged), and on a cluster a lost
        # NOTIFY (not logged).
        self.single_process = single_process
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
        """Whether a slot coming free may let a waiting run start: only if the last
        claim left startable runs without a slot (or a wake-up came while no slot was
        free). On a cluster too: a run admitted on a worker that could not start it
        was announced to every worker (WAKE), which made each of them claim, or, if
        full, starved."""
        return self.starved


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
        await cancel_and_wait(self._task)

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
        turn (on a cluster: a WAKE NOTIFY and a claim transaction on every worker).
        Only when nothing else could want the slot first: every event that can make a
        pending run startable (a run created or ended, a cancel, a delayed run coming
        due; on a cluster, another worker's WAKE) wakes the dispatcher, so a
        dispatcher that is idle, not woken, not claiming and not starved means no run
        is waiting to start, and creation order is kept (on a cluster, up to a NOTIFY
        still in flight: order across threads is not part of the contract there;
        order on a thread is the admission's, under the thread's row lock). Undo with
        `release_slot`, or use with `start_admitted`."""
        if (self._stopping or self._claiming
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
                    if claimed and rechecking and signal.single_process:
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
