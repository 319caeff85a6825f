"""A pure-Python model of threads and runs: what the store must hold after each of
its operations, per the run contract (docs/run-contract.md).

The model takes its rules from `runlane.contract` rather than restating them: every
status change goes through `Model._move`, which refuses an edge that
`contract.TRANSITIONS` does not allow; a rollback removes only an `ACTIVE` run; what
a new run's multitask strategy does is `contract.MULTITASK_CANCELS`; a cancel's
outcome on a run that is no longer cancellable is `contract.outcome_for_existing_run`.
What the contract tables say in prose (a recorded cancel wins over a completion, a
lost worker's run ends `error` with `worker_lost`, ...) is written out here once, in
the operation it belongs to, and test_store_model.py checks the real store against
it after every step.

It models what the store decides, not how: no SQL, no time but the lease deadlines
the caller passes (the store never reads a clock to decide a lease).
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Literal

from runlane.contract import (
    ACTIVE,
    MULTITASK_CANCELS,
    TRANSITIONS,
    CancelAction,
    CancelOutcome,
    MultitaskStrategy,
    RunStatus,
    StopReason,
    ThreadStatus,
    outcome_for_existing_run,
)


class ModelViolation(AssertionError):
    """The model was asked for a change the contract forbids (a bug in the model or
    in the sequence it replays, never an expected outcome)."""


@dataclasses.dataclass
class ModelRun:
    run_id: str
    thread_id: str
    seq: int  # creation order
    status: RunStatus = RunStatus.PENDING
    cancel_action: CancelAction | None = None
    cancel_reason: str | None = None
    stop_reason: StopReason | None = None
    error_kind: str | None = None  # `error["error"]` as recorded, if any
    worker_id: str | None = None
    lease_until: datetime.datetime | None = None
    # Created with `after_seconds` far ahead: pending, and not due while the test runs.
    delayed: bool = False


@dataclasses.dataclass
class ModelThread:
    thread_id: str
    # How its last run left it; shown whenever it has no active run (else `busy`).
    left: ThreadStatus = ThreadStatus.IDLE


Admission = Literal["admitted", "not_found", "rejected"]


@dataclasses.dataclass
class AdmitResult:
    kind: Admission
    cancelled_running: list[str] = dataclasses.field(default_factory=list)
    cancelled_pending: list[str] = dataclasses.field(default_factory=list)
    started: bool = False


@dataclasses.dataclass
class SettleExpectation:
    changed: bool
    needs_rollback: bool


class Model:
    def __init__(self) -> None:
        self.threads: dict[str, ModelThread] = {}
        self.runs: dict[str, ModelRun] = {}
        # Rolled-back runs: the copy of each as it ended (what its tombstone keeps).
        self.tombstones: dict[str, ModelRun] = {}
        self._seq = 0

    # ------------------------------------------------------------------ reads

    def active(self, thread_id: str) -> list[ModelRun]:
        """The thread's active runs, oldest first."""
        return sorted((r for r in self.runs.values()
                       if r.thread_id == thread_id and r.status in ACTIVE),
                      key=lambda r: r.seq)

    def thread_status(self, thread_id: str) -> ThreadStatus:
        """`busy` while the thread has an active run, else how its last run left it."""
        if self.active(thread_id):
            return ThreadStatus.BUSY
        return self.threads[thread_id].left

    def running(self) -> list[ModelRun]:
        return sorted((r for r in self.runs.values() if r.status is RunStatus.RUNNING),
                      key=lambda r: r.seq)

    # ------------------------------------------------------------ the changes

    def _move(self, run: ModelRun, to: RunStatus) -> None:
        if to not in TRANSITIONS[run.status]:
            raise ModelViolation(f"{run.run_id}: {run.status.value} -> {to.value} is not "
                                 "an edge of contract.TRANSITIONS")
        run.status = to

    def _end(self, run: ModelRun, to: RunStatus, reason: StopReason,
             error_kind: str | None = None) -> None:
        self._move(run, to)
        run.stop_reason = reason
        if error_kind is not None:
            run.error_kind = error_kind

    def _remove(self, run: ModelRun) -> ModelRun:
        """A rollback: the run goes, its tombstone keeps it as ended (interrupted)."""
        if run.status not in ACTIVE:
            raise ModelViolation(f"{run.run_id}: a {run.status.value} run cannot be rolled back")
        del self.runs[run.run_id]
        ended = dataclasses.replace(run)
        self._end(ended, RunStatus.INTERRUPTED, StopReason.CANCELLED)
        self.tombstones[run.run_id] = ended
        return ended

    # ------------------------------------------------------------- operations

    def admit(self, run_id: str, thread_id: str, strategy: MultitaskStrategy, *,
              create_thread: bool, start: tuple[str, datetime.datetime] | None,
              delayed: bool = False) -> AdmitResult:
        """Store.create_run: the thread (created if asked), the strategy, the new
        pending run, and, with `start`, its start in the same transaction when its
        thread had no active run (and it is not delayed)."""
        if thread_id not in self.threads:
            if not create_thread:
                return AdmitResult("not_found")
            self.threads[thread_id] = ModelThread(thread_id)
        active = self.active(thread_id)
        if active and strategy is MultitaskStrategy.REJECT:
            return AdmitResult("rejected")
        result = AdmitResult("admitted")
        cancels = MULTITASK_CANCELS[strategy]
        if active and cancels is not None:
            action, reason = cancels
            for other in active:
                was = other.status
                if self.cancel(thread_id, other.run_id, action, reason.value) \
                        is CancelOutcome.RECORDED:
                    (result.cancelled_running if was is RunStatus.RUNNING
                     else result.cancelled_pending).append(other.run_id)
        self._seq += 1
        run = self.runs[run_id] = ModelRun(run_id, thread_id, self._seq, delayed=delayed)
        if start is not None and not active and not delayed:
            self._start(run, *start)
            result.started = True
        return result

    def _start(self, run: ModelRun, worker_id: str, lease_until: datetime.datetime) -> None:
        self._move(run, RunStatus.RUNNING)
        run.worker_id, run.lease_until = worker_id, lease_until

    def claim(self, worker_id: str, lease_until: datetime.datetime, limit: int) -> list[str]:
        """Store.claim: the oldest startable runs, at most `limit`: pending and due,
        with no running run on their thread and no older due pending one (creation
        order; a delayed run does not hold up the runs queued behind it)."""
        startable = [
            run for run in sorted(self.runs.values(), key=lambda r: r.seq)
            if run.status is RunStatus.PENDING and not run.delayed and not any(
                other.status is RunStatus.RUNNING
                or (other.seq < run.seq and not other.delayed)
                for other in self.active(run.thread_id))
        ][:limit]
        for run in startable:
            self._start(run, worker_id, lease_until)
        return [run.run_id for run in startable]

    def cancel_outcome(self, thread_id: str, run_id: str) -> CancelOutcome:
        """The contract's cancel table for what the model holds now."""
        run = self.runs.get(run_id)
        if run is not None and run.thread_id == thread_id:
            if run.status in ACTIVE and run.cancel_action is None:
                return CancelOutcome.RECORDED
            return outcome_for_existing_run(run.status, run.cancel_action)
        tomb = self.tombstones.get(run_id)
        if tomb is not None and tomb.thread_id == thread_id:
            return CancelOutcome.ROLLED_BACK
        return CancelOutcome.NOT_FOUND

    def cancel(self, thread_id: str, run_id: str, action: CancelAction,
               reason: str) -> CancelOutcome:
        """Store.cancel_run: a pending run stops at once (interrupted, or removed by a
        rollback); a running one gets the cancel recorded; anything else is left as
        it is."""
        outcome = self.cancel_outcome(thread_id, run_id)
        if outcome is CancelOutcome.RECORDED:
            run = self.runs[run_id]
            run.cancel_action, run.cancel_reason = action, reason
            if run.status is RunStatus.PENDING:
                if action is CancelAction.ROLLBACK:
                    self._remove(run)
                else:
                    self._end(run, RunStatus.INTERRUPTED, StopReason.CANCELLED)
                self.threads[thread_id].left = ThreadStatus.IDLE
        return outcome

    def effective(self, thread_id: str, run_id: str) -> ModelRun | None:
        """The run a cancel answers with: as stored, or as its tombstone keeps it."""
        run = self.runs.get(run_id)
        if run is not None and run.thread_id == thread_id:
            return run
        tomb = self.tombstones.get(run_id)
        return tomb if tomb is not None and tomb.thread_id == thread_id else None

    def settle(self, run_id: str, worker_id: str, proposed: RunStatus,
               reason: StopReason, error_kind: str | None,
               thread_status: ThreadStatus) -> SettleExpectation:
        """Store.settle_run: the owner's proposal wins unless a cancel was recorded
        (then `interrupted`, or the rollback is handed back to complete). Fenced: a
        worker that does not hold the run changes nothing."""
        run = self.runs.get(run_id)
        if run is None or run.status is not RunStatus.RUNNING:
            return SettleExpectation(changed=False, needs_rollback=False)
        if run.worker_id != worker_id:
            return SettleExpectation(changed=False, needs_rollback=False)
        if run.cancel_action is CancelAction.ROLLBACK:
            # Handed back to its owner, which deletes its checkpoints and completes it.
            return SettleExpectation(changed=False, needs_rollback=True)
        if run.cancel_action is CancelAction.INTERRUPT:
            self._end(run, RunStatus.INTERRUPTED, StopReason.CANCELLED)
            self.threads[run.thread_id].left = ThreadStatus.IDLE  # stopped, not paused
        else:
            self._end(run, proposed, reason, error_kind)
            self.threads[run.thread_id].left = thread_status
        return SettleExpectation(changed=True, needs_rollback=False)

    def complete_rollback(self, run_id: str, worker_id: str | None,
                          thread_status: ThreadStatus) -> ModelRun | None:
        """Store.complete_rollback, fenced by the run's worker."""
        run = self.runs.get(run_id)
        if (run is None or run.status is not RunStatus.RUNNING
                or run.cancel_action is not CancelAction.ROLLBACK
                or run.worker_id != worker_id):
            return None
        ended = self._remove(run)
        self.threads[run.thread_id].left = thread_status
        return ended

    def renew(self, worker_id: str, lease_until: datetime.datetime) -> dict[str, str | None]:
        """Store.renew_leases: the worker's running runs, with their recorded cancels."""
        renewed: dict[str, str | None] = {}
        for run in self.running():
            if run.worker_id == worker_id:
                run.lease_until = lease_until
                renewed[run.run_id] = None if run.cancel_action is None else \
                    run.cancel_action.value
        return renewed

    def reap(self, deadline: datetime.datetime, worker_id: str,
             lease_until: datetime.datetime) -> tuple[list[str], list[str]]:
        """Store.reap_expired: a running run whose lease ended before `deadline` ends
        `interrupted` if a cancel was recorded, else `error` (worker lost); a recorded
        rollback is adopted by the reaper instead, to complete."""
        finished: list[str] = []
        adopted: list[str] = []
        for run in self.running():
            assert run.lease_until is not None
            if run.lease_until >= deadline:
                continue
            if run.cancel_action is CancelAction.ROLLBACK:
                run.worker_id, run.lease_until = worker_id, lease_until
                adopted.append(run.run_id)
                continue
            if run.cancel_action is CancelAction.INTERRUPT:
                self._end(run, RunStatus.INTERRUPTED, StopReason.CANCELLED)
            else:
                self._end(run, RunStatus.ERROR, StopReason.WORKER_LOST, "WorkerLost")
            self.threads[run.thread_id].left = ThreadStatus.IDLE
            finished.append(run.run_id)
        return finished, adopted

    def recover(self) -> tuple[dict[str, RunStatus], list[str]]:
        """Store.recover_after_restart (one SQLite process): every active run ends,
        `interrupted` if an interrupt was recorded, else `error` (server restarted),
        except a delayed one, still pending: it runs when due; a recorded rollback is
        handed back to complete, its thread busy until then. Returns {run: status it
        had} of the finished runs, and the rollbacks."""
        finished: dict[str, RunStatus] = {}
        rollbacks: list[str] = []
        for run in sorted(self.runs.values(), key=lambda r: r.seq):
            if run.status not in ACTIVE or (run.status is RunStatus.PENDING and run.delayed):
                continue
            if run.cancel_action is CancelAction.ROLLBACK:
                # Still running (its thread busy): completing it sets the thread.
                rollbacks.append(run.run_id)
                continue
            self.threads[run.thread_id].left = ThreadStatus.IDLE
            finished[run.run_id] = run.status
            if run.cancel_action is CancelAction.INTERRUPT:
                self._end(run, RunStatus.INTERRUPTED, StopReason.CANCELLED)
            else:
                self._end(run, RunStatus.ERROR, StopReason.SERVER_RESTARTED,
                          "ServerRestarted")
        return finished, rollbacks

    def delete_run(self, thread_id: str, run_id: str) -> ModelRun | Literal["active"] | None:
        """Store.delete_run, a user's delete: a finished run, or a tombstone (no
        tombstone remains: later cancels answer 404). An active run must be cancelled
        first ("active", nothing changes)."""
        run = self.runs.get(run_id)
        if run is not None and run.thread_id == thread_id:
            if run.status in ACTIVE:
                return "active"
            return self.runs.pop(run_id)
        tomb = self.tombstones.get(run_id)
        if tomb is not None and tomb.thread_id == thread_id:
            return self.tombstones.pop(run_id)
        return None

    def delete_thread(self, thread_id: str) -> dict[str, RunStatus] | None:
        """Store.delete_thread: the thread goes with its runs (whatever their status:
        the caller stops the running ones) and tombstones. {run: status it had}."""
        if self.threads.pop(thread_id, None) is None:
            return None
        gone = {r.run_id: r.status for r in self.runs.values() if r.thread_id == thread_id}
        for run_id in gone:
            del self.runs[run_id]
        for run_id in [t.run_id for t in self.tombstones.values() if t.thread_id == thread_id]:
            del self.tombstones[run_id]
        return gone
