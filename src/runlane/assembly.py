"""Assembling a worker: store, checkpointer, event broker, executor and service, plus
in scale-out the NOTIFY listener and the lease keeper. Start-up and shutdown order
live here and nowhere else."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import signal
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from runlane.background.collector import Collector
from runlane.background.cron_scheduler import CronScheduler
from runlane.background.ttl_sweeper import TTLSweeper
from runlane.background.webhooks import WebhookSender
from runlane.contract import CancelReason
from runlane.executor.bus import PostgresBus
from runlane.executor.executor import Executor
from runlane.executor.leases import LeaseKeeper
from runlane.graph_factories import ServedGraph
from runlane.graphs import ConfigError
from runlane.observability import logs, metrics
from runlane.serde import utcnow
from runlane.service.crons import Crons
from runlane.service.runs import Runlane
from runlane.settings import Settings
from runlane.store import Store
from runlane.store.checkpoint_fence import WriteFence
from runlane.store.checkpoints import open_checkpoints
from runlane.store.crons import CronStore
from runlane.store.items import ItemStore
from runlane.store.webhook_queue import WebhookQueue
from runlane.store_config import StoreConfig, ThreadTTLConfig
from runlane.streams.local import StreamBroker
from runlane.streams.redis import RedisEventBridge
from runlane.streams.transport import LocalTransport, RedisTransport, RunEventTransport
from runlane.webhook_policy import WebhookConfig

log = logging.getLogger("runlane")


class Runtime:
    def __init__(self, settings: Settings, graphs: dict[str, ServedGraph],
                 webhooks: WebhookConfig | None = None,
                 store_config: StoreConfig | None = None,
                 thread_ttl: ThreadTTLConfig | None = None) -> None:
        self.settings = settings
        self.graphs = graphs
        # langgraph.json's `store` (index with its embeddings loaded, item TTLs) and
        # `checkpointer.ttl` (threads' default TTL, sweep interval): store_config.
        self.store_config = store_config or StoreConfig()
        self.thread_ttl = thread_ttl
        # Where webhooks may go and how they are signed (webhook_policy).
        self.webhooks = webhooks or WebhookConfig()
        self.worker_id = f"{settings.worker_name or 'worker'}-{uuid.uuid4().hex[:8]}"
        self.service: Runlane | None = None
        self.executor: Executor | None = None
        self.leases: LeaseKeeper | None = None
        self.items: ItemStore | None = None
        self.crons: Crons | None = None
        self.scheduler: CronScheduler | None = None
        # What `stop` undoes: each part's stop, registered as the part starts.
        self._stops = contextlib.AsyncExitStack()
        self._drain_task: asyncio.Task[None] | None = None
        logs.set_worker(self.worker_id)

    @property
    def scale_out(self) -> bool:
        return not self.settings.resolved_database_url().startswith("sqlite")

    def _on_stop(self, stop: Callable[[], Awaitable[None]]) -> None:
        """Run `stop` when this worker stops, before everything registered earlier;
        a failing stop is logged and the others still run."""

        async def guarded() -> None:
            try:
                await stop()
            except Exception:  # keep stopping the rest
                log.exception("shutting down %s failed", stop)

        self._stops.push_async_callback(guarded)

    async def start(self) -> Runlane:
        """Build this worker and start it, top to bottom. Each part registers its stop
        as it starts; `stop` runs them in the reverse order of registering: cron
        scheduler, TTL sweeper, executor, webhook sender, [lease keeper, NOTIFY
        listener,] event transport, store, checkpointer, item store."""
        settings = self.settings
        url = settings.resolved_database_url()
        # PostgreSQL: at most settings.connections_per_worker() connections in all.
        store = Store(url, pool_size=settings.db_pool_size)
        checkpoints = open_checkpoints(url, settings.checkpoint_path(),
                                       pool_size=settings.checkpoint_pool_size)
        items = ItemStore(url, pool_size=settings.item_pool_size, config=self.store_config)
        # The databases close last, the store first: registered before they open.
        self._on_stop(items.close)
        self._on_stop(checkpoints.close)
        self._on_stop(store.close)
        await store.setup()
        saver = await checkpoints.setup()
        # Store items: the same langgraph store for /store/items and every graph.
        item_store = await items.setup()
        self.items = items
        served = {gid: g.bind(checkpointer=saver, store=item_store)
                  for gid, g in self.graphs.items()}
        broker = StreamBroker(retention_seconds=settings.stream_retention)
        transport: RunEventTransport
        if self.scale_out:
            if not settings.redis_url:
                raise ConfigError("scale-out needs Redis for run events across workers: "
                                  "pass --redis-url redis://host:6379/0")
            transport = RedisTransport(RedisEventBridge(
                settings.redis_url, max_connections=settings.redis_max_connections,
                max_read_connections=settings.redis_max_read_connections))
        else:
            transport = LocalTransport(broker)
        self._on_stop(transport.aclose)  # after the executor stopped
        # Wake-ups, made before the parts on either side of them.
        webhook_owed = asyncio.Event()  # a run owing a webhook ended: the webhook sender
        ttl_changed = asyncio.Event()  # a thread's TTL was set here: the TTL sweeper
        executor = Executor(
            store=store, broker=broker, checkpoints=checkpoints, graphs=served,
            item_store=items, transport=transport, webhook_owed=webhook_owed,
            # One SQLite process sees every event that makes a run startable; a
            # cluster worker may miss a NOTIFY (DispatchSignal).
            single_process=not self.scale_out,
            # Scale-out: a `wait` on another worker still reads a stateless run's thread.
            temporary_retention=30.0 if self.scale_out else 0.0,
            max_concurrency=settings.resolved_max_concurrency(), cancel_grace=settings.cancel_grace,
            abandoned_node_grace=settings.abandoned_node_grace,
            lease_seconds=settings.lease_seconds, worker_id=self.worker_id,
        )
        service = Runlane(
            store=store, checkpoints=checkpoints, broker=broker, executor=executor,
            graphs=served, transport=transport, webhook_owed=webhook_owed,
            ttl_changed=ttl_changed, recheck_seconds=1.0 if self.scale_out else 2.0,
            idempotency_ttl=settings.idempotency_ttl,
            webhooks=self.webhooks, thread_ttl=self.thread_ttl,
            thread_stream_poll=settings.thread_stream_poll,
        )
        self.service = service
        self.executor = executor
        self.crons = Crons(CronStore(store.db), service)
        await service.install_default_assistants()
        if self.scale_out:
            # Other workers may be alive: a dead worker's runs are found by their leases.
            plain_url = store.db.url.set(drivername="postgresql").render_as_string(
                hide_password=False
            )
            leases = LeaseKeeper(
                store=store, executor=executor, lease_seconds=settings.lease_seconds,
                grace_seconds=settings.lease_grace, on_reaped=service.on_run_reaped,
                complete_rollback=service.finish_adopted_rollback,
                housekeeping=lambda: service.housekeeping(
                    utcnow() - datetime.timedelta(minutes=2)),
            )
            loop = asyncio.get_running_loop()

            def refused(run_id: str) -> None:
                # A sync node writes from its thread: the executor lives on the loop.
                loop.call_soon_threadsafe(executor.fence, run_id)

            # A run's checkpoint lands only while this worker holds its lease and (in
            # the write's transaction) the run is still running here: a worker that was
            # stopped past its lease never writes after a takeover (checkpoint_fence.py).
            checkpoints.fence_writes(WriteFence(executor.worker_id, leases.lease_held,
                                                refused))
            def reconnected() -> None:
                executor.wake()
                service.thread_signals.wake_all()  # thread notifications may be lost

            bus = PostgresBus(
                plain_url, on_wake=executor.wake, on_cancel=executor.deliver_cancel,
                on_done=service.on_run_done, on_reconnect=reconnected,
                on_thread=service.thread_signals.notify,
            )
            await bus.start()
            self._on_stop(bus.stop)
            leases.start()
            self._on_stop(leases.stop)
            self.leases = leases
        else:
            # One process owns the SQLite file: whatever was active died with it.
            await service.recover_after_restart()
        webhooks = WebhookSender(
            WebhookQueue(store.db), wakeup=webhook_owed, timeout=settings.webhook_timeout,
            max_attempts=settings.webhook_max_attempts, backoff=settings.webhook_backoff,
            after_delivery=service.after_webhook, config=self.webhooks,
        )
        # The webhook sender stops after the executor (its runs' ends wake it), so its
        # stop is registered first.
        self._on_stop(webhooks.stop)
        await executor.start()
        self._on_stop(executor.stop)
        await webhooks.start()
        sweeper = (TTLSweeper(service, wakeup=ttl_changed) if self.thread_ttl is None else
                   TTLSweeper(service, wakeup=ttl_changed,
                              max_sleep=self.thread_ttl.sweep_seconds,
                              batch=self.thread_ttl.sweep_limit))
        sweeper.start()
        self._on_stop(sweeper.stop)
        # Every worker fires due crons; a claim (CAS) makes each firing happen once.
        self.scheduler = CronScheduler(self.crons)
        self.scheduler.start()
        self._on_stop(self.scheduler.stop)
        # Last: what is alive now lives as long as the process (frozen out of the
        # collector), and the collector's policy starts (background/collector.py).
        collector = Collector()
        collector.start()
        self._on_stop(collector.stop)
        metrics.worker_started(self.worker_id, "postgresql" if self.scale_out else "sqlite",
                               self.leases)
        self._drain_on_signals()
        log.info("runlane worker %s serving graphs %s on %s", self.worker_id,
                 ", ".join(served), store.db.url.render_as_string(hide_password=True))
        return service

    # --------------------------------------------------------------- shutdown

    def begin_shutdown(self) -> asyncio.Task[None]:
        """Start draining this worker (once): see `_drain`."""
        if self._drain_task is None:
            self._drain_task = asyncio.get_running_loop().create_task(
                self._drain(), name="runlane-drain")
        return self._drain_task

    @property
    def draining(self) -> bool:
        return self._drain_task is not None

    async def _drain(self) -> None:
        """Graceful shutdown: claim no new runs, let active ones finish within
        `shutdown_grace`, interrupt the rest with cancel_reason `shutdown` (see
        Executor.drain). One SQLite process also cancels its pending runs (nothing
        else would start them); on PostgreSQL they stay queued for the other workers.
        Nothing is left `running`."""
        executor, service = self.executor, self.service
        if executor is None or service is None:
            return
        if self.scheduler is not None:
            await self.scheduler.stop()  # no new runs from crons while draining
        log.info("worker %s shutting down: no new runs; %d active run(s) get %.1fs to finish",
                 self.worker_id, executor.active_count, self.settings.shutdown_grace)
        await executor.drain(self.settings.shutdown_grace)
        if not self.scale_out:
            try:
                cancelled = await service.cancel_pending(CancelReason.SHUTDOWN)
            except Exception as exc:  # noqa: BLE001 - the next start finishes them
                log.error("shutdown: could not cancel pending runs (%s)", exc)
            else:
                if cancelled:
                    log.info("shutdown: %d pending run(s) interrupted", cancelled)

    def _drain_on_signals(self) -> None:
        """Drain from the moment SIGTERM (or SIGINT) arrives, while uvicorn stops
        accepting connections and waits for open responses: a run that ends within
        the grace still reaches its streams and waiters. uvicorn installs its handlers
        before the app starts; they are chained, not replaced."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)
            if not callable(previous):
                continue  # not under a server that handles it: lifespan shutdown drains

            def handler(signum: int, frame: Any, previous: Any = previous) -> None:
                loop.call_soon_threadsafe(self.begin_shutdown)
                previous(signum, frame)

            signal.signal(sig, handler)

    async def stop(self) -> None:
        try:
            await self.begin_shutdown()
        except Exception:
            log.exception("draining runs at shutdown failed")
        await self._stops.aclose()
