"""Runs graphs as asyncio tasks: claims pending runs, streams their events, delivers
cancels, and finalizes each run through the store.

The executor never decides a final status on its own: it proposes one and the
store's compare-and-set decides, so a recorded cancel wins over completion even if
the graph's last step already returned.

Each run has two tasks: the *graph task* (which a cancel interrupts) and its
*supervisor* (which is never cancelled by a cancel request, waits for the graph
task, at most `cancel_grace` seconds once a cancel was delivered, and settles).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import logging
import time
import uuid
from typing import Any

from langgraph.pregel import Pregel
from langgraph.types import Command

from runlane.contract import (
    CancelAction,
    CancelOutcome,
    CancelReason,
    RunStatus,
    StopReason,
    ThreadStatus,
)
from runlane.observability import logs, metrics
from runlane.records import Run
from runlane.serde import JSONObject, to_jsonable, utcnow
from runlane.store import SettleResult, Store
from runlane.store.checkpoints import CheckpointBackend, RestorePoint
from runlane.store.database import DatabaseUnavailable
from runlane.streams.local import RunEventLog, StreamBroker

log = logging.getLogger("runlane.executor")

# Stream modes a client may ask for -> (langgraph stream mode, SSE event name).
STREAM_MODES: dict[str, tuple[str, str]] = {
    "values": ("values", "values"),
    "updates": ("updates", "updates"),
    "custom": ("custom", "custom"),
    "debug": ("debug", "debug"),
    "tasks": ("tasks", "tasks"),
    "checkpoints": ("checkpoints", "checkpoints"),
    "messages-tuple": ("messages", "messages"),
    "messages": ("messages", "messages"),
    "events": ("events", "events"),
}


def event_names_for(modes: list[str]) -> frozenset[str]:
    """The SSE event names a join filtered to `modes` lets through."""
    names = {"metadata", "error"}
    for mode in modes:
        names.add(STREAM_MODES[mode][1])
        if mode == "messages":
            names.update({"messages/partial", "messages/complete", "messages/metadata"})
    return frozenset(names)


class Executor:
    def __init__(
        self,
        *,
        store: Store,
        broker: StreamBroker,
        checkpoints: CheckpointBackend,
        graphs: dict[str, Pregel],
        max_concurrency: int = 64,
        cancel_grace: float = 5.0,
        lease_seconds: float = 10.0,
        worker_id: str | None = None,
    ) -> None:
        self.store = store
        self.broker = broker
        self.checkpoints = checkpoints
        self.graphs = graphs
        self.max_concurrency = max_concurrency
        self.cancel_grace = cancel_grace
        self.lease_seconds = lease_seconds
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:8]}"
        self._graph_tasks: dict[str, asyncio.Task[None]] = {}
        self._runs: dict[str, Run] = {}  # the runs executing here, as claimed
        self._abandon: dict[str, asyncio.Future[None]] = {}
        # When a cancel first reached each run's task (cancel-to-stop latency).
        self._cancel_seen: dict[str, float] = {}
        # Runs this worker lost its lease on: stopped without writing anything more.
        self._fenced: set[str] = set()
        # Runs whose supervisor is finalizing them: their own CAS (which checks this
        # worker still owns them) decides, so a lease renewal that no longer finds one
        # running (it has just ended) is no sign of a takeover.
        self.settling: set[str] = set()
        # Scale-out: forwards each run's events to Redis (None on one process).
        self.bridge: Any = None
        # Delivers webhooks of runs that end (see background/webhooks.py); woken when one ends here.
        self.webhooks: Any = None
        # The store items graphs see (store.items.ItemStore); a run made on behalf of an
        # owner gets the owner's view of it.
        self.item_store: Any = None
        # Seconds a stateless run's thread outlives the run (scale-out: see _settle).
        self.temporary_retention = 0.0
        self._housekeeping: set[asyncio.Task[None]] = set()
        self._supervisors: set[asyncio.Task[None]] = set()
        self._wakeup = asyncio.Event()
        self.recheck_seconds = 1.0
        self._rechecking = False
        # Slots promised to runs being admitted right now (see reserve_slot).
        self._reserved = 0
        # True while the dispatcher claims: it may be about to fill the free slots.
        self._claiming = False
        # The last claim filled every free slot (or found none): startable runs may be
        # waiting, so a slot coming free must wake the dispatcher.
        self._starved = False
        # One SQLite process: a run admitted while nothing waits may start in its own
        # admission (see reserve_slot); Runtime turns it on.
        self.starts_at_admission = False
        self._dispatcher: asyncio.Task[None] | None = None
        self._due_timer: asyncio.TimerHandle | None = None
        self._stopping = False
        # Final values of recent runs, for `wait` on stateless runs whose thread is
        # deleted as soon as they end.
        self.final_values: collections.OrderedDict[str, Any] = collections.OrderedDict()

    # -------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="runlane-dispatch")
        self.wake()
        self._recheck()

    def _recheck(self) -> None:
        """A safety net: claim at least every `recheck_seconds`, so a run that became
        startable without a wake-up (a lost notification on a cluster, a bug on one
        process: then logged) waits that long at worst, never forever."""
        if self._stopping:
            return
        if not self._wakeup.is_set():  # else a real wake-up is already on its way
            self.wake()
            self._rechecking = True
        asyncio.get_running_loop().call_later(self.recheck_seconds, self._recheck)

    @property
    def draining(self) -> bool:
        return self._stopping

    async def stop_claiming(self) -> None:
        """Claim no more runs; the runs executing here go on."""
        self._stopping = True
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher

    async def drain(self, grace: float) -> None:
        """Graceful shutdown: claim nothing more, give the runs executing here `grace`
        seconds to finish, then stop the rest through the contract's cancel path: a
        cancel with reason `shutdown` recorded by the store's CAS, delivered to the
        task, settled by its supervisor as `interrupted` (stop_reason `cancelled`,
        cancel_reason `shutdown`), at most `cancel_grace` later for a task that
        ignores cancellation.

        The same on PostgreSQL as on SQLite, deliberately: the contract has no way
        back from `running` to `pending` (a graph may have had side effects), so a
        run cannot be handed to another worker to start again; leaving it to the
        reaper would keep its thread busy for the lease and then report a misleading
        `worker_lost` error. A recorded `interrupted` is exact, immediate, keeps the
        checkpoints written so far (a new run can continue the thread), and ends the
        run's streams and waiters on every worker. Pending runs stay queued for the
        other workers (see Runtime for one SQLite process)."""
        await self.stop_claiming()
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
        """The last step (after `drain`): whatever still executes here, a run whose
        cancel could not be recorded (database down), is cancelled; its settle then
        proposes error/server_restarted (or, if the database is still down, a
        restart or a reaper finishes it)."""
        await self.stop_claiming()
        for task in list(self._graph_tasks.values()):
            task.cancel()
        for task in list(self._housekeeping):
            task.cancel()  # leftovers are deleted by any worker's housekeeping
        if self._supervisors:
            await asyncio.wait(self._supervisors, timeout=self.cancel_grace)

    def lease_until(self) -> datetime.datetime:
        return utcnow() + datetime.timedelta(seconds=self.lease_seconds)

    @property
    def local_run_ids(self) -> set[str]:
        return set(self._graph_tasks)

    def wake(self) -> None:
        self._rechecking = False  # woken for a reason (see _recheck)
        self._wakeup.set()

    # ----------------------------------------------------- start at admission

    def reserve_slot(self) -> bool:
        """A slot for a run being admitted now, so that its admission can also start
        it (Store.create_run's `start`), sparing a claim transaction and a dispatcher
        turn. Only when nothing else could want the slot first: on one SQLite process
        every event that can make a pending run startable (a run created or ended, a
        cancel, a delayed run coming due) wakes the dispatcher, so a dispatcher that
        is idle, not woken and not claiming means no run is waiting to start, and
        creation order is kept. Undo with `release_slot`, or use with `start_admitted`."""
        if (not self.starts_at_admission or self._stopping or self._claiming
                or self._starved or self._wakeup.is_set() or self._free_slots() <= 0):
            return False
        timer = self._due_timer
        if timer is not None and timer.when() <= asyncio.get_running_loop().time():
            return False  # a delayed run is due and its wake-up is late: it goes first
        self._reserved += 1
        return True

    def release_slot(self) -> None:
        """The admission did not start its run (or failed): the slot is free again."""
        self._reserved -= 1
        self.wake()

    def start_admitted(self, run: Run) -> None:
        """Execute a run its admission started (running, leased to this worker)."""
        self._reserved -= 1
        self._spawn(run)

    def _free_slots(self) -> int:
        """Slots neither executing a run nor promised to one being admitted."""
        return self.max_concurrency - len(self._supervisors) - self._reserved

    def _slot_matters(self) -> bool:
        """Whether a slot coming free may let a waiting run start: on a cluster always
        (other workers' runs), on one SQLite process only if the last claim left
        startable runs without a slot."""
        return self._starved or not self.starts_at_admission

    @property
    def active_count(self) -> int:
        return len(self._graph_tasks)

    async def _dispatch_loop(self) -> None:
        while not self._stopping:
            await self._wakeup.wait()
            self._wakeup.clear()
            rechecking, self._rechecking = self._rechecking, False
            self._claiming = True
            # Until a claim takes fewer runs than it could, some may wait for a slot.
            self._starved = True
            try:
                while (free := self._free_slots()) > 0:
                    claimed, due = await self.store.claim(self.worker_id, self.lease_until(),
                                                          free)
                    self._wake_when_due(due)
                    if claimed is None:  # raced another worker for a thread: soon again
                        asyncio.get_running_loop().call_later(0.02, self.wake)
                        break
                    if claimed and rechecking and self.starts_at_admission:
                        log.warning("startable run(s) %s found by the periodic recheck, not "
                                    "by a wake-up: a wake-up was missed",
                                    ", ".join(r.run_id for r in claimed))
                    for run in claimed:
                        self._spawn(run)
                    if len(claimed) < free:
                        self._starved = False  # every startable run has a slot
                        break
            except asyncio.CancelledError:
                raise
            except Exception:  # the store hiccupped: try again shortly
                log.exception("claiming runs failed; retrying")
                await asyncio.sleep(0.5)
                self.wake()
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
        self._due_timer = asyncio.get_running_loop().call_later(delay, self.wake)

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
        record: its stream's end is for whoever records it."""
        if self.bridge is not None:
            self.bridge.detach(run_id)
        self.broker.close(run_id)

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

    # -------------------------------------------------------------- execution

    def _spawn(self, run: Run) -> None:
        run_id = run.run_id
        logs.run_status(run, RunStatus.PENDING.value, cause="claimed", worker_id=self.worker_id)
        if run.started_at is not None:
            metrics.run_claimed((run.started_at - run.created_at).total_seconds())
        event_log = self.broker.open(run_id)
        if self.bridge is not None:
            # Scale-out: the creator wrote event 1 to Redis, not here; the same bytes
            # again keep this log's ids aligned with the run's stream (ids already in
            # Redis are skipped by the forwarder).
            if not event_log.frames:
                event_log.publish("metadata", {"run_id": run_id, "attempt": 1})
            self.bridge.forward(run_id, event_log)
        progress = RunProgress()
        context = logs.run_context(run)  # log records in the run's tasks name the run
        graph_task = asyncio.create_task(
            self._execute(run, event_log, progress), name=f"run-{run_id}", context=context
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
                if exc is not None:
                    error = {"error": type(exc).__name__, "message": str(exc)}
            elif not graph_task.done():
                log.warning("run %s ignored cancellation for %ss; abandoning its task",
                            run_id, self.cancel_grace)
            if run_id in self._fenced:
                self._fenced.discard(run_id)
                self._close_without_end(run_id)  # the run's new owner records its end
            else:
                self.settling.add(run_id)
                await self._settle_when_possible(run, error, event_log, graph_task, progress)
        except Exception:
            log.exception("finalizing run %s failed", run_id)
            self._close_without_end(run_id)
        finally:
            self.settling.discard(run_id)
            self._fenced.discard(run_id)
            self._graph_tasks.pop(run_id, None)
            self._runs.pop(run_id, None)
            self._cancel_seen.pop(run_id, None)
            self._abandon.pop(run_id, None)
            # Free the slot before waking the dispatcher: the done callback that also
            # discards runs only after the dispatcher has looked (and found no slot).
            self._supervisors.discard(asyncio.current_task())
            if self._slot_matters():
                # (Otherwise the slot matters to nobody; the run's end woke the
                # dispatcher already if it freed its thread for the next run.)
                self.wake()

    async def _settle_when_possible(self, *args: Any) -> None:
        """Settle, retrying while the database is unreachable: a finished run keeps its
        outcome through a database restart. Past the lease, another worker reaps the
        run, and this worker's late write is refused by its fence."""
        delay = 0.1
        deadline = time.monotonic() + max(self.lease_seconds * 3, 10.0)
        while True:
            try:
                await self._settle(*args)
                return
            except DatabaseUnavailable:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _settle(
        self, run: Run, error: Any, event_log: RunEventLog, graph_task: asyncio.Task[None],
        progress: RunProgress,
    ) -> None:
        run_id, thread_id = run.run_id, run.thread_id
        graph = self.graphs.get(run.graph_id)
        completed = graph_task.done() and not graph_task.cancelled() and error is None
        interrupts: JSONObject
        if completed and progress.knows_final_state(run, graph):
            values, interrupts, paused = to_jsonable(progress.last_values), {}, False
        else:
            values, interrupts, paused = await thread_state(graph, thread_id)
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
        )
        if result.changed:
            assert result.run is not None  # the run this call made terminal
            self._finished(result.run, thread_busy=result.thread_busy)
        if result.needs_rollback:
            await self.checkpoints.delete_run(thread_id, run_id, progress.restore)
            values, interrupts, paused = await thread_state(graph, thread_id)
            removed = await self.store.complete_rollback(
                run_id, thread_id, self.worker_id, values, interrupts,
                ThreadStatus.INTERRUPTED if paused else ThreadStatus.IDLE,
            )
            if removed is not None:
                self._finished(removed, rolled_back=True)
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

    async def discard_temporary_thread(self, thread_id: str) -> None:
        """Delete a finished stateless run's thread (on_completion=delete)."""
        if self.temporary_retention:
            # Scale-out: a `wait` on another worker still reads the result.
            task = asyncio.create_task(self._delete_thread_later(thread_id))
            self._housekeeping.add(task)
            task.add_done_callback(self._housekeeping.discard)
        else:
            await self._delete_thread(thread_id)

    def _finished(self, run: Run, rolled_back: bool = False, thread_busy: bool = True) -> None:
        """This worker's CAS made the run terminal: log it once, measure it, and wake
        the dispatcher now if another run of the thread may start (see reserve_slot)."""
        if thread_busy or self._slot_matters():
            self.wake()
        if run.webhook and not rolled_back and self.webhooks is not None:
            self.webhooks.wake()
        logs.run_status(run, RunStatus.RUNNING.value,
                        rolled_back=True if rolled_back else None)
        seen = self._cancel_seen.get(run.run_id)
        started, ended = run.started_at, run.ended_at
        metrics.run_finished(
            run.status.value,
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

    # Over the complexity ceiling: a run's execution, start to end (issue 11 splits runner.py).
    async def _execute(self, run: Run, event_log: RunEventLog, progress: RunProgress) -> None:  # noqa: C901
        graph = self.graphs.get(run.graph_id)
        if graph is None:
            raise LookupError(f"graph {run.graph_id!r} is not served by this server")
        if run.owner is not None and self.item_store is not None:
            # The run's nodes see only its owner's store items (see owner_scope).
            graph = graph.copy(update={"store": self.item_store.for_owner(run.owner)})
        kwargs = run.kwargs
        config = build_config(run)
        modes: list[str] = kwargs.get("stream_mode") or ["values"]
        subgraphs = bool(kwargs.get("stream_subgraphs"))
        command = kwargs.get("command")
        graph_input: Any = Command(**command) if command else kwargs.get("input")
        if graph_input is None or command:
            # Resuming or continuing: the graph writes onto a checkpoint that predates
            # this run. Remember its pending writes so a rollback can restore them.
            progress.restore = await self.checkpoints.restore_point(
                run.thread_id, config["configurable"].get("checkpoint_id")
            )
        options: JSONObject = {}
        for key in ("interrupt_before", "interrupt_after", "durability"):
            if kwargs.get(key) is not None:
                options[key] = kwargs[key]
        if kwargs.get("context") is not None:
            options["context"] = kwargs["context"]
        lg_modes = list(dict.fromkeys(STREAM_MODES[m][0] for m in modes if m != "events"))
        if "events" in modes:
            await self._stream_events(graph, graph_input, config, lg_modes, subgraphs,
                                      options, event_log)
            return
        # "values" is always streamed: its last root chunk is the final state, which
        # spares reading the state back from the checkpointer when the run ends.
        publish_values = "values" in lg_modes
        if not publish_values:
            lg_modes.append("values")
        # Modes and options are the run's validated kwargs, plain strings and a dict:
        # langgraph's overloads want literals, so none matches (the call is right).
        async for chunk in graph.astream(  # type: ignore[call-overload]
            graph_input, config, stream_mode=lg_modes, subgraphs=subgraphs, **options
        ):
            if subgraphs:
                namespace, mode, data = chunk
            else:
                namespace, (mode, data) = (), chunk
            if mode == "values" and not namespace:
                progress.saw(data)
                if not publish_values:
                    continue
            _publish(event_log, mode, namespace, data)

    async def _stream_events(
        self, graph: Pregel, graph_input: Any, config: JSONObject, lg_modes: list[str],
        subgraphs: bool, options: JSONObject, event_log: RunEventLog,
    ) -> None:
        root_id: str | None = None
        # As for astream above: no overload matches the run's plain kwargs.
        async for event in graph.astream_events(  # type: ignore[call-overload]
            graph_input, config, version="v2", stream_mode=lg_modes or ["values"],
            subgraphs=subgraphs, **options,
        ):
            if root_id is None:
                root_id = event.get("run_id")
            event_log.publish("events", event)
            if (lg_modes and event.get("event") == "on_chain_stream"
                    and event.get("run_id") == root_id):
                chunk = event["data"].get("chunk")
                if subgraphs and isinstance(chunk, tuple) and len(chunk) == 3:
                    _publish(event_log, chunk[1], chunk[0], chunk[2])
                elif isinstance(chunk, tuple) and len(chunk) == 2:
                    _publish(event_log, chunk[0], (), chunk[1])


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


class RunProgress:
    """What the executor learned from a run's own stream."""

    __slots__ = ("last_values", "restore", "saw_interrupt", "saw_values")

    def __init__(self) -> None:
        self.restore: RestorePoint | None = None
        self.last_values: Any = None
        self.saw_values = False
        self.saw_interrupt = False

    def saw(self, values: Any) -> None:
        if isinstance(values, dict) and "__interrupt__" in values:
            self.saw_interrupt = True
        else:
            self.last_values = values  # converted once, when the run ends
            self.saw_values = True

    def knows_final_state(self, run: Run, graph: Pregel | None) -> bool:
        """True when the last streamed values are the thread's final state and the
        graph did not pause (no interrupt(), no interrupt_before/after anywhere)."""
        kwargs = run.kwargs
        return (
            graph is not None
            and self.saw_values
            and not self.saw_interrupt
            and not kwargs.get("interrupt_before")
            and not kwargs.get("interrupt_after")
            and not graph.interrupt_before_nodes
            and not graph.interrupt_after_nodes
        )


async def thread_state(graph: Pregel | None, thread_id: str) -> tuple[Any, JSONObject, bool]:
    """(values, interrupts by task id, paused) of the thread's latest checkpoint."""
    if graph is None:
        return None, {}, False
    try:
        state = await graph.aget_state({"configurable": {"thread_id": thread_id}})
    except Exception:
        log.exception("reading the state of thread %s failed", thread_id)
        return None, {}, False
    interrupts: JSONObject = {}
    for task in state.tasks:
        if task.interrupts:
            interrupts[task.id] = to_jsonable(list(task.interrupts))
    return to_jsonable(state.values), interrupts, bool(state.next)


def _publish(event_log: RunEventLog, mode: str, namespace: tuple[str, ...], data: Any) -> None:
    name = "messages" if mode == "messages" else mode
    if namespace:
        name = f"{name}|{'|'.join(namespace)}"
    if mode == "messages" and isinstance(data, tuple):
        data = list(data)
    event_log.publish(name, data)


def build_config(run: Run) -> JSONObject:
    kwargs = run.kwargs
    config: JSONObject = dict(kwargs.get("config") or {})
    configurable: JSONObject = dict(config.get("configurable") or {})
    checkpoint = kwargs.get("checkpoint") or {}
    if kwargs.get("checkpoint_id"):
        checkpoint = {**checkpoint, "checkpoint_id": kwargs["checkpoint_id"]}
    configurable.update({k: v for k, v in checkpoint.items() if k != "thread_id"})
    configurable.update(
        thread_id=run.thread_id,
        run_id=run.run_id,
        graph_id=run.graph_id,
        assistant_id=run.assistant_id,
    )
    config["configurable"] = configurable
    config["metadata"] = {**(config.get("metadata") or {}), **(run.metadata or {})}
    config["run_id"] = uuid.UUID(run.run_id)
    return config
