"""The scaffolding of a worker's long-lived tasks: a job whose loop runs as one asyncio
task from `start` until `stop` (the background jobs, the lease keeper), and the
cancel-and-wait that ends such a task (a step under way is cut at its next await;
each job says what that leaves behind). Below every layer: it imports nothing of
runlane."""

from __future__ import annotations

import asyncio
import contextlib


class LoopTask:
    """A job whose `_loop` runs forever; `task_name` names its task (asyncio's debug
    output, task dumps)."""

    task_name = "runlane-background"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=self.task_name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _loop(self) -> None:
        raise NotImplementedError


async def cancel_and_wait(task: asyncio.Task[None] | None) -> None:
    """Cancel `task` (if any) and wait until it has ended."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
