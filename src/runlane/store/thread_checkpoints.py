"""Whole-thread checkpoint operations beyond langgraph's saver API: copy a thread's
checkpoints to a new thread (POST /threads/{id}/copy), and keep only each
namespace's latest checkpoint (prune `keep_latest`, TTL `keep_latest`).

Both are done in SQL on the saver's own tables, in one transaction, so a copy is
exact (every checkpoint, blob and pending write, with its task path) and consistent
even while a run is writing to the source thread. Column lists are read from the
database, so a newer langgraph-checkpoint schema with extra columns is copied whole.
"""

from __future__ import annotations

from typing import Any

from runlane.store.checkpoints import CheckpointBackend, PostgresCheckpoints, SqliteCheckpoints

_SQLITE_TABLES = ("checkpoints", "writes")
# Blobs first: a checkpoint row refers to its channel versions' blobs.
_POSTGRES_TABLES = ("checkpoint_blobs", "checkpoints", "checkpoint_writes")


async def copy_thread(checkpoints: CheckpointBackend, source: str, target: str) -> None:
    if isinstance(checkpoints, PostgresCheckpoints):
        await _copy_postgres(checkpoints, source, target)
    else:
        assert isinstance(checkpoints, SqliteCheckpoints)
        saver = checkpoints.saver
        assert saver is not None
        await saver.call(_copy_sqlite, saver, source, target)


async def prune_keep_latest(checkpoints: CheckpointBackend, thread_id: str) -> None:
    if isinstance(checkpoints, PostgresCheckpoints):
        await checkpoints.saver.aprune([thread_id], strategy="keep_latest")
    else:
        assert isinstance(checkpoints, SqliteCheckpoints)
        saver = checkpoints.saver
        assert saver is not None
        await saver.call(_prune_sqlite, saver, thread_id)


def _copy_sqlite(saver: Any, source: str, target: str) -> None:
    with saver.cursor() as cur:  # one transaction (SqliteSaver commits on exit)
        for table in _SQLITE_TABLES:
            columns = [row[1] for row in cur.execute(f"PRAGMA table_info({table})")]
            others = ", ".join(c for c in columns if c != "thread_id")
            cur.execute(f"INSERT INTO {table} (thread_id, {others}) "
                        f"SELECT ?, {others} FROM {table} WHERE thread_id = ?", (target, source))


def _prune_sqlite(saver: Any, thread_id: str) -> None:
    latest = ("SELECT checkpoint_ns, max(checkpoint_id) FROM checkpoints WHERE thread_id = ? "
              "GROUP BY checkpoint_ns")
    with saver.cursor() as cur:
        for table in ("writes", "checkpoints"):
            cur.execute(f"DELETE FROM {table} WHERE thread_id = ? AND "
                        f"(checkpoint_ns, checkpoint_id) NOT IN ({latest})",
                        (thread_id, thread_id))


async def _copy_postgres(checkpoints: PostgresCheckpoints, source: str, target: str) -> None:
    import psycopg

    async with checkpoints.pool.connection() as conn:
        # One snapshot for every table: a run writing to the source meanwhile is
        # either wholly in the copy or wholly out of it.
        await conn.set_autocommit(False)
        await conn.set_isolation_level(psycopg.IsolationLevel.REPEATABLE_READ)
        try:
            async with conn.transaction(), conn.cursor() as cur:
                for table in _POSTGRES_TABLES:
                    await cur.execute(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_schema = current_schema() AND table_name = %s "
                        "ORDER BY ordinal_position", (table,))
                    others = ", ".join(
                        f'"{row["column_name"]}"' for row in await cur.fetchall()
                        if row["column_name"] != "thread_id")
                    await cur.execute(
                        f"INSERT INTO {table} (thread_id, {others}) "
                        f"SELECT %s, {others} FROM {table} WHERE thread_id = %s",
                        (target, source))
        finally:
            await conn.set_isolation_level(None)
            await conn.set_autocommit(True)
