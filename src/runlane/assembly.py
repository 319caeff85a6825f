"""Assembling a worker: store, checkpointer, event broker, executor and service, plus
in scale-out the NOTIFY listener and the lease keeper. Start-up and shutdown order
live here and nowhere else."""

from __future__ import annotations

import asyncio
import datetime
import logging
import signal
import threading
import uuid
from typing import Any

from langgraph.pregel import Pregel

from runlane.background.cron_scheduler import CronScheduler
from runlane.background.ttl_sweeper import TTLSweeper
from runlane.background.webhooks import WebhookSender
from runlane.contract import CancelReason
from runlane.executor.bus import PostgresBus
from runlane.executor.leases import LeaseKeeper
from runlane.executor.runner import Executor
from runlane.graphs import ConfigError
from runlane.observability import logs, metrics
from runlane.serde import utcnow
from runlane.service.crons import Crons
from runlane.service.runs import Runlane
from runlane.settings import Settings
from runlane.store import Store
from runlane.store.checkpoints import open_checkpoints
from runlane.store.crons import CronStore
from runlane.store.items import ItemStore
from runlane.store.webhook_queue import WebhookQueue
from runlane.streams.local import StreamBroker
from runlane.streams.redis import RedisEventBridge

log = logging.getLogger("runlane")


class Runtime:
    def __init__(self, settings: Settings, graphs: dict[str, Pregel]) -> None:
        self.settings = settings
        self.graphs = graphs
        self.worker_id = f"{settings.worker_name or 'worker'}-{uuid.uuid4().hex[:8]}"
        self.service: Runlane | None = None
        self.executor: Executor | None = None
        self.leases: LeaseKeeper | None = None
        self.items: ItemStore | None = None
        self.crons: Crons | None = None
        self.scheduler: CronScheduler | None = None
        self._closers: list[Any] = []
        self._drain_task: asyncio.Task[None] | None = None
        logs.set_worker(self.worker_id)

    @property
    def scale_out(self) -> bool:
        return not self.settings.resolved_database_url().startswith("sqlite")

    async def start(self) -> Runlane:
        settings = self.settings
        url = settings.resolved_database_url()
        store = Store(url)
        await store.setup()
        self._closers.append(store.close)
        checkpoints = open_checkpoints(url, settings.checkpoint_path())
        saver = await checkpoints.setup()
        self._closers.append(checkpoints.close)
        # Store items: the same langgraph store for /store/items and every graph.
        items = ItemStore(url)
        item_store = await items.setup()
        self._closers.append(items.close)
        self.items = items
        served = {gid: g.copy(update={"checkpointer": saver, "store": item_store})
                  for gid, g in self.graphs.items()}
        broker = StreamBroker(retention_seconds=settings.stream_retention)
        executor = Executor(
            store=store, broker=broker, checkpoints=checkpoints, graphs=served,
            max_concurrency=settings.max_concurrency, cancel_grace=settings.cancel_grace,
            lease_seconds=settings.lease_seconds, worker_id=self.worker_id,
        )
        service = Runlane(store=store, checkpoints=checkpoints, broker=broker,
                          executor=executor, graphs=served)
        executor.item_store = items
        self.service = service
        self.executor = executor
        self.crons = Crons(CronStore(store.db), service)
        await service.install_default_assistants()
        if self.scale_out:
            # Other workers may be alive: a dead worker's runs are found by their leases.
            plain_url = store.db.url.set(drivername="postgresql").render_as_string(
                hide_password=False
            )
            if not settings.redis_url:
                raise ConfigError("scale-out needs Redis for run events across workers: "
                                  "pass --redis-url redis://host:6379/0")
            bridge = RedisEventBridge(settings.redis_url)
            executor.bridge = service.bridge = bridge
            self._closers.insert(0, bridge.aclose)  # after the executor stopped
            leases = LeaseKeeper(
                store=store, executor=executor, lease_seconds=settings.lease_seconds,
                grace_seconds=settings.lease_grace, on_reaped=service.on_run_reaped,
                complete_rollback=service.finish_adopted_rollback,
                housekeeping=lambda: service.delete_finished_temporary_threads(
                    utcnow() - datetime.timedelta(minutes=2)),
            )
            executor.temporary_retention = 30.0
            bus = PostgresBus(
                plain_url, on_wake=executor.wake, on_cancel=executor.deliver_cancel,
                on_done=service.on_run_done, on_reconnect=executor.wake,
            )
            await bus.start()
            self._closers.insert(0, bus.stop)
            await leases.start()
            self._closers.insert(0, leases.stop)
            service.recheck_seconds = 1.0
            self.leases = leases
        else:
            # One process owns the SQLite file: whatever was active died with it.
            await service.recover_after_restart()
            # ...and sees every event that makes a run startable (Executor.reserve_slot).
            executor.starts_at_admission = True
        await executor.start()
        self._closers.insert(0, executor.stop)
        webhooks = WebhookSender(
            WebhookQueue(store.db), timeout=settings.webhook_timeout,
            max_attempts=settings.webhook_max_attempts, backoff=settings.webhook_backoff,
            after_delivery=service.after_webhook,
        )
        executor.webhooks = service.webhooks = webhooks
        await webhooks.start()
        self._closers.insert(1, webhooks.stop)  # after the executor: its runs' ends wake it
        sweeper = TTLSweeper(service)
        sweeper.start()
        service.ttl_sweeper = sweeper
        self._closers.insert(0, sweeper.stop)
        # Every worker fires due crons; a claim (CAS) makes each firing happen once.
        self.scheduler = CronScheduler(self.crons)
        await self.scheduler.start()
        self._closers.insert(0, self.scheduler.stop)
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
        for close in self._closers:
            try:
                await close()
            except Exception:  # keep closing the rest
                log.exception("shutting down %s failed", close)
        self._closers.clear()
