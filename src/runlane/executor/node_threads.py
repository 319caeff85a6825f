"""Which runs still have work executing in a thread.

langgraph runs a synchronous node (and langchain a synchronous tool or model call) in
the event loop's default executor, through `loop.run_in_executor`. A cancel stops
the run's graph task at once, but not such a thread: the node goes on executing after
its run ended, and without care it would overlap the thread's next run and write
checkpoints onto it (a subgraph it invokes, for one).

`NodeThreads` is the loop's default executor (installed by the executor when the
worker starts): a `ThreadPoolExecutor` that also notes, for each job submitted from a
run's task, the run (the `logs.RUN_ID` context variable every run's tasks carry) and
the langgraph node it belongs to. The supervisor asks it, once a stopped run's graph
task is done, which nodes of the run are still executing, and waits for them
(see Supervision: the run's thread stays held meanwhile, within a bound).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from langchain_core.runnables.config import var_child_runnable_config

from runlane.observability import logs

T = TypeVar("T")


def _node_name() -> str:
    """The langgraph node whose task is submitting (the config langchain keeps in the
    current context), or "?" for work outside a node."""
    config = var_child_runnable_config.get() or {}
    metadata = config.get("metadata") or {}
    return str(metadata.get("langgraph_node") or "?")


class NodeThreads(concurrent.futures.ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(thread_name_prefix="runlane-node")
        self._lock = threading.Lock()
        # run id -> the run's jobs still executing (or queued), with their node names.
        self._jobs: dict[str, dict[concurrent.futures.Future[Any], str]] = {}

    def submit(self, fn: Callable[..., T], /, *args: Any,
               **kwargs: Any) -> concurrent.futures.Future[T]:
        future = super().submit(fn, *args, **kwargs)
        run_id = logs.RUN_ID.get()
        if run_id is not None:
            with self._lock:
                self._jobs.setdefault(run_id, {})[future] = _node_name()
            # Called at once (in this thread) if the job is already done.
            future.add_done_callback(lambda done: self._finished(run_id, done))
        return future

    def _finished(self, run_id: str, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            jobs = self._jobs.get(run_id)
            if jobs is not None:
                jobs.pop(future, None)
                if not jobs:
                    del self._jobs[run_id]

    def executing(self, run_id: str) -> dict[concurrent.futures.Future[Any], str]:
        """The run's jobs not done yet, with their node names."""
        with self._lock:
            return dict(self._jobs.get(run_id, {}))

    @staticmethod
    async def wait(jobs: dict[concurrent.futures.Future[Any], str], timeout: float) -> bool:
        """Wait until every job in `jobs` is done, at most `timeout` seconds; whether
        they all were."""
        if not jobs:
            return True
        waiting = [asyncio.wrap_future(job) for job in jobs]
        for wrapped in waiting:
            # A job's own failure is its run's business, not the waiter's: only its
            # end matters here (retrieved, so asyncio does not report it as lost).
            wrapped.add_done_callback(_retrieve)
        _, pending = await asyncio.wait(waiting, timeout=timeout)
        return not pending


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
