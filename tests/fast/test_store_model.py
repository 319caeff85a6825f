"""Model-based tests of the store (issue 15): hypothesis drives the real Store, on SQLite
and on PostgreSQL, through generated sequences of operations, and after every step
checks that the store holds exactly what the model (run_model.py, built from
runlane.contract) says, and that the contract's invariants hold on the stored rows.

The operations, with several simulated workers and a clock the test controls (the
store never reads a clock to decide a lease: claims, renewals and reaps take their
lease ends and deadlines as arguments):

- admit a run with each multitask strategy on a few threads (creating the thread or
  not, sometimes starting it in its own admission for a worker);
- claim by one of the workers; settle with each status a running run may end in, by
  its owner or by a fenced-out worker; complete a recorded rollback;
- cancel with `interrupt` and `rollback` on pending, running, terminal, rolled-back
  and absent runs, on their thread or another one, and twice in a row (duplicates);
- renew some workers' leases, move the clock on, reap expired leases by any worker;
- a user's delete of a run, a tombstone or a whole thread;
- restart (SQLite): recovery, on a new Store on the same file or the same one, and
  the completion of the rollbacks it hands back, as `runlane serve` does at start.

Checked after every step: every run's status, cancel, stop reason, error kind, worker
and lease; every thread's status; every tombstone and its copy of the run; creation
order. And on the rows alone, whatever the model says: at most one running run per
thread; a thread is busy exactly while it has an active run; every status change since
the previous step is an edge of contract.TRANSITIONS; a terminal run never changes; a
run disappears only by a rollback (leaving its tombstone) or a user's delete; an
interrupted run carries the cancel that stopped it. Each cancel's outcome (and so its
HTTP status, through contract.cancel_http_status) is the one the contract's table
gives for the model's state, and a duplicate cancel answers as the first did and
changes nothing.

Sequences: RUNLANE_MODEL_EXAMPLES per backend (default 150, up to 30 steps each); set
it higher for a longer search (docs/testing.md).
"""

from __future__ import annotations

import asyncio
import datetime
import os
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Connection

from conftest import BACKENDS
from fast.run_model import Model, ModelRun
from fast.support import install_assistant, run_row, thread_row
from runlane.contract import (
    ACCEPTED_OUTCOMES,
    ACTIVE,
    FINISHED_WITHOUT_CANCEL,
    TERMINAL,
    TRANSITIONS,
    CancelAction,
    CancelOutcome,
    MultitaskStrategy,
    RunStatus,
    StopReason,
    ThreadStatus,
    cancel_http_status,
)
from runlane.errors import Conflict, NotFound
from runlane.records import Run
from runlane.serde import utcnow
from runlane.store import Store
from runlane.store.schema import idempotency_keys, run_tombstones, runs, threads

EXAMPLES = int(os.environ.get("RUNLANE_MODEL_EXAMPLES", "150"))
STEPS = 30
SETTINGS = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    # Timing is this machine's noise, not a property; nothing is kept between runs
    # (no .hypothesis/ directory): every run searches afresh.
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    print_blob=True,
    # No `explain` phase: on Python < 3.12 it traces every line (sys.settrace) and
    # turned a failing run's report from seconds into minutes.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
)

WORKERS = ("worker-a", "worker-b", "worker-c")
THREADS = tuple(str(uuid.UUID(int=n)) for n in (1, 2, 3))
LEASE = datetime.timedelta(seconds=6)
GRACE = datetime.timedelta(seconds=2)
EPOCH = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
# What an executor proposes for each status a running run may end in.
PROPOSALS: dict[RunStatus, tuple[StopReason, str | None]] = {
    RunStatus.SUCCESS: (StopReason.COMPLETED, None),
    RunStatus.ERROR: (StopReason.GRAPH_ERROR, "Boom"),
    RunStatus.TIMEOUT: (StopReason.GRAPH_ERROR, "Timeout"),
    RunStatus.INTERRUPTED: (StopReason.CANCELLED, None),
}
# True three times in four: the common case first (it is also what shrinking keeps).
MOSTLY = st.sampled_from([True, True, True, False])
LEFT_BY_A_RUN = (ThreadStatus.IDLE, ThreadStatus.INTERRUPTED, ThreadStatus.ERROR)


