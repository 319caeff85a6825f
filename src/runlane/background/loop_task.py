"""The scaffolding every background job of a worker shares: its loop runs as one
asyncio task from `start` until `stop`, which cancels it and waits for it to end (a
step under way is cut at its next await; each job says what that leaves behind)."""

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
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        raise NotImplementedError
