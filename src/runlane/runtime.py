"""Assembling a worker: store, checkpointer, event broker, executor and service, plus
in scale-out the NOTIFY listener and the lease keeper. Start-up and shutdown order
live here and nowhere else."""

from __future__ import annotations

import datetime
import logging
import uuid
from typing import Any

from langgraph.pregel import Pregel

from runlane.bus import PostgresBus
from runlane.checkpoints import open_checkpoints
from runlane.executor import Executor
from runlane.graphs import ConfigError
from runlane.leases import LeaseKeeper
from runlane.serde import utcnow
from runlane.service import Runlane
from runlane.settings import Settings
from runlane.store import Store
from runlane.streams.local import StreamBroker
from runlane.streams.redis import RedisEventBridge

log = logging.getLogger("runlane")


class Runtime:
    def __init__(self, settings: Settings, graphs: dict[str, Pregel]) -> None:
        self.settings = settings
        self.graphs = graphs
        self.worker_id = f"{settings.worker_name or 'worker'}-{uuid.uuid4().hex[:8]}"
        self.service: Runlane | None = None
        self._closers: list[Any] = []

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
        served = {gid: g.copy(update={"checkpointer": saver}) for gid, g in self.graphs.items()}
        broker = StreamBroker()
        executor = Executor(
            store=store, broker=broker, checkpoints=checkpoints, graphs=served,
            max_concurrency=settings.max_concurrency, cancel_grace=settings.cancel_grace,
            lease_seconds=settings.lease_seconds, worker_id=self.worker_id,
        )
        service = Runlane(store=store, checkpoints=checkpoints, broker=broker,
                          executor=executor, graphs=served)
        self.service = service
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
        await executor.start()
        self._closers.insert(0, executor.stop)
        log.info("runlane worker %s serving graphs %s on %s", self.worker_id,
                 ", ".join(served), store.db.url.render_as_string(hide_password=True))
        return service

    async def stop(self) -> None:
        for close in self._closers:
            try:
                await close()
            except Exception:  # keep closing the rest
                log.exception("shutting down %s failed", close)
        self._closers.clear()
