"""Use cases: one method per thing a client can ask for. No HTTP here, and no SQL.

The service validates meaning (does this assistant exist, is this strategy allowed),
asks the store to change state, and tells the executor and the stream broker what
changed. Outcomes go back to the API layer, which maps them to status codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any, NoReturn

from runlane import run_context
from runlane.contract import (
    TERMINAL,
    CancelAction,
    CancelOutcome,
    CancelReason,
    RunStatus,
    StopReason,
    ThreadStatus,
    cancel_http_status,
    event_names_for,
)
from runlane.errors import BadRequest, BatchItemError, ConfigError, NotFound
from runlane.executor.executor import Executor
from runlane.executor.supervision import deletes_thread_when_done, wait_result
from runlane.graph_factories import ServedGraph
from runlane.graphs import default_assistant_id
from runlane.observability import logs, metrics
from runlane.owners import Filters, Owner, matches
from runlane.records import Assistant, Columns, Run
from runlane.serde import JSONObject, to_jsonable, utcnow
from runlane.service.thread_signals import ThreadSignals
from runlane.store import CancelResult, CreatedRun, Store
from runlane.store.checkpoints import CheckpointBackend
from runlane.store.idempotency import IdempotencyKey
from runlane.store.threads import expiry
from runlane.store_config import ThreadTTLConfig
from runlane.streams.local import StreamBroker
from runlane.streams.redis import StreamUnavailable
from runlane.streams.transport import RunEventTransport
from runlane.webhook_policy import WebhookConfig, WebhookRefused, check_url

log = logging.getLogger("runlane.service")


@dataclasses.dataclass
class RunRequest:
    """A validated request to create a run (see api/models.py for the wire shape)."""

    assistant_id: str
    input: Any = None
    command: JSONObject | None = None
    config: JSONObject | None = None
    context: JSONObject | None = None
    metadata: JSONObject | None = None
    stream_mode: list[str] = dataclasses.field(default_factory=lambda: ["values"])
    stream_subgraphs: bool = False
    interrupt_before: Any = None
    interrupt_after: Any = None
    checkpoint: JSONObject | None = None
    checkpoint_id: str | None = None
    multitask_strategy: str = "enqueue"
    if_not_exists: str = "reject"
    on_completion: str | None = None
    on_disconnect: str = "continue"
    durability: str | None = None
    webhook: str | None = None
    after_seconds: float | None = None
    feedback_keys: list[str] | None = None
    stream_resumable: bool = False
    # The authenticated caller (its identity, permissions...), None with auth off.
    user: JSONObject | None = None
    request_id: str | None = None
    # Request headers for config["configurable"] (langgraph.json http.configurable_headers).
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    start_time_ms: int | None = None  # when the HTTP request came in (ms since the epoch)
    # The cron whose firing creates the run: config["configurable"]["cron_id"], as the
    # reference sets it (also beside a `context`, which otherwise excludes configurable).
    cron_id: str | None = None


@dataclasses.dataclass(frozen=True)
class Idempotency:
    """A creation request's Idempotency-Key and the fingerprint of the request."""

    key: str
    fingerprint: str


@dataclasses.dataclass(frozen=True)
class Admission:
    """A creation's answer: the run, and whether an Idempotency-Key named it (an
    earlier request created it; this one created nothing)."""

    run: Run
    replayed: bool = False


@dataclasses.dataclass(frozen=True)
class CancelAnswer:
    """What a cancel request is answered: the contract's outcome, its HTTP status
    (from contract.cancel_http_status, computed once) and the run as it stands then
    (its final row after a wait; None when not found)."""

    outcome: CancelOutcome
    status_code: int
    run: Run | None


@dataclasses.dataclass
class PreparedRun:
    """A checked run request: the rows its admission writes."""

    run: Columns
    thread_defaults: Columns
    if_not_exists: str
    request: RunRequest