class Harness:
    """The real Store on one backend, driven from the test's own event loop."""

    def __init__(self, backend: str, url: str, runner: asyncio.Runner) -> None:
        self.backend, self.url, self.runner = backend, url, runner
        self.store = self.open()
        self.stats: Counter[str] = Counter()

    def run(self, awaitable: Any) -> Any:
        return self.runner.run(awaitable)

    def open(self) -> Store:
        store = Store(self.url)
        self.run(store.setup())
        self.run(install_assistant(store))
        return store

    def restart(self) -> None:
        """The process dies (nothing of it settles anything) and the next one starts."""
        self.run(self.store.close())
        self.store = self.open()


Snapshot = tuple[dict[str, dict[str, Any]], dict[str, str], dict[str, tuple[str, Any]]]


def read_snapshot(conn: Connection) -> Snapshot:
    """Every run row, thread status and tombstone, in one transaction."""
    rows = {r.run_id: dict(r._mapping) for r in conn.execute(sa.select(runs))}
    statuses = {r.thread_id: r.status
                for r in conn.execute(sa.select(threads.c.thread_id, threads.c.status))}
    tombs = {r.run_id: (r.thread_id, r.run) for r in conn.execute(
        sa.select(run_tombstones.c.run_id, run_tombstones.c.thread_id, run_tombstones.c.run))}
    return rows, statuses, tombs


def empty_tables(conn: Connection) -> None:
    for table in (runs, run_tombstones, threads, idempotency_keys):
        conn.execute(sa.delete(table))


def _error_kind(error: Any) -> str | None:
    return error.get("error") if isinstance(error, dict) else None


def _stored(run: ModelRun) -> dict[str, Any]:
    """A model run as the fields the store must hold for it."""
    return {
        "thread_id": run.thread_id, "status": run.status.value,
        "cancel_action": None if run.cancel_action is None else run.cancel_action.value,
        "cancel_reason": run.cancel_reason,
        "stop_reason": None if run.stop_reason is None else run.stop_reason.value,
        "error_kind": run.error_kind, "worker_id": run.worker_id,
        "lease_expires_at": run.lease_until, "delayed": run.delayed,
    }


def _as_stored(row: dict[str, Any] | Run) -> dict[str, Any]:
    """A stored row (or a Run) as the same fields."""
    get = row.get if isinstance(row, dict) else (lambda name: getattr(row, name))
    status, action = get("status"), get("cancel_action")
    return {
        "thread_id": get("thread_id"), "status": getattr(status, "value", status),
        "cancel_action": getattr(action, "value", action),
        "cancel_reason": get("cancel_reason"), "stop_reason": get("stop_reason"),
        "error_kind": _error_kind(get("error")), "worker_id": get("worker_id"),
        "lease_expires_at": get("lease_expires_at"), "delayed": get("not_before") is not None,
    }


