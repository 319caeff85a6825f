"""`Executor`: what the rest of runlane talks to. It builds this worker's dispatcher,
supervisors and graph runner, and answers for them."""

from __future__ import annotations

import asyncio
import collections
import datetime
import uuid
from typing import Any

from runlane.executor.dispatch import Dispatcher, DispatchSignal
from runlane.executor.execution import GraphRunner
from runlane.executor.node_threads import NodeThreads
from runlane.executor.supervision import CompletedRollback, Supervision
from runlane.graph_factories import ServedGraph
from runlane.records import Run
from runlane.store import Store
from runlane.store.checkpoints import CheckpointBackend
from runlane.store.items import ItemStore
from runlane.streams.local import StreamBroker
from runlane.streams.transport import RunEventTransport


class Executor:
    def __init__(
        self,
        *,
        store: Store,
        broker: StreamBroker,
        checkpoints: CheckpointBackend,
        graphs: dict[str, ServedGraph],
        item_store: ItemStore,
        transport: RunEventTransport,
        webhook_owed: asyncio.Event,
        single_process: bool,
        temporary_retention: float,
        max_concurrency: int = 64,
        cancel_grace: float = 5.0,
        abandoned_node_grace: float = 5.0,
        lease_seconds: float = 10.0,
        recheck_seconds: float = 1.0,
        worker_id: str | None = None,
    ) -> None:
        """`single_process`: one SQLite process, which sees every event that makes a
        run startable (on a cluster a NOTIFY can be lost; see DispatchSignal).
        `temporary_retention`: seconds a stateless run's thread outlives the run (on a
        cluster a `wait` on another worker still reads it). `webhook_owed` is set when
        a run owing a webhook ends here. `recheck_seconds`: the period of the
        dispatcher's safety-net claim (Dispatcher._recheck)."""
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:8]}"
        signal = DispatchSignal(single_process=single_process)
        # The event loop's default executor, once started: it knows which run's nodes
        # still execute in a thread (see node_threads.py).
        self.node_threads = NodeThreads()
        self._supervision = Supervision(
            store=store, broker=broker, checkpoints=checkpoints, graphs=graphs,
            runner=GraphRunner(graphs=graphs, checkpoints=checkpoints, item_store=item_store,
                               store=store, worker_id=self.worker_id),
            transport=transport, signal=signal, webhook_owed=webhook_owed,
            worker_id=self.worker_id, cancel_grace=cancel_grace, lease_seconds=lease_seconds,
            temporary_retention=temporary_retention, node_threads=self.node_threads,
            abandoned_node_grace=abandoned_node_grace,
        )
        self._dispatcher = Dispatcher(
            store=store, supervision=self._supervision, signal=signal,
            worker_id=self.worker_id, max_concurrency=max_concurrency,
            lease_seconds=lease_seconds, recheck_seconds=recheck_seconds,
        )
        self._signal = signal

    # -------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        asyncio.get_running_loop().set_default_executor(self.node_threads)
        self._dispatcher.start()

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
        other workers (see assembly.Runtime for one SQLite process)."""
        await self._dispatcher.stop_claiming()
        await self._supervision.drain(grace)

    async def stop(self) -> None:
        """The last step (after `drain`): whatever still executes here, a run whose
        cancel could not be recorded (database down), is cancelled; its settle then
        proposes error/server_restarted (or, if the database is still down, a
        restart or a reaper finishes it)."""
        await self._dispatcher.stop_claiming()
        await self._supervision.stop()

    # ------------------------------------------------------------ dispatching

    def wake(self) -> None:
        """A pending run may have become startable: the dispatcher claims now."""
        self._signal.wake()

    def reserve_slot(self) -> bool:
        return self._dispatcher.reserve_slot()

    def release_slot(self) -> None:
        self._dispatcher.release_slot()

    def start_admitted(self, run: Run) -> None:
        self._dispatcher.start_admitted(run)

    def lease_until(self) -> datetime.datetime:
        return self._dispatcher.lease_until()

    # -------------------------------------------------------- runs executing

    @property
    def local_run_ids(self) -> set[str]:
        return self._supervision.local_run_ids

    @property
    def fenced_run_ids(self) -> set[str]:
        """Runs executing here that this worker stopped without writing (fenced)."""
        return self._supervision.fenced_run_ids

    def leased_at(self, run_id: str) -> float | None:
        """When the claim of a run executing here set its lease (time.monotonic)."""
        return self._supervision.leased_at(run_id)

    @property
    def active_count(self) -> int:
        return self._supervision.active_count

    @property
    def settling(self) -> set[str]:
        return self._supervision.settling

    @property
    def final_values(self) -> collections.OrderedDict[str, Any]:
        return self._supervision.final_values

    def deliver_cancel(self, run_id: str) -> None:
        self._supervision.deliver_cancel(run_id)

    def fence(self, run_id: str) -> None:
        self._supervision.fence(run_id)

    # ------------------------------------------------------------ run endings

    async def complete_rollback(
        self, run: Run, *, worker_id: str | None, cause: str, level: int,
        taken_over_by: str | None = None,
    ) -> CompletedRollback:
        """Finish the recorded rollback of a run this worker does not execute (a dead
        worker's, or one a restart found): see Supervision.complete_rollback."""
        return await self._supervision.complete_rollback(
            run, worker_id=worker_id, cause=cause, level=level, taken_over_by=taken_over_by)

    async def discard_temporary_thread(self, thread_id: str) -> None:
        await self._supervision.discard_temporary_thread(thread_id)
