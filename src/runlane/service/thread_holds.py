"""Changing a thread's checkpoints outside a run: a state update, a `keep_latest` prune.

Such a change is allowed only between runs. Checking that the thread is idle and
then writing would leave a window in which a run starts and reads (or writes) the
checkpoints being changed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from runlane.contract import ThreadStatus
from runlane.errors import Conflict, NotFound
from runlane.owners import Owner
from runlane.store import Store

T = TypeVar("T")


async def between_runs(store: Store, thread_id: str, change: Callable[[], Awaitable[T]], *,
                       owner: Owner = None) -> T:
    thread = await store.get_thread(thread_id, owner=owner)
    if thread is None:
        raise NotFound(f"thread {thread_id} not found")
    if thread.status is ThreadStatus.BUSY:
        raise Conflict(f"thread {thread_id} is busy: its state can change only between runs")
    return await change()
