"""Thread use cases beyond create/read/delete: copy a thread, prune threads.

Kept apart from runs.py (runs and their lifecycle); these only combine the
store's thread rows with the checkpointer's whole-thread operations.
"""

from __future__ import annotations

import functools
import logging
import uuid

from runlane.errors import Conflict, NotFound
from runlane.observability import logs
from runlane.owners import Owner
from runlane.records import Thread
from runlane.service.runs import Runlane
from runlane.service.thread_holds import between_runs
from runlane.store.thread_checkpoints import copy_thread as copy_checkpoints
from runlane.store.thread_checkpoints import prune_keep_latest

log = logging.getLogger("runlane.service")

async def copy_thread(svc: Runlane, thread_id: str, *, owner: Owner = None) -> Thread:
    """A new thread with the same metadata, values and every checkpoint (so the same
    state and history). Its runs are not copied: it starts with none."""
    source = await svc.store.get_thread(thread_id, owner=owner)
    if source is None or source.temporary:
        raise NotFound(f"thread {thread_id} not found")
    new_id = str(uuid.uuid4())
    # Checkpoints first: a thread row that became visible before its state would
    # answer reads with an empty state.
    await copy_checkpoints(svc.checkpoints, thread_id, new_id)
    try:
        return await svc.store.insert_thread_copy(source, new_id, owner=owner)
    except BaseException:
        # The copy's row was refused (or the request cancelled): its checkpoints go,
        # and the original failure is what the caller sees.
        with logs.failure_logged(log, "copying thread %s: removing the copied checkpoints "
                                      "of %s", thread_id, new_id):
            await svc.checkpoints.delete_thread(new_id)
        raise


async def prune_threads(svc: Runlane, thread_ids: list[str], strategy: str, *,
                        owner: Owner = None) -> int:
    """`delete`: delete the threads (as DELETE /threads/{id} does). `keep_latest`: keep
    them with only their latest checkpoint per namespace. Ids the caller cannot see
    are skipped. How many threads were pruned."""
    visible = await svc.store.visible_thread_ids(list(dict.fromkeys(thread_ids)), owner=owner)
    pruned = 0
    for thread_id in visible:
        if strategy == "delete":
            try:
                await svc.delete_thread(thread_id, owner=owner)
            except NotFound:  # deleted meanwhile (another prune, the TTL sweeper)
                continue
        else:
            # Only between runs (a run's checkpoints are not pruned under it): a
            # thread with an active run is skipped, as one that is gone.
            try:
                await between_runs(
                    svc.store, thread_id, functools.partial(prune_keep_latest, svc.checkpoints,
                                                            thread_id),
                    owner=owner, wake=svc.executor.wake)
            except (NotFound, Conflict):
                continue
        pruned += 1
    return pruned
