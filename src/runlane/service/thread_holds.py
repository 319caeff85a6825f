"""Changing a thread's checkpoints outside a run: a state update, a `keep_latest` prune.

Such a change is allowed only between runs. Checking that the thread is idle and
then writing would leave a window in which a run starts and reads (or writes) the
checkpoints being changed, so the change holds the thread instead
(Store.hold_thread): one compare-and-set that fails (409) if a run is active, after
which no run starts on the thread until the change is over. Runs created meanwhile
are admitted and wait, as they would behind a run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from runlane.owners import Owner
from runlane.store import Store

T = TypeVar("T")


async def between_runs(store: Store, thread_id: str, change: Callable[[], Awaitable[T]], *,
                       owner: Owner = None, wake: Callable[[], None] | None = None) -> T:
    """Run `change` while the thread is held. NotFound: no such thread (or another
    owner's); Conflict: a run is active on it, or another change is under way.
    `wake`: the local dispatcher's wake-up (runs may have been admitted meanwhile)."""
    token = await store.hold_thread(thread_id, owner=owner)
    try:
        return await change()
    finally:
        await release(store, thread_id, token, wake)


async def release(store: Store, thread_id: str, token: str,
                  wake: Callable[[], None] | None) -> None:
    await store.release_thread(thread_id, token)
    if wake is not None:
        wake()