class StoreMachine(RuleBasedStateMachine):
    harness: ClassVar[Harness]

    def __init__(self) -> None:
        super().__init__()
        self.h = self.harness
        self.model = Model()
        self.clock = EPOCH
        # Every run id a step has used, in order, with the thread it was meant for
        # (ids of refused admissions stay here: runs that do not exist).
        self.thread_of: dict[str, str] = {}
        self.previous: Snapshot | None = None
        # Run ids a user's delete removed since the last check (no tombstone left).
        self.user_deleted: set[str] = set()

    @property
    def store(self) -> Store:
        return self.h.store

    def run(self, awaitable: Any) -> Any:
        return self.h.run(awaitable)

    @initialize()
    def empty_store(self) -> None:
        self.run(self.store.db.run(empty_tables))
        self.h.stats["sequences"] += 1

    # ---------------------------------------------------------------- helpers

    def _new_id(self, thread_id: str) -> str:
        run_id = str(uuid.UUID(int=(1 << 100) + len(self.thread_of)))
        self.thread_of[run_id] = thread_id
        return run_id

    def _pick(self, data: st.DataObject, preferred: list[str], label: str) -> str:
        """A run id: mostly one of `preferred` (if empty, of the runs and tombstones
        there are), sometimes one that names nothing: refused, deleted, or never used."""
        choices = preferred or [*self._ids(lambda r: True), *self.model.tombstones]
        if choices and data.draw(MOSTLY, label=f"{label}: an existing one?"):
            return data.draw(st.sampled_from(choices), label=label)
        gone = [run_id for run_id in self.thread_of
                if run_id not in self.model.runs and run_id not in self.model.tombstones]
        if gone and data.draw(st.booleans(), label=f"{label}: a gone one?"):
            return data.draw(st.sampled_from(gone), label=label)
        return self._new_id(data.draw(st.sampled_from(THREADS), label=f"{label}: thread"))

    def _ids(self, wanted: Any) -> list[str]:
        """Ids of the model's runs matching `wanted`, in creation order."""
        return [r.run_id for r in sorted(self.model.runs.values(), key=lambda r: r.seq)
                if wanted(r)]

    # ------------------------------------------------------------------ rules

    ADMISSION: ClassVar[dict[str, Any]] = {
        "thread_id": st.sampled_from(THREADS),
        "strategy": st.sampled_from(list(MultitaskStrategy)),
        "create": MOSTLY,
        "starter": st.one_of(st.none(), st.sampled_from(WORKERS)),
        # `after_seconds` far ahead: pending for the whole sequence, and kept by a
        # restart; False four times in five.
        "delayed": st.sampled_from([False, False, False, False, True]),
    }

    # Two rules admit, so that runs are created as often as the others act on them.
    @rule(**ADMISSION)
    def admit(self, thread_id: str, strategy: MultitaskStrategy, create: bool,
              starter: str | None, delayed: bool) -> None:
        self._admit(thread_id, strategy, create, starter, delayed)

    @rule(**ADMISSION)
    def admit_another(self, thread_id: str, strategy: MultitaskStrategy, create: bool,
                      starter: str | None, delayed: bool) -> None:
        self._admit(thread_id, strategy, create, starter, delayed)

    def _admit(self, thread_id: str, strategy: MultitaskStrategy, create: bool,
               starter: str | None, delayed: bool) -> None:
        run_id = self._new_id(thread_id)
        start = None if starter is None else (starter, self.clock + LEASE)
        not_before = utcnow() + datetime.timedelta(days=1) if delayed else None
        row = {**run_row(thread_id, strategy=strategy.value, not_before=not_before),
               "run_id": run_id}
        expected = self.model.admit(run_id, thread_id, strategy, create_thread=create,
                                    start=start, delayed=delayed)
        try:
            created = self.run(self.store.create_run(
                row, if_not_exists="create" if create else "reject",
                thread_defaults=thread_row(thread_id), start=start))
        except NotFound:
            assert expected.kind == "not_found", f"admission refused 404, model: {expected}"
            return
        except Conflict:
            assert expected.kind == "rejected", f"admission refused 409, model: {expected}"
            return
        assert expected.kind == "admitted", f"admitted, model: {expected}"
        assert created.run.run_id == run_id
        assert sorted(created.cancelled_running) == sorted(expected.cancelled_running)
        assert sorted(r.run_id for r in created.cancelled_pending) == sorted(
            expected.cancelled_pending)
        assert (created.started is not None) == expected.started
        self.h.stats[f"admitted {strategy.value}"] += 1

    @rule(worker=st.sampled_from(WORKERS), limit=st.integers(1, 3))
    def claim(self, worker: str, limit: int) -> None:
        expected = self.model.claim(worker, self.clock + LEASE, limit)
        claimed, _ = self.run(self.store.claim(worker, self.clock + LEASE, limit))
        assert claimed is not None, "a claim with no concurrent claimer lost a race"
        assert sorted(r.run_id for r in claimed) == sorted(expected)
        self.h.stats["claimed"] += len(claimed)

    def _cancel(self, thread_id: str, run_id: str, action: CancelAction,
                wait: bool) -> CancelOutcome:
        """One cancel, checked against the contract's table for the model's state."""
        expected = self.model.cancel_outcome(thread_id, run_id)
        self.model.cancel(thread_id, run_id, action, "user")
        result = self.run(self.store.cancel_run(thread_id, run_id, action, "user"))
        assert result.outcome is expected, (
            f"cancel({action.value}) of {run_id}: {result.outcome.value}, "
            f"the contract says {expected.value}")
        self.h.stats[f"cancel {expected.value}"] += 1
        # The status code the API answers is the contract's, for the model's state.
        assert cancel_http_status(result.outcome, wait=wait) == cancel_http_status(
            expected, wait=wait)
        answered = self.model.effective(thread_id, run_id)
        if answered is None:
            assert result.run is None
        else:
            # The run as stored now: an earlier cancel's action and reason if it won.
            assert result.run is not None
            assert _as_stored(result.run) == _stored(answered)
        return result.outcome

    @precondition(lambda self: self.model.runs or self.model.tombstones)
    @rule(data=st.data(), action=st.sampled_from(list(CancelAction)), wait=st.booleans(),
          again=st.one_of(st.none(), st.sampled_from(list(CancelAction))))
    def cancel(self, data: st.DataObject, action: CancelAction, wait: bool,
               again: CancelAction | None) -> None:
        """A user's cancel; `again`: repeated at once (a retry, a double click), with
        that action."""
        run_id = self._pick(data, [], "run to cancel")
        thread_id = self.thread_of[run_id]
        if not data.draw(MOSTLY, label="on its own thread?"):
            thread_id = data.draw(st.sampled_from(THREADS), label="thread")
        one = self._cancel(thread_id, run_id, action, wait)
        if again is None:
            return
        # The duplicate answers as the first did, the first action wins, nothing changes.
        before = self.run(self.store.db.run(read_snapshot))
        won = self.model.effective(thread_id, run_id)
        winner = None if won is None else won.cancel_action
        two = self._cancel(thread_id, run_id, again, wait)
        assert cancel_http_status(two, wait=wait) == cancel_http_status(one, wait=wait)
        assert (one in ACCEPTED_OUTCOMES) == (two in ACCEPTED_OUTCOMES)
        assert two is not CancelOutcome.RECORDED, "a second cancel was recorded"
        if one is CancelOutcome.RECORDED:
            assert winner is action
        now = self.model.effective(thread_id, run_id)
        assert (None if now is None else now.cancel_action) is winner, "the first cancel lost"
        assert self.run(self.store.db.run(read_snapshot)) == before, "a duplicate cancel wrote"
        self.h.stats["duplicate cancels"] += 1

    @precondition(lambda self: self.model.runs)
    @rule(data=st.data(), proposed=st.sampled_from(sorted(TRANSITIONS[RunStatus.RUNNING])),
          thread_status=st.sampled_from(LEFT_BY_A_RUN))
    def settle(self, data: st.DataObject, proposed: RunStatus,
               thread_status: ThreadStatus) -> None:
        running = self._ids(lambda r: r.status is RunStatus.RUNNING)
        run_id = self._pick(data, running, "run to settle")
        owner = getattr(self.model.runs.get(run_id), "worker_id", None)
        worker = owner if owner is not None and data.draw(
            MOSTLY, label="by its owner?") else data.draw(st.sampled_from(WORKERS), label="worker")
        reason, error_kind = PROPOSALS[proposed]
        settle = self.store.settle_run(
            run_id, thread_id=self.thread_of[run_id], worker_id=worker, proposed=proposed,
            stop_reason=reason,
            error=None if error_kind is None else {"error": error_kind, "message": "x"},
            thread_status=thread_status, values={"n": len(self.thread_of)}, interrupts={})
        if proposed not in FINISHED_WITHOUT_CANCEL:
            # `interrupted` is an edge of the contract, but only a recorded cancel takes it.
            with pytest.raises(ValueError, match="cannot end as"):
                self.run(settle)
            return
        expected = self.model.settle(run_id, worker, proposed, reason, error_kind,
                                     thread_status)
        result = self.run(settle)
        assert (result.changed, result.needs_rollback) == (
            expected.changed, expected.needs_rollback), f"settle: {result}, model {expected}"
        self.h.stats["settle " + ("changed" if result.changed else "rollback"
                                  if result.needs_rollback else "no-op")] += 1
        if result.changed:
            assert result.thread_busy == bool(self.model.active(self.thread_of[run_id]))

    @precondition(lambda self: self.model.runs)
    @rule(data=st.data(), thread_status=st.sampled_from([ThreadStatus.IDLE,
                                                         ThreadStatus.INTERRUPTED]))
    def complete_rollback(self, data: st.DataObject, thread_status: ThreadStatus) -> None:
        recorded = self._ids(lambda r: r.cancel_action is CancelAction.ROLLBACK
                             and r.status is RunStatus.RUNNING)
        run_id = self._pick(data, recorded, "rollback to complete")
        owner = getattr(self.model.runs.get(run_id), "worker_id", None)
        worker = owner if data.draw(MOSTLY, label="by its owner?") else data.draw(
            st.sampled_from(WORKERS), label="worker")
        expected = self.model.complete_rollback(run_id, worker, thread_status)
        removed = self.run(self.store.complete_rollback(
            run_id, self.thread_of[run_id], worker, {"rolled": True}, {}, thread_status))
        if expected is None:
            assert removed is None
        else:
            assert removed is not None and _as_stored(removed) == _stored(expected)
            self.h.stats["rollbacks completed"] += 1

    @rule(seconds=st.sampled_from([1, 3, 9]), renewing=st.sets(st.sampled_from(WORKERS)),
          reaper=st.sampled_from(WORKERS))
    def tick(self, seconds: int, renewing: set[str], reaper: str) -> None:
        """The workers in `renewing` renew their leases (each renewal also answers the
        cancels recorded on its runs), time passes (9 s is past a lease and its grace:
        the others lose their runs), and `reaper` reaps the expired leases, as every
        worker's lease keeper does."""
        for worker in sorted(renewing):
            expected = self.model.renew(worker, self.clock + LEASE)
            assert self.run(self.store.renew_leases(worker, self.clock + LEASE)) == expected
        self.clock += datetime.timedelta(seconds=seconds)
        deadline = self.clock - GRACE
        reaped = self.model.reap(deadline, reaper, self.clock + LEASE)
        finished, adopted = self.run(
            self.store.reap_expired(deadline, reaper, self.clock + LEASE))
        assert (sorted(r.run_id for r in finished), sorted(r.run_id for r in adopted)) == (
            sorted(reaped[0]), sorted(reaped[1]))
        self.h.stats["reaped"] += len(finished)
        self.h.stats["adopted"] += len(adopted)

    @precondition(lambda self: self.model.threads)
    @rule(data=st.data(), whole_thread=st.booleans())
    def delete(self, data: st.DataObject, whole_thread: bool) -> None:
        """A user deletes a run (or a rolled-back run's tombstone), or a whole thread
        with its runs and tombstones."""
        if whole_thread:
            self._delete_thread(data.draw(st.sampled_from(THREADS), label="thread to delete"))
            return
        finished = self._ids(lambda r: r.status not in ACTIVE) + list(self.model.tombstones)
        run_id = self._pick(data, finished, "run to delete")
        thread_id = self.thread_of[run_id]
        expected = self.model.delete_run(thread_id, run_id)
        if expected == "active":
            with pytest.raises(Conflict, match="cancel it before deleting it"):
                self.run(self.store.delete_run(thread_id, run_id))
            return
        deleted = self.run(self.store.delete_run(thread_id, run_id))
        if expected is None:
            assert deleted is None
            return
        assert deleted is not None and _as_stored(deleted) == _stored(expected)
        self.user_deleted.add(run_id)
        self.h.stats["deleted runs"] += 1

    def _delete_thread(self, thread_id: str) -> None:
        expected = self.model.delete_thread(thread_id)
        gone = self.run(self.store.delete_thread(thread_id))
        if expected is None:
            assert gone is None
            return
        assert gone is not None
        assert dict(gone) == {run_id: status.value for run_id, status in expected.items()}
        self.user_deleted.update(run_id for run_id, t in self.thread_of.items()
                                 if t == thread_id)
        self.h.stats["deleted threads"] += 1

    # Only with something to recover: with no active run a restart has nothing to decide.
    @precondition(lambda self: self.h.backend == "sqlite" and any(
        r.status in ACTIVE for r in self.model.runs.values()))
    @rule(reopen=st.booleans())
    def restart(self, reopen: bool) -> None:
        """The one SQLite process dies; the next start recovers, then completes the
        rollbacks handed back with the dead run's worker id (service.runs). `reopen`:
        as a new Store on the file, which also numbers runs on from the dead process's
        last one; else on the same Store, which keeps the step affordable (a new one
        costs a new engine and the migrations' check, ~0.1 s here) and recovers with
        the very same transaction."""
        if reopen:
            self.h.restart()
        expected, rollbacks = self.model.recover()
        finished, leftover = self.run(self.store.recover_after_restart())
        assert {row.run_id: previous for previous, row in finished} == {
            run_id: status.value for run_id, status in expected.items()}
        assert sorted(r.run_id for r in leftover) == sorted(rollbacks)
        # Between recovery and the completions (each its own transaction) the store
        # already agrees with the model: a thread whose rollback is left to complete
        # is still busy, whatever happens next.
        self.store_agrees_with_the_model()
        self.h.stats["restarts"] += 1
        self.h.stats["recovered"] += len(finished) + len(leftover)
        for run in leftover:
            assert self.model.complete_rollback(run.run_id, run.worker_id, ThreadStatus.IDLE)
            assert self.run(self.store.complete_rollback(
                run.run_id, run.thread_id, run.worker_id, None, {}, ThreadStatus.IDLE))

    # ------------------------------------------------------------- invariants

    @invariant()
    def store_agrees_with_the_model(self) -> None:
        rows, thread_statuses, tombs = self.run(self.store.db.run(read_snapshot))
        self.h.stats["checks"] += 1
        model = self.model
        assert set(rows) == set(model.runs), "the stored runs are not the model's"
        for run_id, run in model.runs.items():
            assert _as_stored(rows[run_id]) == _stored(run), f"run {run_id}"
        assert sorted(rows, key=lambda r: rows[r]["seq"]) == [
            r.run_id for r in sorted(model.runs.values(), key=lambda r: r.seq)
        ], "creation order"
        assert thread_statuses == {
            t: model.thread_status(t).value for t in model.threads}, "thread statuses"
        assert set(tombs) == set(model.tombstones), "tombstones"
        for run_id, (thread_id, copy) in tombs.items():
            assert thread_id == model.tombstones[run_id].thread_id
            assert _as_stored(Run.from_json(copy)) == _stored(model.tombstones[run_id])
        self._contract_holds(rows, thread_statuses, tombs)
        self.previous = (rows, thread_statuses, tombs)
        self.user_deleted = set()

    def _contract_holds(self, rows: dict[str, dict[str, Any]], thread_statuses: dict[str, str],
                        tombs: dict[str, Any]) -> None:
        """The contract on the stored rows alone, whatever the model says."""
        running = Counter(r["thread_id"] for r in rows.values()
                          if r["status"] == RunStatus.RUNNING.value)
        assert max(running.values(), default=0) <= 1, "two running runs on one thread"
        active = {r["thread_id"] for r in rows.values() if RunStatus(r["status"]) in ACTIVE}
        for thread_id, status in thread_statuses.items():
            assert (status == ThreadStatus.BUSY.value) == (thread_id in active), (
                f"thread {thread_id} is {status} with active runs: {thread_id in active}")
        for run_id, row in rows.items():
            status = RunStatus(row["status"])
            if status is RunStatus.INTERRUPTED:
                assert row["cancel_action"] is not None, f"{run_id} interrupted by no cancel"
                assert row["stop_reason"] == StopReason.CANCELLED.value
            # Why and when it stopped: recorded with the terminal status, never before.
            assert (row["stop_reason"] is not None) == (status in TERMINAL), run_id
            assert (row["ended_at"] is not None) == (status in TERMINAL), run_id
            assert (row["cancel_reason"] is None) == (row["cancel_action"] is None), run_id
            if status is RunStatus.RUNNING:
                assert None not in (row["started_at"], row["worker_id"],
                                    row["lease_expires_at"]), f"{run_id} running unleased"
            if status is RunStatus.PENDING:
                assert row["started_at"] is None and row["worker_id"] is None, run_id
        if self.previous is None:
            return
        before, _, tombs_before = self.previous
        assert set(tombs_before) - set(tombs) <= self.user_deleted, "a tombstone went"
        for run_id, old in before.items():
            was = RunStatus(old["status"])
            new = rows.get(run_id)
            if new is None:
                assert run_id in self.user_deleted or (was in ACTIVE and run_id in tombs), (
                    f"{run_id} ({was.value}) went without a rollback's tombstone")
                continue
            now = RunStatus(new["status"])
            assert now is was or now in TRANSITIONS[was], (
                f"{run_id}: {was.value} -> {now.value} is not an edge of the contract")
            if was in TERMINAL:
                assert new == old, f"terminal run {run_id} changed"
        for run_id, new in rows.items():
            if run_id not in before:
                assert RunStatus(new["status"]) in ACTIVE, f"{run_id} created terminal"


