"""Each run's supervisor, and the ending of runs: settling through the store's
compare-and-set, and completing a recorded rollback.

Each run executing here has two tasks: the *graph task* (which a cancel interrupts)
and its *supervisor* (which is never cancelled by a cancel request, waits for the
graph task, at most `cancel_grace` seconds once a cancel was delivered, and settles).

The executor never decides a final status on its own: it proposes one and the
store's compare-and-set decides, so a recorded cancel wins over completion even if
the graph's last step already returned.

`complete_rollback` is the one way a recorded rollback is finished: by the run's own
supervisor, by a worker adopting the rollback of a dead worker's run (leases.py),
and by a restart on SQLite (service.Runlane.recover_after_restart).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import datetime
import logging
import time
import uuid
from typing import Any

from runlane.backoff import Backoff
from runlane.contract import (
    CancelAction,
    CancelOutcome,
    CancelReason,
    RunStatus,
    StopReason,
    ThreadStatus,
)
from runlane.errors import RunFenced
from runlane.executor.dispatch import DispatchSignal
from runlane.executor.execution import GraphRunner, RunProgress, read_thread_state
from runlane.executor.node_threads import NodeThreads
from runlane.graph_factories import ServedGraph
from runlane.observability import logs, metrics
from runlane.records import Run
from runlane.serde import JSONObject, to_jsonable, utcnow
from runlane.store import SettleResult, Store
from runlane.store.checkpoints import CheckpointBackend, RestorePoint
from runlane.store.database import DatabaseUnavailable
from runlane.streams.local import RunEventLog, StreamBroker
from runlane.streams.transport import RunEventTransport

log = logging.getLogger("runlane.executor")



@dataclasses.dataclass(frozen=True)
class CompletedRollback:
    """What finishing a recorded rollback did."""

    removed: Run | None  # the run as removed, or None: the CAS found nothing to remove
    values: Any  # the thread's state after the rollback
    interrupts: JSONObject


class Supervision:
    def __init__(
        self,
        *,
        store: Store,
        broker: StreamBroker,
        checkpoints: CheckpointBackend,
        graphs: dict[str, ServedGraph],
        runner: GraphRunner,
        transport: RunEventTransport,
        signal: DispatchSignal,
        webhook_owed: asyncio.Event,
        worker_id: str,
        cancel_grace: float,
        lease_seconds: float,
        temporary_retention: float,
        node_threads: NodeThreads,
        abandoned_node_grace: float,
    ) -> None:
        self.store = store
        self.broker = broker
        self.checkpoints = checkpoints
        self.graphs = graphs
        self.runner = runner
        self.transport = transport
        self.signal = signal
        # Webhook deliveries (see background/webhooks.py): set when a run owing one
        # ends here.
        self.webhook_owed = webhook_owed
        self.worker_id = worker_id
        self.cancel_grace = cancel_grace
        self.lease_seconds = lease_seconds
        # Seconds a stateless run's thread outlives the run (scale-out: see _settle).
        self.temporary_retention = temporary_retention
        # Which runs' nodes still execute in a thread, and how long a stopped run's
        # thread waits for them before its next run may start (see _abandoned).
        self.node_threads = node_threads
        self.abandoned_node_grace = abandoned_node_grace
        self._graph_tasks: dict[str, asyncio.Task[None]] = {}
        self._runs: dict[str, Run] = {}  # the rows of the runs executing here, as claimed
        self._abandon: dict[str, asyncio.Future[None]] = {}
        # What a run's graph (or graph factory) raised, until its end is logged.
        self._raised: dict[str, BaseException] = {}
        # When a cancel first reached each run's task (cancel-to-stop latency).
        self._cancel_seen: dict[str, float] = {}
        # Runs this worker lost its lease on: stopped without writing anything more.
        self._fenced: set[str] = set()
        # When each run's lease was set by its claim (time.monotonic, taken before the
        # claim was sent): a run claimed after the worker's last lease renewal holds
        # its lease from then (LeaseKeeper.lease_held).
        self._leased_at: dict[str, float] = {}
        # Runs whose supervisor is finalizing them: their own CAS (which checks this
        # worker still owns them) decides, so a lease renewal that no longer finds one
        # running (it has just ended) is no sign of a takeover.
        self.settling: set[str] = set()
        self._housekeeping: set[asyncio.Task[None]] = set()
        self._supervisors: set[asyncio.Task[None]] = set()
        # Final values of recent runs, for `wait` on stateless runs whose thread is
        # deleted as soon as they end.
        self.final_values: collections.OrderedDict[str, Any] = collections.OrderedDict()

    @property
    def occupied_slots(self) -> int:
        """Runs executing here or still settling: each holds a slot."""
        return len(self._supervisors)

    @property
    def local_run_ids(self) -> set[str]:
        return set(self._graph_tasks)

    @property
    def fenced_run_ids(self) -> set[str]:
        return set(self._fenced)

    def leased_at(self, run_id: str) -> float | None:
        return self._leased_at.get(run_id)

    @property
    def active_count(self) -> int:
        return len(self._graph_tasks)

    # -------------------------------------------------------------- shutdown

    async def drain(self, grace: float) -> None:
        """The runs executing here get `grace` seconds to finish; the rest are
        cancelled through the contract's cancel path (see Executor.drain)."""
        if self._supervisors:
            await asyncio.wait(set(self._supervisors), timeout=grace)
        # Runs whose graph already returned are only settling: their outcome stands.
        leftover = [self._runs[run_id] for run_id, task in self._graph_tasks.items()
                    if run_id in self._runs and not task.done()]
        if not leftover:
            if self._supervisors:
                await asyncio.wait(set(self._supervisors), timeout=self.cancel_grace + 1)
            return
        log.warning("shutdown: %d run(s) still active after %.1fs: interrupting them",
                    len(leftover), grace)
        for run in leftover:
            try:
                result = await self.store.cancel_run(
                    run.thread_id, run.run_id, CancelAction.INTERRUPT,
                    CancelReason.SHUTDOWN.value)
            except Exception as exc:  # noqa: BLE001 - a restart or a reaper settles it
                log.error("shutdown: could not record the cancel of run %s (%s)",
                          run.run_id, exc)
                continue
            if result.outcome in (CancelOutcome.RECORDED, CancelOutcome.ALREADY_RECORDED):
                self.deliver_cancel(run.run_id)
        if self._supervisors:
            await asyncio.wait(set(self._supervisors), timeout=self.cancel_grace + 1)

    async def stop(self) -> None:
        """Cancel whatever still executes here (see Executor.stop)."""
        for task in list(self._graph_tasks.values()):
            task.cancel()
        for task in list(self._housekeeping):
            task.cancel()  # leftovers are deleted by any worker's housekeeping
        if self._supervisors:
            await asyncio.wait(self._supervisors, timeout=self.cancel_grace)

    # ------------------------------------------------------------------ cancel

    def deliver_cancel(self, run_id: str) -> None:
        """Interrupt a run's graph task (its cancel is already recorded in the store)."""
        task = self._graph_tasks.get(run_id)
        if task is None or task.done() or run_id in self._cancel_seen:
            # Once is enough: cancelling again (every lease renewal re-reports a
            # recorded cancel) would interrupt the task's own cleanup, e.g. a driver
            # cancelling its query, which then drops its connection.
            return
        self._cancel_seen[run_id] = time.monotonic()
        task.cancel()
        abandon = self._abandon.get(run_id)
        if abandon is not None:
            def abandon_now() -> None:
                if not abandon.done():
                    abandon.set_result(None)

            asyncio.get_running_loop().call_later(self.cancel_grace, abandon_now)

    def _close_without_end(self, run_id: str) -> None:
        """Close the local log of a run whose terminal status this worker did not
        record: its stream's end is for whoever records it. Its followers here are
        cut, so their clients resume (elsewhere) with Last-Event-ID; ending them
        cleanly lost the events the run's recorder published after (the reaper's
        error event: found by `make soak`)."""
        self.transport.detach(run_id)
        self.broker.cut(run_id)

    def fence(self, run_id: str) -> None:
        """Stop a run this worker may no longer write for (its lease is gone)."""
        task = self._graph_tasks.get(run_id)
        if task is None:
            return
        self._fenced.add(run_id)
        task.cancel()
        abandon = self._abandon.get(run_id)
        if abandon is not None and not abandon.done():
            abandon.set_result(None)

    # ------------------------------------------------------------- supervising

    def spawn(self, run: Run, leased_at: float | None = None) -> None:
        """Start executing a run this worker just started (claimed or admitted).
        `leased_at`: when its claim set its lease (time.monotonic; default now)."""
        run_id = run.run_id
        self._leased_at[run_id] = time.monotonic() if leased_at is None else leased_at
        logs.run_status(run, RunStatus.PENDING.value, cause="claimed", worker_id=self.worker_id)
        if run.started_at is not None:
            metrics.run_claimed((run.started_at - run.created_at).total_seconds())
        event_log = self.broker.open(run_id)
        self.transport.relay(run_id, event_log)
        progress = RunProgress()
        context = logs.run_context(run)  # log records in the run's tasks name the run
        graph_task = asyncio.create_task(
            self.runner.execute(run, event_log, progress), name=f"run-{run_id}",
            context=context,
        )
        self._graph_tasks[run_id] = graph_task
        self._runs[run_id] = run
        self._abandon[run_id] = asyncio.get_running_loop().create_future()
        supervisor = asyncio.create_task(
            self._supervise(run, graph_task, event_log, progress), context=context.copy())
        self._supervisors.add(supervisor)
        supervisor.add_done_callback(self._supervisors.discard)

    async def _supervise(
        self, run: Run, graph_task: asyncio.Task[None], event_log: RunEventLog,
        progress: RunProgress,
    ) -> None:
        run_id = run.run_id
        abandon = self._abandon[run_id]
        try:
            await asyncio.wait({graph_task, abandon}, return_when=asyncio.FIRST_COMPLETED)
            error: Any = None
            if graph_task.done() and not graph_task.cancelled():
                exc = graph_task.exception()
                if isinstance(exc, RunFenced):
                    # Its checkpoint write was refused (or its restore point): this
                    # worker may no longer write for it. Stopped without writing.
                    log.warning("run %s fenced: %s", run_id, exc)
                    self._fenced.add(run_id)
                elif exc is not None:
                    error = {"error": type(exc).__name__, "message": str(exc)}
                    # The status-change log line carries the traceback (see _finished).
                    self._raised[run_id] = exc
            elif not graph_task.done():
                log.warning("run %s ignored cancellation for %ss; abandoning its task",
                            run_id, self.cancel_grace)
            abandoned = await self._abandoned(run)
            if run_id in self._fenced:
                self._fenced.discard(run_id)
                self._close_without_end(run_id)  # the run's new owner records its end
            else:
                self.settling.add(run_id)
                await self._settle_when_possible(run, error, event_log, graph_task, progress,
                                                 abandoned)
        except Exception:
            log.exception("finalizing run %s failed", run_id)
            self._close_without_end(run_id)
        finally:
            self.settling.discard(run_id)
            self._fenced.discard(run_id)
            self._leased_at.pop(run_id, None)
            self._graph_tasks.pop(run_id, None)
            self._runs.pop(run_id, None)
            self._cancel_seen.pop(run_id, None)
            self._abandon.pop(run_id, None)
            self._raised.pop(run_id, None)
            # Free the slot before waking the dispatcher: the done callback that also
            # discards runs only after the dispatcher has looked (and found no slot).
            self._supervisors.discard(asyncio.current_task())
            if self.signal.slot_matters():
                # (Otherwise the slot matters to nobody; the run's end woke the
                # dispatcher already if it freed its thread for the next run.)
                self.signal.wake()

    # ---------------------------------------------------------------- settling

    async def _settle_when_possible(self, *args: Any) -> None:
        """Settle, retrying while the database is unreachable: a finished run keeps its
        outcome through a database restart. Past the lease, another worker reaps the
        run, and this worker's late write is refused by its fence."""
        backoff = Backoff("settling a run", log)
        deadline = time.monotonic() + max(self.lease_seconds * 3, 10.0)
        while True:
            try:
                await self._settle(*args)
                backoff.succeeded()
                return
            except DatabaseUnavailable as exc:
                if time.monotonic() > deadline:
                    raise
                await backoff.wait(exc)

    async def _abandoned(self, run: Run) -> dict[concurrent.futures.Future[Any], str]:
        """The run's nodes still executing in a thread now that its graph task is done
        (or abandoned): a synchronous node, which a cancel (or a sibling node's error)
        does not stop. From now on none of their checkpoint writes lands: the run's
        end is about to be recorded with the thread's state as it is."""
        jobs = self.node_threads.executing(run.run_id)
        if jobs:
            await self.checkpoints.refuse_writes_of(run.thread_id, run.run_id)
            log.warning("run %s stopped while node(s) %s still execute in a thread: "
                        "abandoned; their writes are dropped, and the thread's next run "
                        "waits for them (at most %.1fs)", run.run_id,
                        ", ".join(sorted(set(jobs.values()))), self.abandoned_node_grace)
        return jobs

    def _hold_for(self, abandoned: dict[concurrent.futures.Future[Any], str],
                  ) -> tuple[str, datetime.datetime] | None:
        """The thread hold a run ending with abandoned nodes takes (token, until): past
        `until` (a worker that died meanwhile) it lapses by itself."""
        if not abandoned or self.abandoned_node_grace <= 0:
            return None
        return (str(uuid.uuid4()),
                utcnow() + datetime.timedelta(seconds=self.abandoned_node_grace + 1.0))

    def _release_when_returned(self, run: Run,
                               abandoned: dict[concurrent.futures.Future[Any], str],
                               token: str) -> None:
        task = asyncio.create_task(self._release_hold(run, abandoned, token))
        self._housekeeping.add(task)
        task.add_done_callback(self._housekeeping.discard)

    async def _release_hold(self, run: Run,
                            abandoned: dict[concurrent.futures.Future[Any], str],
                            token: str) -> None:
        """Release the thread of a run that ended with abandoned nodes once they have
        returned, or after the grace: its next run may start."""
        started = time.monotonic()
        returned = await self.node_threads.wait(abandoned, self.abandoned_node_grace)
        metrics.node_abandoned(returned)
        nodes = ", ".join(sorted(set(abandoned.values())))
        if returned:
            log.info("run %s: abandoned node(s) %s returned after %.1fs; thread %s released",
                     run.run_id, nodes, time.monotonic() - started, run.thread_id)
        else:
            log.warning("run %s: abandoned node(s) %s still executing after %.1fs "
                        "(RUNLANE_ABANDONED_NODE_GRACE); thread %s released, their writes "
                        "stay dropped", run.run_id, nodes, self.abandoned_node_grace,
                        run.thread_id)
        try:
            await self.store.release_thread(run.thread_id, token)
        except Exception as exc:  # noqa: BLE001 - the hold lapses by itself (its `until`)
            log.warning("releasing thread %s failed (%s); its hold lapses by itself",
                        run.thread_id, exc)
        self.signal.wake()

    async def _settle(
        self, run: Run, error: Any, event_log: RunEventLog, graph_task: asyncio.Task[None],
        progress: RunProgress, abandoned: dict[concurrent.futures.Future[Any], str],
    ) -> None:
        run_id, thread_id = run.run_id, run.thread_id
        # Nodes still executing in a thread: the thread stays held for the next run.
        hold = self._hold_for(abandoned)
        graph = progress.graph
        completed = graph_task.done() and not graph_task.cancelled() and error is None
        interrupts: JSONObject
        if completed and progress.knows_final_state(run, graph):
            values, interrupts, paused = to_jsonable(progress.last_values), {}, False
        else:
            values, interrupts, paused = await read_thread_state(
                self.graphs.get(run.graph_id), thread_id, graph)
        if error is not None:
            proposed, reason = RunStatus.ERROR, StopReason.GRAPH_ERROR
            thread_status = ThreadStatus.ERROR
        else:
            proposed, reason = RunStatus.SUCCESS, StopReason.COMPLETED
            thread_status = ThreadStatus.INTERRUPTED if paused else ThreadStatus.IDLE
        if graph_task.cancelled() and error is None:
            # Cancelled without a recorded cancel can only be shutdown: the store
            # keeps a recorded cancel's `interrupted`, otherwise this is an error.
            proposed, reason = RunStatus.ERROR, StopReason.SERVER_RESTARTED
            thread_status = ThreadStatus.IDLE
            error = {"error": "Shutdown", "message": "the server stopped while this run was active"}
        # The outcome is recorded only once the checkpoints it reports are durable.
        self.checkpoints.commit_now()
        result: SettleResult = await self.store.settle_run(
            run_id,
            thread_id=thread_id,
            worker_id=self.worker_id,
            proposed=proposed,
            stop_reason=reason,
            error=error,
            thread_status=thread_status,
            values=values,
            interrupts=interrupts,
            restore_kept=progress.restore is not None,
            hold=hold,
        )
        held = result.changed
        if result.changed:
            assert result.run is not None  # the run this call made terminal
            self._finished(result.run, thread_busy=result.thread_busy)
        if result.needs_rollback:
            rollback = await self.complete_rollback(run, worker_id=self.worker_id,
                                                    restore=progress.restore, hold=hold)
            values, interrupts = rollback.values, rollback.interrupts
            held = rollback.removed is not None
            if rollback.removed is not None:
                self.signal.wake()  # the run's thread is free for its next run
                self._measure_end(rollback.removed)
        if hold is not None and held:
            self._release_when_returned(run, abandoned, hold[0])
        settled = result.run
        if settled is not None and settled.status is RunStatus.ERROR and error:
            event_log.publish("error", error)
        self._remember_values(run_id, values, interrupts, settled)
        # Waiters for the end (cancel with wait=true, join) get the terminal row this
        # settle recorded with their wake-up, instead of reading it back.
        self.broker.close(run_id, final=settled if result.changed else None)
        owes_webhook = result.changed and bool(settled and settled.webhook)
        if deletes_thread_when_done(run.kwargs) and not owes_webhook:
            # (With a webhook, the thread goes once the delivery is over: its payload
            # carries the thread's values.)
            await self.discard_temporary_thread(thread_id)

    async def complete_rollback(
        self, run: Run, *, worker_id: str | None, restore: RestorePoint | None = None,
        cause: str | None = None, level: int = logging.INFO,
        taken_over_by: str | None = None, hold: tuple[str, datetime.datetime] | None = None,
    ) -> CompletedRollback:
        """Finish a recorded rollback: delete the checkpoints the run wrote (putting
        back the pending writes of `restore`, the point it started from: the one the
        run's own supervisor holds, else the copy kept in the store, which a worker
        adopting a dead worker's run and a restart read), then remove the run,
        leaving its tombstone and the thread's state as it is now, through the
        store's CAS fenced by `worker_id` (the run's owner), which also deletes the
        kept restore point. Logs the change with `cause` (default: the run's stop
        reason), `taken_over_by` and `level`. `hold`: the thread hold its removal
        takes (see _hold_for)."""
        thread_id = run.thread_id
        if restore is None:
            kept = await self.store.restore_point_of(run.run_id)
            restore = None if kept is None else RestorePoint.from_json(kept)
        await self.checkpoints.delete_run(thread_id, run.run_id, restore)
        values, interrupts, paused = await read_thread_state(self.graphs.get(run.graph_id),
                                                             thread_id)
        removed = await self.store.complete_rollback(
            run.run_id, thread_id, worker_id, values, interrupts,
            ThreadStatus.INTERRUPTED if paused else ThreadStatus.IDLE, hold,
        )
        if removed is not None:
            logs.run_status(removed, run.status.value, cause=cause, rolled_back=True,
                            taken_over_by=taken_over_by, level=level)
        return CompletedRollback(removed, values, interrupts)

    async def discard_temporary_thread(self, thread_id: str) -> None:
        """Delete a finished stateless run's thread (on_completion=delete)."""
        if self.temporary_retention:
            # Scale-out: a `wait` on another worker still reads the result.
            task = asyncio.create_task(self._delete_thread_later(thread_id))
            self._housekeeping.add(task)
            task.add_done_callback(self._housekeeping.discard)
        else:
            await self._delete_thread(thread_id)

    def _finished(self, row: Run, thread_busy: bool) -> None:
        """This worker's CAS made the run terminal: log it once, measure it, and wake
        the dispatcher now if another run of the thread may start (see reserve_slot)."""
        if thread_busy or self.signal.slot_matters():
            self.signal.wake()
        if row.webhook:
            self.webhook_owed.set()
        raised = self._raised.pop(row.run_id, None) if row.status is RunStatus.ERROR else None
        logs.run_status(row, RunStatus.RUNNING.value, exc=raised,
                        level=logging.ERROR if raised is not None else logging.INFO)
        self._measure_end(row)

    def _measure_end(self, row: Run) -> None:
        seen = self._cancel_seen.get(row.run_id)
        started, ended = row.started_at, row.ended_at
        metrics.run_finished(
            row.status.value,
            (ended - started).total_seconds() if started and ended else None,
            time.monotonic() - seen if seen is not None else None,
        )

    async def _delete_thread_later(self, thread_id: str) -> None:
        await asyncio.sleep(self.temporary_retention)
        await self._delete_thread(thread_id)

    async def _delete_thread(self, thread_id: str) -> None:
        await self.store.delete_thread(thread_id)
        await self.checkpoints.delete_thread(thread_id)

    def _remember_values(self, run_id: str, values: Any, interrupts: JSONObject,
                         settled: Run | None) -> None:
        self.final_values[run_id] = wait_result(settled, values, interrupts)
        while len(self.final_values) > 512:
            self.final_values.popitem(last=False)


def deletes_thread_when_done(kwargs: JSONObject) -> bool:
    """Whether a run with these kwargs is a stateless run whose thread goes with it
    (on_completion=delete, the default)."""
    return bool(kwargs.get("temporary")) and kwargs.get("on_completion", "delete") == "delete"


def wait_result(run: Run | None, values: Any, interrupts: JSONObject) -> Any:
    """What `wait` and `join` answer for a finished run: its error, or the thread's
    values with the pending interrupts under `__interrupt__`."""
    if run is not None and run.status is RunStatus.ERROR and run.error:
        return {"__error__": run.error}
    result = values if values is not None else {}
    if interrupts and isinstance(result, dict):
        result = {**result, "__interrupt__": [i for group in interrupts.values() for i in group]}
    return result
