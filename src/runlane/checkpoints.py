"""The langgraph checkpointer runlane gives every graph, and the two deletions runlane
needs beyond its API: a thread's checkpoints, and one run's (for rollback)."""

from __future__ import annotations

import os

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver


class Checkpoints:
    def __init__(self, path: str) -> None:
        self.path = path
        self.saver: AsyncSqliteSaver | None = None
        self._conn: aiosqlite.Connection | None = None

    async def setup(self) -> BaseCheckpointSaver:
        if self.path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._conn = await aiosqlite.connect(self.path)
        await self._conn.execute("PRAGMA journal_mode=WAL")
        await self._conn.execute("PRAGMA synchronous=NORMAL")
        self.saver = AsyncSqliteSaver(self._conn)
        await self.saver.setup()
        return self.saver

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def delete_thread(self, thread_id: str) -> None:
        assert self.saver is not None
        await self.saver.adelete_thread(thread_id)

    async def delete_run(self, thread_id: str, run_id: str) -> int:
        """Remove exactly the checkpoints (and their pending writes) that `run_id` wrote.

        langgraph copies `configurable.run_id` into every checkpoint's metadata, so
        this never touches history from before the run, whenever the cancel landed.
        """
        saver = self.saver
        assert saver is not None
        written_by_run = (
            "SELECT checkpoint_id FROM checkpoints WHERE thread_id = ? "
            "AND json_extract(CAST(metadata AS TEXT), '$.run_id') = ?"
        )
        async with saver.lock:
            await saver.conn.execute(
                f"DELETE FROM writes WHERE thread_id = ? AND checkpoint_id IN ({written_by_run})",
                (thread_id, thread_id, run_id),
            )
            cursor = await saver.conn.execute(
                f"DELETE FROM checkpoints WHERE thread_id = ? AND checkpoint_id IN ({written_by_run})",
                (thread_id, thread_id, run_id),
            )
            await saver.conn.commit()
            return cursor.rowcount
