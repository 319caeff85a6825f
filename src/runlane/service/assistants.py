"""Deleting an assistant, with what hangs on it (as the reference server cascades):
its versions, its crons, its runs, and on request the threads made for it."""

from __future__ import annotations

import asyncio

from runlane.contract import CancelAction
from runlane.errors import NotFound
from runlane.owners import Owner
from runlane.service.runs import Runlane


async def delete_assistant_cascade(svc: Runlane, assistant_id: str, *, owner: Owner = None,
                                   delete_threads: bool = False) -> None:
    # Active runs are interrupted through the run contract and waited for: deleting a
    # running run's row under its executor would leave its thread `busy`.
    await asyncio.gather(*(
        svc.cancel_run(thread_id, run_id, action=CancelAction.INTERRUPT, wait=True)
        for thread_id, run_id in await svc.store.active_runs_of_assistant(assistant_id)))
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
    if not await svc.store.delete_assistant(assistant_id, owner=owner):
        raise NotFound(f"assistant {assistant_id} not found")