class Runlane:
    def __init__(
        self,
        *,
        store: Store,
        checkpoints: CheckpointBackend,
        broker: StreamBroker,
        executor: Executor,
        graphs: dict[str, ServedGraph],
        transport: RunEventTransport,
        webhook_owed: asyncio.Event,
        ttl_changed: asyncio.Event,
        recheck_seconds: float,
        idempotency_ttl: float = 24 * 3600.0,
        webhooks: WebhookConfig | None = None,
        thread_ttl: ThreadTTLConfig | None = None,
        thread_stream_poll: float = 5.0,
    ) -> None:
        self.store = store
        # langgraph.json checkpointer.ttl: the TTL a new thread gets when its creator
        # gives none ({"strategy", "ttl": minutes}, as a client sends it), or None.
        self.default_thread_ttl: JSONObject | None = (
            None if thread_ttl is None else thread_ttl.default())
        # When the TTL sweeper means to look next (it says so before each sleep): a
        # thread expiring before then wakes it; later ones it will find anyway.
        self.sweep_planned_at: datetime.datetime | None = None
        # Thread streams wait on these between runs (see service/thread_signals.py),
        # and read the store on their own only every `thread_stream_poll` seconds, in
        # case a notification was lost.
        if not thread_stream_poll > 0:  # (NaN included)
            raise ConfigError(f"RUNLANE_THREAD_STREAM_POLL: {thread_stream_poll!r} is not a "
                              "positive number of seconds (default 5)")
        self.thread_signals = ThreadSignals()
        self.thread_stream_poll = thread_stream_poll
        # How long an Idempotency-Key names what it created (seconds).
        if not idempotency_ttl > 0:  # (NaN included)
            raise ConfigError(f"RUNLANE_IDEMPOTENCY_TTL: {idempotency_ttl!r} is not a "
                              "positive number of seconds (default 86400: 24 h)")
        self.idempotency_ttl = datetime.timedelta(seconds=idempotency_ttl)
        # Where a run's webhook may go (checked at creation, again at delivery).
        self.webhooks = webhooks or WebhookConfig()
        self.checkpoints = checkpoints
        self.broker = broker
        self.executor = executor
        self.graphs = graphs
        # Run events beyond this process's logs (Redis in scale-out).
        self.transport = transport
        # Webhook deliveries (see background/webhooks.py): set when a run owing one
        # ends here.
        self._webhook_owed = webhook_owed
        # The thread TTL sweeper (see background/ttl_sweeper.py): set when a TTL is set.
        self._ttl_changed = ttl_changed
        # How long a waiter trusts its wake-up before re-reading the store.
        self.recheck_seconds = recheck_seconds

    def thread_ttl_changed(self, expires_at: datetime.datetime | None = None) -> None:
        """A thread's TTL was set or changed here: the sweeper looks again now, unless
        the thread expires (`expires_at`) after it means to look anyway."""
        planned = self.sweep_planned_at
        if expires_at is None or planned is None or expires_at < planned:
            self._ttl_changed.set()

    async def after_webhook(self, run: Run) -> None:
        """A run's webhook delivery is over: a stateless run's thread may go now."""
        if deletes_thread_when_done(run.kwargs):
            await self.executor.discard_temporary_thread(run.thread_id)

    # ------------------------------------------------------------- assistants

    async def install_default_assistants(self) -> None:
        now = utcnow()
        for graph_id in self.graphs:
            await self.store.ensure_assistant(
                {
                    "assistant_id": default_assistant_id(graph_id),
                    "graph_id": graph_id,
                    "name": graph_id,
                    "description": None,
                    "config": {},
                    "context": {},
                    "metadata": {"created_by": "system"},
                    "version": 1,
                    "created_at": now,
                    "updated_at": now,
                }
            )

    async def recover_after_restart(self) -> None:
        """Finish what a dead process left active; never leave a run `running`."""
        finished, rollbacks = await self.store.recover_after_restart()
        for previous, row in finished:
            logs.run_status(row, previous, cause=StopReason.SERVER_RESTARTED.value,
                            level=logging.WARNING)
        for run in rollbacks:
            # A rollback was recorded: finish it as the executor would have.
            await self.executor.complete_rollback(
                run, worker_id=run.worker_id, cause=StopReason.SERVER_RESTARTED.value,
                level=logging.WARNING)
        await self.delete_finished_temporary_threads()

    async def housekeeping(self, older_than: Any = None) -> None:
        """What a cluster's lease keeper sweeps now and then: stateless runs' threads
        whose deletion was missed, and restore points of runs no longer running (each
        run's end deletes its own; this is the safety net)."""
        await self.delete_finished_temporary_threads(older_than)
        swept = await self.store.sweep_restore_points()
        if swept:
            log.warning("housekeeping: deleted %d restore point(s) of runs no longer "
                        "running", swept)

    async def delete_finished_temporary_threads(self, older_than: Any = None) -> None:
        """Stateless runs' threads whose deletion was missed (crash, shutdown)."""
        for thread_id in await self.store.temporary_thread_ids_done(older_than):
            await self.store.delete_thread(thread_id)
            await self.checkpoints.delete_thread(thread_id)

    def on_run_done(self, run_id: str) -> None:
        """Another worker finished a run: wake whoever waits for it here."""
        if run_id not in self.executor.local_run_ids:
            self.broker.close(run_id)

    async def on_run_reaped(self, run: Run) -> None:
        """This worker finished a dead worker's run: end its stream everywhere."""
        self.on_run_done(run.run_id)
        if run.webhook:
            self._webhook_owed.set()
        await self.transport.end(run.run_id, error=run.error)

    async def finish_adopted_rollback(self, run: Run) -> None:
        """Complete the rollback of a run whose worker died (this worker adopted it):
        exactly, from the restore point the dead worker kept in the store."""
        await self.executor.complete_rollback(
            run, worker_id=run.worker_id, cause=StopReason.WORKER_LOST.value,
            taken_over_by=run.worker_id, level=logging.WARNING)
        await self.on_run_reaped(run)

    async def resolve_assistant(self, assistant_id: str, *, owner: Owner = None) -> Assistant:
        """An assistant id, or a graph id standing for its default assistant; one
        `owner` may read (its own or a shared one), else NotFound."""
        if assistant_id in self.graphs:
            assistant_id = default_assistant_id(assistant_id)
        else:
            try:
                uuid.UUID(assistant_id)
            except ValueError:
                raise NotFound(
                    f"assistant {assistant_id!r} not found: use an assistant id or one of "
                    f"the graph ids {sorted(self.graphs)}"
                ) from None
        row = await self.store.get_assistant(assistant_id, owner=owner)
        if row is None:
            raise NotFound(f"assistant {assistant_id} not found")
        return row

    # ------------------------------------------------------------------- runs

    def idempotency_key(self, idempotency: Idempotency | None,
                        owner: Owner) -> IdempotencyKey | None:
        if idempotency is None:
            return None
        return IdempotencyKey(owner, idempotency.key, idempotency.fingerprint,
                              self.idempotency_ttl)

    async def create_run(self, thread_id: str | None, request: RunRequest, *,
                         owner: Owner = None, firing: tuple[str, Any] | None = None) -> Run:
        """`firing`: the cron firing (cron id, time) this run realizes (Crons.fire)."""
        return (await self.admit_run(thread_id, request, owner=owner, firing=firing)).run

    async def admit_run(self, thread_id: str | None, request: RunRequest, *,
                        owner: Owner = None,
                        idempotency: Idempotency | None = None,
                        firing: tuple[str, Any] | None = None) -> Admission:
        """Create a run; with an Idempotency-Key that already names one, that run
        instead (`replayed`), and nothing is created."""
        prepared = await self._prepare_run(thread_id, request, owner)
        self._open_log(prepared)
        # A free slot nobody else waits for: the admission starts the run itself.
        reserved = self.executor.reserve_slot()
        try:
            created = await self.store.create_run(
                prepared.run, if_not_exists=prepared.if_not_exists,
                thread_defaults=prepared.thread_defaults, owner=owner,
                start=(self.executor.worker_id, self.executor.lease_until()) if reserved
                else None,
                idempotency=self.idempotency_key(idempotency, owner), firing=firing,
            )
        except BaseException:
            if reserved:
                self.executor.release_slot()
            self.broker.discard(prepared.run["run_id"])
            raise
        if (expires_at := prepared.thread_defaults.get("expires_at")) is not None:
            self.thread_ttl_changed(expires_at)  # the thread may have been created here
        if created.started is not None:
            # Before anything can await: a cancel must find the run's task. (Nothing
            # else of `_admitted` applies: no run was cancelled, no Redis transport.)
            _log_created(created, prepared.request)
            self.executor.start_admitted(created.started)
            self.thread_signals.notify(created.run.thread_id)
            return Admission(created.run)
        if reserved:
            self.executor.release_slot()
        if created.replayed:
            # The run prepared here was never admitted: its log goes.
            self.broker.discard(prepared.run["run_id"])
            return Admission(created.run, replayed=True)
        await self._admitted(prepared, created)
        self.executor.wake()
        self.thread_signals.notify(created.run.thread_id)
        return Admission(created.run)

    async def create_stateless_batch(self, requests: list[RunRequest], *,
                                     owner: Owner = None,
                                     idempotency: Idempotency | None = None) -> list[Run]:
        """Create many stateless background runs, all or none: every item is checked
        first (an invalid item raises `BatchItemError` naming it, and nothing is
        created), then all are admitted in one transaction. One Idempotency-Key covers
        the whole batch: a live one answers the runs it created."""
        prepared: list[PreparedRun] = []
        for index, request in enumerate(requests):
            try:
                prepared.append(await self._prepare_run(None, request, owner))
            except (NotFound, BadRequest) as exc:
                raise BatchItemError(index, exc) from exc
        for item in prepared:
            self._open_log(item)
        try:
            created = await self.store.create_runs(
                [(item.run, item.thread_defaults) for item in prepared], owner=owner,
                idempotency=self.idempotency_key(idempotency, owner))
        except BaseException:
            for item in prepared:
                self.broker.discard(item.run["run_id"])
            raise
        if any(one.replayed for one in created):
            for item in prepared:
                self.broker.discard(item.run["run_id"])
            return [one.run for one in created]
        for item, one in zip(prepared, created, strict=True):
            await self._admitted(item, one)
        self.executor.wake()
        return [one.run for one in created]

    async def check_webhook(self, url: str) -> None:
        """A 422 saying why, when the webhook policy refuses `url`."""
        try:
            await check_url(url, self.webhooks)
        except WebhookRefused as exc:
            raise BadRequest(
                f"webhook {url!r} is refused: {exc.reason}. Accepted: http(s) URLs whose "
                "host resolves to public addresses only, or hosts the server's "
                "configuration allows (langgraph.json webhooks.url; docs/run-options.md"
                "#webhooks)") from None

    async def _prepare_run(self, thread_id: str | None, request: RunRequest,
                           owner: Owner) -> PreparedRun:
        """Check a run request's meaning and build its rows (nothing is written)."""
        if request.webhook is not None:
            await self.check_webhook(request.webhook)
        assistant = await self.resolve_assistant(request.assistant_id, owner=owner)
        if assistant.graph_id not in self.graphs:
            raise BadRequest(f"graph {assistant.graph_id!r} is not served here")
        stateless = thread_id is None
        if thread_id is None:
            thread_id = str(uuid.uuid4())
        on_completion = request.on_completion or ("delete" if stateless else "keep")
        now = utcnow()
        run_id = str(uuid.uuid4())
        config, context, context_given = run_context.for_request(request.config,
                                                                 request.context)
        config, context = run_context.with_assistant(assistant.config, assistant.context,
                                                     config, context)
        # The assistant's metadata is under the run config's (the reference's
        # `created_by` reaches the graph's metadata this way).
        config["metadata"] = {**(assistant.metadata or {}), **(config.get("metadata") or {})}
        configurable = config["configurable"]
        if context_given:
            # Popped at execution: keys the graph's context schema drops are dropped
            # from the mirrored configurable only then (run_context.for_schema).
            configurable["__context_provided__"] = True
        configurable.update(request.headers)
        configurable.update(run_context.auth_configurable(request.user))
        configurable["__after_seconds__"] = request.after_seconds or 0
        if request.start_time_ms is not None:
            configurable["__request_start_time_ms__"] = request.start_time_ms
        if not configurable.get("langgraph_request_id"):
            configurable["langgraph_request_id"] = request.request_id
        if request.cron_id is not None:
            configurable["cron_id"] = request.cron_id
        configurable["user_id"] = (
            ((request.config or {}).get("configurable") or {}).get("user_id")
            or ((assistant.config or {}).get("configurable") or {}).get("user_id")
            or configurable["langgraph_auth_user_id"])
        await self._check_checkpoint(assistant.graph_id, thread_id, request, config)
        kwargs: JSONObject = {
            "input": request.input,
            "command": request.command,
            "config": config,
            "context": context,
            "stream_mode": request.stream_mode,
            "stream_subgraphs": request.stream_subgraphs,
            "interrupt_before": request.interrupt_before,
            "interrupt_after": request.interrupt_after,
            "checkpoint": request.checkpoint,
            "checkpoint_id": request.checkpoint_id,
            "durability": request.durability,
            "on_disconnect": request.on_disconnect,
            "webhook": request.webhook,
            "after_seconds": request.after_seconds,
            # Accepted and kept with the run, as the reference server does; runlane has
            # no LangSmith feedback to create from them.
            "feedback_keys": request.feedback_keys,
            "stream_resumable": request.stream_resumable,
            "temporary": stateless,  # a stateless run (see deletes_thread_when_done)
            "on_completion": on_completion,
        }
        run: Columns = {
            "run_id": run_id,
            "thread_id": thread_id,
            "assistant_id": assistant.assistant_id,
            "graph_id": assistant.graph_id,
            "status": RunStatus.PENDING.value,
            "multitask_strategy": request.multitask_strategy,
            "metadata": request.metadata or {},
            "kwargs": to_jsonable(kwargs),
            "owner": owner,
            # after_seconds: claims skip the run until then (statements.is_due).
            "not_before": (now + datetime.timedelta(seconds=request.after_seconds)
                           if request.after_seconds else None),
            "webhook": request.webhook,
            # Delivered once the run is terminal (see background/webhooks.py).
            "webhook_state": "pending" if request.webhook else None,
            "webhook_attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        thread_defaults: Columns = {
            "thread_id": thread_id,
            "status": ThreadStatus.IDLE.value,
            "metadata": {"graph_id": assistant.graph_id,
                         "assistant_id": assistant.assistant_id},
            "config": {},
            "values": None,
            "interrupts": {},
            # A stateless run's thread is hidden and goes with it, unless it is kept
            # (on_completion=keep): then it is an ordinary thread from the start.
            "temporary": deletes_thread_when_done(kwargs),
            "owner": owner,
            "created_at": now,
            "updated_at": now,
        }
        if self.default_thread_ttl is not None and not thread_defaults["temporary"]:
            # A thread this run creates gets langgraph.json's default TTL (a stateless
            # run's goes with the run anyway).
            thread_defaults["ttl"] = self.default_thread_ttl
            thread_defaults["expires_at"] = expiry(self.default_thread_ttl, now)
        return PreparedRun(run, thread_defaults,
                           "create" if stateless else request.if_not_exists, request)

    def _open_log(self, prepared: PreparedRun) -> None:
        self.transport.before_admission(prepared.run["run_id"],
                                        resumable=prepared.request.stream_resumable)

    async def _admitted(self, prepared: PreparedRun, created: CreatedRun) -> None:
        """After a run was admitted: its stream, its log line, the runs its multitask
        strategy stopped."""
        request, run_id = prepared.request, prepared.run["run_id"]
        await self.transport.after_admission(run_id)
        _log_created(created, request)
        for other in created.cancelled_running:
            self.executor.deliver_cancel(other)
        for ended in created.cancelled_pending:
            logs.run_status(
                ended, RunStatus.PENDING.value, superseded_by=run_id,
                rolled_back=True if ended.cancel_action is CancelAction.ROLLBACK else None)
            await self._ended_without_running(ended.run_id)
        if created.cancelled_pending:
            self._webhook_owed.set()

    async def _check_checkpoint(
        self, graph_id: str, thread_id: str, request: RunRequest, config: JSONObject
    ) -> None:
        """A run asked to start from a checkpoint the thread does not have would start
        from nothing and hide the thread's state behind a fresh one: 404 instead. The
        checkpoint is the one the executor will use (see executor.build_config)."""
        configurable = config.get("configurable") or {}
        ref = {k: configurable[k] for k in ("checkpoint_ns", "checkpoint_id")
               if configurable.get(k)}
        ref.update(request.checkpoint or {})
        if request.checkpoint_id:
            ref["checkpoint_id"] = request.checkpoint_id
        checkpoint_id = ref.get("checkpoint_id")
        saver = self.graphs[graph_id].checkpointer
        if not checkpoint_id or saver is None or isinstance(saver, bool):
            return
        configurable = {"thread_id": thread_id, "checkpoint_ns": ref.get("checkpoint_ns") or "",
                        "checkpoint_id": checkpoint_id}
        if await saver.aget_tuple({"configurable": configurable}) is None:
            raise NotFound(f"checkpoint {checkpoint_id} not found on thread {thread_id}")

    async def _ended_without_running(self, run_id: str) -> None:
        """A pending run became terminal (or was rolled back / deleted) here: wake its
        waiters and end its stream for every listener."""
        self.broker.close(run_id)
        await self.transport.end(run_id)

    async def get_run(self, thread_id: str, run_id: str, *, owner: Owner = None) -> Run:
        row = await self.store.get_run(thread_id, run_id, owner=owner)
        if row is None:
            raise NotFound(f"run {run_id} not found on thread {thread_id}")
        return row

    async def cancel_run(
        self,
        thread_id: str,
        run_id: str,
        *,
        action: CancelAction,
        wait: bool,
        reason: CancelReason = CancelReason.USER,
        owner: Owner = None,
        auth_filter: Filters | None = None,
    ) -> CancelAnswer:
        """Cancel one run through the run contract: one compare-and-set in the store,
        the answer counted (here, once), the cancel delivered to the run's task, and
        with `wait` the run's final row once it is terminal. `auth_filter`: the
        authorization handler's filters the run's thread must pass (else NOT_FOUND)."""
        result = await self.store.cancel_run(thread_id, run_id, action, reason.value,
                                             owner=owner, auth_filter=auth_filter)
        status_code = cancel_http_status(result.outcome, wait=wait)
        metrics.cancel_answered(status_code, result.outcome.value, reason.value)
        await self._after_cancel(result)
        run = result.run
        if wait and result.outcome in (CancelOutcome.RECORDED, CancelOutcome.ALREADY_RECORDED):
            final = await self.await_terminal(thread_id, run_id)
            if final is not None:
                run = final
        return CancelAnswer(result.outcome, status_code, run)

    @staticmethod
    def refuse_cancel(problems: list[str]) -> NoReturn:
        """A cancel request that does not parse: counted with every other cancel
        answer (422, invalid_request), then refused with the problems found."""
        metrics.cancel_answered(422, "invalid_request", CancelReason.USER.value)
        raise BadRequest("; ".join(problems))

    async def after_cancels(self, results: list[CancelResult]) -> None:
        """Deliver cancels recorded by another store operation (deleting an assistant)."""
        for result in results:
            await self._after_cancel(result)

    async def _after_cancel(self, result: CancelResult) -> None:
        if result.outcome is not CancelOutcome.RECORDED or result.run is None:
            return
        run = result.run
        if result.delivered_to_task:
            # Not a status change yet: the run's executor settles it `interrupted`.
            action = None if run.cancel_action is None else run.cancel_action.value
            log.info("run %s: %s recorded (%s); stopping it", run.run_id,
                     action, run.cancel_reason,
                     extra={"event": "cancel_recorded", "run_id": run.run_id,
                            "thread_id": run.thread_id, "cancel_action": action,
                            "cancel_reason": run.cancel_reason})
            self.executor.deliver_cancel(run.run_id)
        else:  # a pending run: it is already terminal (or rolled back)
            logs.run_status(run, RunStatus.PENDING.value, rolled_back=True if
                            run.cancel_action is CancelAction.ROLLBACK else None)
            await self._ended_without_running(run.run_id)
            if run.webhook and run.cancel_action is not CancelAction.ROLLBACK:
                self._webhook_owed.set()
            self.executor.wake()

    async def cancel_pending(self, reason: CancelReason) -> int:
        """Cancel every pending run (one SQLite process shutting down: nothing else
        would ever start them, and they end as `interrupted` now rather than as
        `error` at the next start). How many were cancelled. Scheduled runs
        (`after_seconds`) stay: the next start runs them when due."""
        count = 0
        for thread_id, run_id in await self.store.active_run_ids(
                status=RunStatus.PENDING.value, scheduled=False):
            result = await self.store.cancel_run(thread_id, run_id, CancelAction.INTERRUPT,
                                                 reason.value)
            await self._after_cancel(result)
            count += result.outcome is CancelOutcome.RECORDED
        return count

    async def cancel_many(
        self,
        *,
        thread_id: str | None,
        run_ids: list[str] | None,
        status: str | None,
        action: CancelAction,
        owner: Owner = None,
        auth_filter: Filters | None = None,
    ) -> list[CancelResult]:
        """Cancel the active runs of a selection: a thread's (all, or `run_ids`), or all
        runs with a status. A named thread or run the caller cannot see (missing,
        another owner's, or a thread failing `auth_filter`) is NotFound, and then
        nothing is cancelled."""
        if thread_id is not None:
            thread = await self.store.get_thread(thread_id, owner=owner)
            if thread is None or not matches(thread.metadata, auth_filter):
                raise NotFound(f"thread {thread_id} not found")
            for run_id in run_ids or ():
                if await self.store.get_run(thread_id, run_id, owner=owner) is None and (
                    await self.store.get_tombstone(thread_id, run_id, owner=owner)
                ) is None:
                    raise NotFound(f"run {run_id} not found on thread {thread_id}")
        targets = await self.store.active_run_ids(
            thread_id=thread_id, run_ids=run_ids, status=status, owner=owner
        )
        results = []
        for target_thread, target_run in targets:
            result = await self.store.cancel_run(
                target_thread, target_run, action, CancelReason.USER.value, owner=owner
            )
            await self._after_cancel(result)
            results.append(result)
        return results

    async def await_terminal(self, thread_id: str, run_id: str) -> Run | None:
        """Block until the run is terminal or rolled back; the run as it ended (or as
        its tombstone keeps it).
        None if it does not exist (any more).

        Every terminal transition made in this process closes the run's event log
        right after it commits, so an open log is a promise of a wake-up.
        """
        while True:
            event_log = self.broker.get(run_id)
            if event_log is not None and not event_log.closed:
                # Bounded: a run ending on another worker is announced by NOTIFY,
                # and a notification can be lost; then the store answers.
                # asyncio.timeout, not wait_for: no task of its own to hop through.
                final = None
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.recheck_seconds):
                        final = await event_log.wait_closed()
                if final is not None:  # the run as this worker's settle made it terminal
                    return final
            row = await self.store.get_run(thread_id, run_id)
            if row is None:
                tomb = await self.store.get_tombstone(thread_id, run_id)
                return None if tomb is None else tomb.run
            if row.status in TERMINAL:
                return row
            # Active, with no open log here: open one, then re-read, so a close that
            # lands between the two reads cannot be missed.
            event_log = self.broker.open(run_id)
            row = await self.store.get_run(thread_id, run_id)
            if row is None or row.status in TERMINAL:
                self.broker.close(run_id)

    async def delete_run(self, thread_id: str, run_id: str, *, owner: Owner = None) -> None:
        deleted = await self.store.delete_run(thread_id, run_id, owner=owner)
        if deleted is None:
            raise NotFound(f"run {run_id} not found on thread {thread_id}")
        self.broker.discard(run_id)
        await self.transport.discard(run_id)

    async def run_result(self, thread_id: str, run_id: str, *, owner: Owner = None) -> Any:
        """What `wait` and `join` answer: the thread's values once the run is over."""
        await self._visible(thread_id, run_id, owner)
        event_log = self.broker.get(run_id)
        if event_log is not None and not event_log.closed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.recheck_seconds):
                    await event_log.wait_closed()
        if run_id in self.executor.final_values:
            # Settled by this worker, which kept the answer: no store read needed.
            return self.executor.final_values[run_id]
        final = await self.await_terminal(thread_id, run_id)
        if run_id in self.executor.final_values:
            return self.executor.final_values[run_id]
        thread = await self.store.get_thread(thread_id)
        if final is None and thread is None:
            raise NotFound(f"run {run_id} not found on thread {thread_id}")
        if thread is None:
            return {}
        return wait_result(final, thread.values, thread.interrupts or {})

    async def stream_run(
        self,
        thread_id: str,
        run_id: str,
        *,
        last_event_id: int = 0,
        stream_mode: list[str] | None = None,
        owner: Owner = None,
        admitted: bool = False,
    ) -> AsyncIterator[bytes]:
        """Replay after `last_event_id`, then tail live, until the run's end.
        `admitted`: the caller admitted the run in this process a moment ago."""
        # Event logs are keyed by run id alone (locally and in Redis): who may read
        # one is decided here, against the store, before any frame is served.
        await self._visible(thread_id, run_id, owner)
        modes = event_names_for(stream_mode) if stream_mode else None
        if self.transport.crosses_workers and run_id not in self.executor.local_run_ids:
            # Executing on another worker (or finished anywhere): Redis has it all.
            row = await self.store.get_run(thread_id, run_id)
            finished = row is None or row.status in TERMINAL

            async def run_finished() -> bool:
                current = await self.store.get_run(thread_id, run_id)
                return current is None or current.status in TERMINAL

            return self._until_unavailable(self.transport.follow(
                run_id, last_event_id, modes, wait_for_start=not finished,
                run_finished=run_finished,
            ))
        event_log = self.broker.get(run_id)
        if admitted and event_log is not None and not event_log.closed:
            # Its log, opened before its admission, is still open: the run has not
            # ended (every end closes it or drops it), no need to ask the store.
            return event_log.follow(last_event_id, modes)
        event_log = self.broker.open(run_id)
        row = await self.store.get_run(thread_id, run_id)
        finished = row is None or row.status in TERMINAL
        if finished and not event_log.closed:
            # A finished run: whatever is still kept, then the end at once.
            if event_log.frames:
                self.broker.close(run_id)
            else:
                self.broker.discard(run_id)
                event_log.close()
        # Not wrapped in _until_unavailable (a generator hop per batch on the hot path):
        # a log cut here (StreamCut: the run was fenced) cuts the response all the same.
        return event_log.follow(last_event_id, modes)

    async def _visible(self, thread_id: str, run_id: str, owner: Owner) -> None:
        """NotFound unless `owner` may see the run (or its rollback tombstone).
        Free with auth off: every caller sees every run."""
        if owner is None:
            return
        if await self.store.get_run(thread_id, run_id, owner=owner) is None and (
            await self.store.get_tombstone(thread_id, run_id, owner=owner)
        ) is None:
            raise NotFound(f"run {run_id} not found on thread {thread_id}")

    @staticmethod
    async def _until_unavailable(frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Redis gone for good mid-stream: cut the response (the connection closes
        without the body's end), so the client sees a dropped stream, reconnects
        with Last-Event-ID and resumes exactly. Ending it cleanly instead told the
        client the stream was over: a client rejoining while Redis restarted lost
        every event after its Last-Event-ID (found by `make soak`; langgraph_sdk
        reconnects after a drop, and after a clean end only while the run is active)."""
        try:
            async for chunk in frames:
                yield chunk
        except StreamUnavailable as exc:
            log.warning("event stream unavailable: %s; cutting the response so the client "
                        "resumes with Last-Event-ID", exc)
            raise

    # ---------------------------------------------------------------- threads

    async def delete_thread(self, thread_id: str, *, owner: Owner = None) -> None:
        deleted = await self.store.delete_thread(thread_id, owner=owner)
        if deleted is None:
            raise NotFound(f"thread {thread_id} not found")
        await self.after_thread_deleted(thread_id, deleted)

    async def after_thread_deleted(self, thread_id: str, deleted: list[tuple[str, str]]) -> None:
        """The thread's rows are gone: stop its runs, drop its checkpoints."""
        self.thread_signals.notify(thread_id)  # its streams end
        for run_id, status in deleted:
            if status == RunStatus.RUNNING.value:
                self.executor.deliver_cancel(run_id)  # its settle CAS finds no row
            elif status == RunStatus.PENDING.value:
                await self._ended_without_running(run_id)  # never starts
        await self.checkpoints.delete_thread(thread_id)


def _log_created(created: CreatedRun, request: RunRequest) -> None:
    logs.run_status(created.run, None, cause="created",
                    multitask_strategy=request.multitask_strategy)
