"""One runlane worker in this process, as `Runtime` assembles it on SQLite (the real
Store, checkpointer, stream broker, Executor and service), serving a single graph
whose runs end when the test says so. For the dispatcher's rules: which run starts
when, and by which path (its own admission or the dispatcher's claim)."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path
from typing import Any, TypedDict

from langgraph.graph import START, StateGraph

from fast.support import eventually, field, new_id
from runlane.executor.executor import Executor
from runlane.graph_factories import ServedGraph
from runlane.service.runs import Runlane, RunRequest
from runlane.store import CreatedRun, Store
from runlane.store.checkpoints import open_checkpoints
from runlane.store.items import ItemStore
from runlane.streams.local import StreamBroker
from runlane.streams.transport import LocalTransport

GRAPH = "gated"


class GatedState(TypedDict, total=False):
    key: str
    done: bool


class GatedGraph:
    """A one-node graph: the node of the run whose input is {"key": k} waits until
    `release(k)`. Notes the order nodes began and how many ran at once."""

    def __init__(self) -> None:
        self.gates: collections.defaultdict[str, asyncio.Event] = collections.defaultdict(
            asyncio.Event)
        self.started: list[str] = []
        self.running: set[str] = set()
        self.peak = 0

    async def work(self, state: GatedState) -> GatedState:
        key = state["key"]
        self.started.append(key)
        self.running.add(key)
        self.peak = max(self.peak, len(self.running))
        try:
            await self.gates[key].wait()
        finally:
            self.running.discard(key)
        return {"done": True}

    def release(self, key: str) -> None:
        self.gates[key].set()

    def compile(self, checkpointer: Any) -> Any:
        return (StateGraph(GatedState).add_node("work", self.work).add_edge(START, "work")
                .compile(checkpointer=checkpointer))


class RecordingStore(Store):
    """The real Store, noting which runs each path started; it can also hold the
    dispatcher inside its claim (`hold_claims`), to look at a worker mid-claim."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.started_at_admission: list[str] = []
        self.claimed: list[str] = []
        self.claims_done = 0
        self.hold_claims: asyncio.Event | None = None  # while set to an unset Event
        self.claim_held = asyncio.Event()

    async def create_run(self, run: dict[str, Any], **options: Any) -> CreatedRun:
        created = await super().create_run(run, **options)
        if created.started is not None:
            self.started_at_admission.append(field(created.started, "run_id"))
        return created

    async def claim(self, worker_id: str, lease_until: Any, limit: int) -> Any:
        if self.hold_claims is not None:
            self.claim_held.set()
            await self.hold_claims.wait()
        claimed, due = await super().claim(worker_id, lease_until, limit)
        self.claimed += [field(r, "run_id") for r in claimed or []]
        self.claims_done += 1
        return claimed, due


class InProcessWorker:
    def __init__(self, workdir: Path, *, max_concurrency: int,
                 single_process: bool = True) -> None:
        self.workdir = workdir
        self.max_concurrency = max_concurrency
        self.single_process = single_process
        self.graph = GatedGraph()
        self.run_ids: dict[str, str] = {}  # key -> run id
        self.thread_ids: dict[str, str] = {}  # key -> thread id

    async def start(self) -> InProcessWorker:
        url = f"sqlite:///{self.workdir / 'runlane.sqlite'}"
        self.store = RecordingStore(url)
        await self.store.setup()
        self.checkpoints = open_checkpoints(url, str(self.workdir / "checkpoints.sqlite"))
        compiled = self.graph.compile(await self.checkpoints.setup())
        graphs = {GRAPH: ServedGraph.plain(GRAPH, compiled)}
        self.items = ItemStore(url)
        await self.items.setup()
        broker = StreamBroker()
        transport = LocalTransport(broker)
        webhook_owed = asyncio.Event()
        self.executor = Executor(
            store=self.store, broker=broker, checkpoints=self.checkpoints, graphs=graphs,
            item_store=self.items, transport=transport, webhook_owed=webhook_owed,
            # One SQLite process, as Runtime sets it up (or not: a cluster worker's rules).
            single_process=self.single_process, temporary_retention=0.0,
            max_concurrency=self.max_concurrency,
            # No periodic safety net: every start must come from a wake-up rule, so a
            # missing wake-up fails the test instead of being covered up a second later.
            recheck_seconds=3600.0,
        )
        self.service = Runlane(store=self.store, checkpoints=self.checkpoints, broker=broker,
                               executor=self.executor, graphs=graphs, transport=transport,
                               webhook_owed=webhook_owed, ttl_changed=asyncio.Event(),
                               recheck_seconds=2.0)
        await self.service.install_default_assistants()
        await self.executor.start()
        await self.dispatcher_claimed(since=0)  # its first look: nothing to start
        return self

    async def stop(self) -> None:
        for key in self.run_ids:
            self.graph.release(key)
        try:
            await eventually(self._nothing_executes, "the worker's runs ended")
        finally:
            await self.executor.stop()
            await self.store.close()
            await self.checkpoints.close()
            await self.items.close()

    async def _nothing_executes(self) -> bool:
        return self.executor.active_count == 0

    async def create(self, key: str, *, thread_of: str | None = None, **options: Any) -> str:
        """Create the run `key` (on a new thread, or on the thread of run `thread_of`)
        through the service, as POST /threads/{id}/runs does; its run id."""
        thread_id = self.thread_ids[thread_of] if thread_of else new_id()
        run = await self.service.create_run(thread_id, RunRequest(
            assistant_id=GRAPH, input={"key": key}, if_not_exists="create", **options))
        self.run_ids[key], self.thread_ids[key] = field(run, "run_id"), thread_id
        return field(run, "run_id")

    async def row(self, key: str) -> Any:
        return await self.store.get_run(self.thread_ids[key], self.run_ids[key])

    async def status(self, key: str) -> str:
        return field(await self.row(key), "status")

    async def statuses(self, *keys: str) -> list[str]:
        return [await self.status(key) for key in keys]

    async def running_in_store(self) -> int:
        return (await self.store.count_active_runs()).get("running", 0)

    async def wait_for_status(self, key: str, status: str) -> None:
        async def reached() -> bool:
            return await self.status(key) == status
        await eventually(reached, f"run {key} {status}")

    async def wait_until_executing(self, key: str) -> None:
        """The run's node began (it is running in the store and in its graph)."""
        async def began() -> bool:
            return key in self.graph.running
        await eventually(began, f"run {key}'s node began")

    async def finish(self, key: str) -> None:
        """Let run `key` end, and wait until its end is recorded."""
        self.graph.release(key)
        await self.wait_for_status(key, "success")

    async def dispatcher_claimed(self, since: int) -> None:
        """Wait for the dispatcher to have claimed (found, or not) since `since` claims."""
        async def claimed() -> bool:
            return self.store.claims_done > since
        await eventually(claimed, "the dispatcher claimed")

    def ids(self, *keys: str) -> list[str]:
        return [self.run_ids[key] for key in keys]
