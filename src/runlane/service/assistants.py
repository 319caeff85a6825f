"""Deleting an assistant, with what hangs on it (as the reference server cascades):
its versions, its crons, its runs, and on request the threads made for it."""

from __future__ import annotations

import asyncio

from runlane.contract import RunStatus
from runlane.errors import NotFound
from runlane.owners import Owner
from runlane.service.runs import Runlane


async def delete_assistant_cascade(svc: Runlane, assistant_id: str, *, owner: Owner = None,
                                   delete_threads: bool = False) -> None:
    if delete_threads:
        threads = await svc.store.search_threads(
            metadata_filter={"assistant_id": assistant_id}, values_filter=None, status=None,
            ids=None, limit=10_000, offset=0, sort_by="created_at", sort_order="asc",
            owner=owner)
        for thread in threads:
            try:
                await svc.delete_thread(thread.thread_id, owner=owner)
            except NotFound:  # deleted meanwhile
                pass
    # One transaction deletes the assistant and records a cancel on each of its active
    # runs, so no run can be created for it in between (see Store.delete_assistant).
    cancels = await svc.store.delete_assistant(assistant_id, owner=owner)
    if cancels is None:
        raise NotFound(f"assistant {assistant_id} not found")
    # Its running runs are stopped through the run contract and waited for: deleting
    # a running run's row under its executor would leave its thread `busy`.
    await svc.after_cancels(cancels)
    running = [c.run for c in cancels
               if c.run is not None and c.run.status is RunStatus.RUNNING]
    await asyncio.gather(*(svc.await_terminal(run.thread_id, run.run_id) for run in running))
    if running:
        await svc.store.delete_finished_runs_of_assistant(assistant_id)