def _machine_for(harness: Harness) -> type[StoreMachine]:
    return type(f"StoreMachine_{harness.backend}", (StoreMachine,), {"harness": harness})


@pytest.mark.timeout(max(300, EXAMPLES * 2))
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_store_agrees_with_the_model(backend: str, tmp_path: Path,
                                         request: pytest.FixtureRequest) -> None:
    url = (f"sqlite:///{tmp_path / 'runlane.sqlite'}" if backend == "sqlite"
           else request.getfixturevalue("postgres_url"))
    started = time.monotonic()
    # Its own loop (not pytest-asyncio's, which a sync test leaves alone), not set as
    # the thread's current loop.
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        harness = Harness(backend, url, runner)
        try:
            run_state_machine_as_test(_machine_for(harness), settings=SETTINGS)
        finally:
            # PostgreSQL: the session's database is the fast tier's, left as found.
            runner.run(harness.store.db.run(empty_tables))
            runner.run(harness.store.close())
    stats = harness.stats
    sequences = stats.pop("sequences")
    steps = stats.pop("checks") - sequences
    print(f"\n{backend}: {sequences} sequences, {steps} steps, "
          f"{time.monotonic() - started:.1f} s; " + ", ".join(
              f"{what}: {count}" for what, count in sorted(stats.items())))
    assert sequences >= min(EXAMPLES, 10)

