"""The langgraph checkpointer runlane gives every graph, and the two deletions runlane
needs beyond langgraph's API: a thread's checkpoints, and one run's (for rollback).

`CheckpointBackend` is what the executor and the service use; `SqliteCheckpoints` and
`PostgresCheckpoints` implement it, and `open_checkpoints` picks the one that goes
with runlane's database.

On SQLite, the checkpointer is langgraph-checkpoint-sqlite's `SqliteSaver`, driven
from asyncio by executing each call inline on the event loop. (The library's
`AsyncSqliteSaver` hops to a thread once per SQL statement through aiosqlite; a
dedicated thread with one hop per call was about 30% faster than that, and inline is
cheaper still.)
Checkpoints live in their own SQLite file so graph steps and run bookkeeping do not
contend for one write lock.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import dataclasses
import inspect
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.sqlite import SqliteSaver
from sqlalchemy.engine import make_url

from runlane.errors import DatabaseUnavailable
from runlane.store.checkpoint_fence import (
    GUARD_SQL,
    GUARD_SQLSTATE,
    WriteFence,
    guarded_write,
)

if TYPE_CHECKING:
    import psycopg

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class RestorePoint:
    """Pending writes on the checkpoints a run starts from, as they were before it."""

    start_checkpoints: frozenset[tuple[str, str]]  # (checkpoint_ns, checkpoint_id)
    writes: tuple[tuple[Any, ...], ...]  # full rows of the writes table

    def to_json(self) -> dict[str, Any]:
        """A JSON form, kept in the store while the run runs (store/restore_points.py):
        a rollback completed by another process restores from it. A row's values are
        text, integers, NULL and blobs; a blob becomes {"b64": ...}."""
        return {
            "start_checkpoints": sorted([ns, cid] for ns, cid in self.start_checkpoints),
            "writes": [[_json_cell(value) for value in row] for row in self.writes],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RestorePoint:
        return cls(
            frozenset((ns, cid) for ns, cid in data["start_checkpoints"]),
            tuple(tuple(_cell(value) for value in row) for row in data["writes"]),
        )


def _json_cell(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"b64": base64.b64encode(bytes(value)).decode("ascii")}
    return value


def _cell(value: Any) -> Any:
    if isinstance(value, dict):
        return base64.b64decode(value["b64"])
    return value


class CheckpointBackend(Protocol):
    """The checkpointer of one deployment, as runlane drives it."""

    async def setup(self) -> BaseCheckpointSaver:
        """Open (and migrate) it; the saver every graph is given."""
        ...

    async def close(self) -> None:
        ...

    async def delete_thread(self, thread_id: str) -> None:
        ...

    def commit_now(self) -> None:
        """Make every checkpoint written so far durable: a run's outcome is recorded
        only after the checkpoints it reports."""
        ...

    async def restore_point(self, thread_id: str, start_checkpoint_id: str | None) -> RestorePoint:
        """The pending writes a run starting now may overwrite, for its rollback."""
        ...

    async def delete_run(
        self, thread_id: str, run_id: str, restore: RestorePoint | None = None
    ) -> int:
        """Delete the checkpoints a run wrote and put back `restore` (its rollback)."""
        ...

    async def refuse_writes_of(self, thread_id: str, run_id: str) -> None:
        """Drop every checkpoint write of this run from now on: it is ending, and work
        of it still executing (a node abandoned in a thread) must not write onto the
        thread after its end is recorded. Writes under way have landed on return."""
        ...

    def fence_writes(self, fence: WriteFence) -> None:
        """From now on, a run's write lands only while `fence` allows it (scale-out:
        this worker holds its lease, and on PostgreSQL the run is still running on
        this worker, checked in the write's transaction): see checkpoint_fence.py."""
        ...


class InlineSqliteSaver(SqliteSaver):
    """`SqliteSaver` whose async API executes inline on the event loop.

    Checkpoint writes are small local SQLite statements (WAL, synchronous=NORMAL: no
    fsync per commit); a thread hop per call cost more than the call, as for the store
    (see store/database.py). Inline, every operation is also serialized in the order
    the loop issues it, which `put` relies on."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__(conn)
        # Re-entrant: `put` checks whether its run's writes are refused and writes
        # under the same lock (see `refuse_writes_of`).
        self.lock = threading.RLock()  # type: ignore[assignment]  # a Lock in SqliteSaver
        # Runs whose writes are dropped (see `put`): their checkpoints a rollback
        # deleted, or they ended with a node still executing in a thread. Changed only
        # on the event loop, so in the order operations reach it. Bounded: a late
        # write arrives within moments (or a bounded grace) of its run's end.
        self._refused: collections.OrderedDict[str, None] = collections.OrderedDict()
        # Scale-out's write fence (checkpoint_fence.py), if any: a run's write while
        # this worker's lease is not held raises RunFenced.
        self.fence: WriteFence | None = None
        # Group commit: checkpoint writes made on the event loop share one commit,
        # issued on the loop's next turn, instead of one commit each (a commit costs
        # ten times the insert). What may be pending is committed before a run's end
        # is recorded (`commit_now`, called by the executor before it settles), so a
        # recorded outcome never outlives the checkpoints it reports. Only writes made
        # on the loop's thread defer (a sync node's thread calling the sync API commits
        # at once, as SqliteSaver does): `_defer` is set by `put`/`put_writes` on that
        # thread, and read only together with the thread's identity. (A thread-local
        # flag and asking asyncio for the running loop on every write cost about 1% of
        # the server's CPU per run.)
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            self._loop_thread: int | None = threading.get_ident()
        except RuntimeError:  # built outside a loop: every write commits at once
            self._loop, self._loop_thread = None, None
        self._defer = False
        self._commit_scheduled = False

    @contextlib.contextmanager
    def cursor(self, transaction: bool = True) -> Iterator[sqlite3.Cursor]:
        with self.lock:
            self.setup()
            cur = self.conn.cursor()
            try:
                yield cur
            finally:
                cur.close()
                if transaction:
                    if self._defer and threading.get_ident() == self._loop_thread:
                        self._schedule_commit()
                    else:
                        self.conn.commit()

    def _schedule_commit(self) -> None:
        if not self._commit_scheduled:
            self._commit_scheduled = True
            self._loop.call_soon(self.commit_now)  # type: ignore[union-attr]  # set before writes

    def commit_now(self) -> None:
        """Commit the checkpoint writes still waiting for their group commit."""
        with self.lock:
            self._commit_scheduled = False
            if self.conn.in_transaction:
                self.conn.commit()

    @contextlib.contextmanager
    def _group_commit(self) -> Iterator[None]:
        """Defer the commit of the writes made inside, when on the loop's thread."""
        if threading.get_ident() != self._loop_thread:
            yield
            return
        self._defer = True
        try:
            yield
        finally:
            self._defer = False

    def _is_refused(self, config: RunnableConfig) -> bool:
        run_id = (config.get("configurable") or {}).get("run_id")
        return run_id is not None and str(run_id) in self._refused

    def refuse_writes_of(self, run_id: str) -> None:
        """From the return on, no write of `run_id` lands: under the lock every write
        takes, so one made from a node's thread is either done or will be dropped."""
        with self.lock:
            self._refused[run_id] = None
            while len(self._refused) > 10_000:
                self._refused.popitem(last=False)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """A cancel can stop a graph task while langgraph's background checkpoint
        writes are still in flight: they outlive the task. One landing after its run's
        rollback would bring the rolled-back state back, and the next run would start
        on top of it. The rollback's delete and every write run on the event loop in
        order, so a write of a rolled-back run that comes after the delete is dropped;
        so is any write of a run that ended with a node still executing in a thread
        (`refuse_writes_of`; such a node writes from its thread, under `self.lock`)."""
        if self.fence is not None:
            self.fence.check(config)  # raises RunFenced: nothing written
        with self.lock:
            if self._is_refused(config):
                configurable = config["configurable"]
                return {"configurable": {"thread_id": configurable["thread_id"],
                                         "checkpoint_ns": configurable.get("checkpoint_ns", ""),
                                         "checkpoint_id": checkpoint["id"]}}
            with self._group_commit():
                return super().put(config, checkpoint, metadata, new_versions)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        if self.fence is not None:
            self.fence.check(config)  # as in `put`
        with self.lock:
            if self._is_refused(config):
                return  # as in `put`
            with self._group_commit():
                super().put_writes(config, writes, task_id, task_path)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return fn(*args, **kwargs)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self.call(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        items = await self.call(
            lambda: list(self.list(config, filter=filter, before=before, limit=limit))
        )
        for item in items:
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self.call(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await self.call(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await self.call(self.delete_thread, thread_id)

    def restore_point(self, thread_id: str, start_checkpoint_id: str | None) -> RestorePoint:
        """The pending writes a run could add to (or replace on) checkpoints that
        existed before it: those of the checkpoint it resumes from, in every
        namespace. Taken before the run's graph starts."""
        with self.cursor(transaction=False) as cur:
            cur.execute(
                "SELECT checkpoint_ns, max(checkpoint_id) FROM checkpoints "
                "WHERE thread_id = ? GROUP BY checkpoint_ns",
                (thread_id,),
            )
            starts = {(ns, cid) for ns, cid in cur.fetchall()}
            if start_checkpoint_id:
                starts.add(("", start_checkpoint_id))
            writes: list[tuple[Any, ...]] = []
            for ns, cid in starts:
                cur.execute(
                    "SELECT thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, "
                    "type, value FROM writes WHERE thread_id = ? AND checkpoint_ns = ? "
                    "AND checkpoint_id = ?",
                    (thread_id, ns, cid),
                )
                writes.extend(cur.fetchall())
        return RestorePoint(frozenset(starts), tuple(writes))

    def delete_run(self, thread_id: str, run_id: str, restore: RestorePoint | None) -> int:
        """Put the thread's checkpoints back to exactly what they were before `run_id`.

        langgraph copies `configurable.run_id` into every checkpoint's metadata, so
        the run's own checkpoints (and their writes) are found exactly, and history
        from before the run is never touched. A run that resumed an earlier
        checkpoint also wrote onto it (its resume value, its tasks' results): those
        checkpoints get back exactly the pending writes `restore` recorded.
        Writes of the run still in flight are dropped from now on (see `put`).
        """
        self.refuse_writes_of(run_id)
        written_by_run = (
            "SELECT checkpoint_id FROM checkpoints WHERE thread_id = ? "
            "AND json_extract(CAST(metadata AS TEXT), '$.run_id') = ?"
        )
        with self.cursor() as cur:
            cur.execute(
                f"DELETE FROM writes WHERE thread_id = ? AND checkpoint_id IN ({written_by_run})",
                (thread_id, thread_id, run_id),
            )
            cur.execute(
                "DELETE FROM checkpoints WHERE thread_id = ? AND checkpoint_id IN "
                f"({written_by_run})",
                (thread_id, thread_id, run_id),
            )
            deleted = cur.rowcount
            if restore is not None:
                for ns, cid in restore.start_checkpoints:
                    cur.execute(
                        "DELETE FROM writes WHERE thread_id = ? AND checkpoint_ns = ? "
                        "AND checkpoint_id = ?",
                        (thread_id, ns, cid),
                    )
                cur.executemany(
                    "INSERT OR REPLACE INTO writes (thread_id, checkpoint_ns, checkpoint_id, "
                    "task_id, idx, channel, type, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    restore.writes,
                )
            return deleted

    def shutdown(self) -> None:
        self.commit_now()
        self.conn.close()


class SqliteCheckpoints:
    """The checkpointer for SQLite deployments: a file beside runlane's database."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.saver: InlineSqliteSaver | None = None

    async def setup(self) -> BaseCheckpointSaver:
        if self.path != ":memory:":
            # A blocking call in a coroutine, but once, at startup.
            directory = os.path.dirname(os.path.abspath(self.path))  # noqa: ASYNC240
            os.makedirs(directory, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        self.saver = InlineSqliteSaver(conn)
        await self.saver.call(self.saver.setup)
        return self.saver

    async def close(self) -> None:
        if self.saver is not None:
            saver, self.saver = self.saver, None
            await asyncio.get_running_loop().run_in_executor(None, saver.shutdown)

    async def delete_thread(self, thread_id: str) -> None:
        assert self.saver is not None
        await self.saver.adelete_thread(thread_id)

    def commit_now(self) -> None:
        """Make every checkpoint written so far durable (see InlineSqliteSaver)."""
        if self.saver is not None:
            self.saver.commit_now()

    async def restore_point(self, thread_id: str, start_checkpoint_id: str | None) -> RestorePoint:
        assert self.saver is not None
        return await self.saver.call(self.saver.restore_point, thread_id, start_checkpoint_id)

    async def delete_run(
        self, thread_id: str, run_id: str, restore: RestorePoint | None = None
    ) -> int:
        assert self.saver is not None
        return await self.saver.call(self.saver.delete_run, thread_id, run_id, restore)

    async def refuse_writes_of(self, thread_id: str, run_id: str) -> None:
        if self.saver is not None:
            self.saver.refuse_writes_of(run_id)

    def fence_writes(self, fence: WriteFence) -> None:
        assert self.saver is not None
        self.saver.fence = fence


_PG_SETUP_LOCK = 0x72756E6C636B70  # advisory lock: one worker migrates the checkpointer


async def try_advisory_lock(conn: psycopg.AsyncConnection[Any], key: int) -> bool:
    """Whether this session now holds PostgreSQL's advisory lock `key`; never waits."""
    row = await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (key,))).fetchone()
    assert row is not None  # a SELECT of one function call: one row
    return bool(row[0])


class PostgresCheckpoints:
    """The checkpointer for PostgreSQL deployments: langgraph-checkpoint-postgres's
    `AsyncPostgresSaver` on a connection pool, in runlane's database."""

    def __init__(self, url: str, pool_size: int = 2) -> None:
        self.url = url
        self.pool_size = pool_size
        self.pool: Any = None
        self.saver: Any = None

    def commit_now(self) -> None:
        """Nothing waits: AsyncPostgresSaver commits each write itself."""

    async def setup(self) -> BaseCheckpointSaver:
        import psycopg
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        self.pool = AsyncConnectionPool(
            self.url, min_size=1, max_size=self.pool_size, open=False,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
            # Checked at every checkout (as the store's pool_pre_ping): after PostgreSQL
            # restarted, a pooled connection it cut would fail the next request with a
            # 500 (AdminShutdown) instead of being replaced (found by `make soak`).
            check=AsyncConnectionPool.check_connection,
        )
        await self.pool.open(wait=True, timeout=10)
        self.saver = _guarded_postgres_saver(self.pool)
        # Workers starting together must not run the saver's migrations together.
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as lock:
            # Poll, never block inside the statement: a waiting pg_advisory_lock holds a
            # snapshot, and the holder's setup runs CREATE INDEX CONCURRENTLY, which waits
            # for every older snapshot: workers starting together deadlocked forever.
            while not await try_advisory_lock(lock, _PG_SETUP_LOCK):  # noqa: ASYNC110 - see above
                await asyncio.sleep(0.1)
            try:
                await self.saver.setup()
            finally:
                await lock.execute("SELECT pg_advisory_unlock(%s)", (_PG_SETUP_LOCK,))
        return self.saver

    async def close(self) -> None:
        if self.pool is not None:
            pool, self.pool = self.pool, None
            await pool.close()

    async def delete_thread(self, thread_id: str) -> None:
        await self.saver.adelete_thread(thread_id)

    async def refuse_writes_of(self, thread_id: str, run_id: str) -> None:
        # As for a rollback: refuse new writes, then wait for those under way.
        self.saver.refuse_writes_of(run_id)
        await self.saver.writes_settled(thread_id)

    def fence_writes(self, fence: WriteFence) -> None:
        self.saver.fence = fence

    async def restore_point(self, thread_id: str, start_checkpoint_id: str | None) -> RestorePoint:
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await cur.execute(
                "SELECT checkpoint_ns, max(checkpoint_id) AS checkpoint_id FROM checkpoints "
                "WHERE thread_id = %s GROUP BY checkpoint_ns",
                (thread_id,),
            )
            starts = {(row["checkpoint_ns"], row["checkpoint_id"]) for row in await cur.fetchall()}
            if start_checkpoint_id:
                starts.add(("", start_checkpoint_id))
            writes: list[tuple[Any, ...]] = []
            for ns, cid in starts:
                await cur.execute(
                    "SELECT thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, "
                    "type, blob, task_path FROM checkpoint_writes WHERE thread_id = %s "
                    "AND checkpoint_ns = %s AND checkpoint_id = %s",
                    (thread_id, ns, cid),
                )
                writes.extend(tuple(row.values()) for row in await cur.fetchall())
        return RestorePoint(frozenset(starts), tuple(writes))

    async def delete_run(
        self, thread_id: str, run_id: str, restore: RestorePoint | None = None
    ) -> int:
        """As InlineSqliteSaver.delete_run, in one PostgreSQL transaction."""
        # Late writes of this run (see _guarded_postgres_saver): refuse new ones,
        # wait for those under way, then delete.
        self.saver.refuse_writes_of(run_id)
        await self.saver.writes_settled(thread_id)
        written_by_run = (
            "SELECT checkpoint_id FROM checkpoints WHERE thread_id = %s "
            "AND metadata->>'run_id' = %s"
        )
        async with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.execute(
                "DELETE FROM checkpoint_writes WHERE thread_id = %s AND checkpoint_id IN "
                f"({written_by_run})",
                (thread_id, thread_id, run_id),
            )
            await cur.execute(
                "DELETE FROM checkpoints WHERE thread_id = %s AND checkpoint_id IN "
                f"({written_by_run})",
                (thread_id, thread_id, run_id),
            )
            deleted = cur.rowcount
            if restore is not None:
                for ns, cid in restore.start_checkpoints:
                    await cur.execute(
                        "DELETE FROM checkpoint_writes WHERE thread_id = %s AND "
                        "checkpoint_ns = %s AND checkpoint_id = %s",
                        (thread_id, ns, cid),
                    )
                if restore.writes:
                    await cur.executemany(
                        "INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, "
                        "task_id, idx, channel, type, blob, task_path) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                        list(restore.writes),
                    )
            return deleted


def _presign(saver: type) -> None:
    """langgraph inspects `aput_writes`'s signature when every run starts (does it
    take `task_path`?); computed once here, that check is cheap."""
    for name in ("aput_writes", "put_writes"):
        method = getattr(saver, name)
        method.__signature__ = inspect.signature(method)


_presign(InlineSqliteSaver)


# Over the complexity ceiling: the methods of the class it defines count here.
def _guarded_postgres_saver(pool: Any) -> Any:  # noqa: C901
    """The library's `AsyncPostgresSaver`, guarded against a rolled-back run's late
    writes. A cancel can stop a graph task while langgraph's background checkpoint
    writes are still in flight: they outlive the task. On PostgreSQL they run on a
    pool, concurrently with the rollback's delete, so the rollback first refuses any
    new write of the run, then waits for the ones under way, then deletes.

    Fenced too (checkpoint_fence.py): a run's write is refused while this worker's
    lease is not held, and its transaction ends with the guard statement that fails
    unless the run is still running on this worker."""
    import psycopg
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg_pool import PoolTimeout

    class GuardedAsyncPostgresSaver(AsyncPostgresSaver):
        def __init__(self, conn: Any) -> None:
            super().__init__(conn)
            self._refused: collections.OrderedDict[str, None] = collections.OrderedDict()
            self._under_way: dict[str, set[asyncio.Future[None]]] = {}
            self.fence: WriteFence | None = None

        def refuse_writes_of(self, run_id: str) -> None:
            self._refused[run_id] = None
            while len(self._refused) > 10_000:
                self._refused.popitem(last=False)

        async def writes_settled(self, thread_id: str) -> None:
            while self._under_way.get(thread_id):
                await asyncio.wait(list(self._under_way[thread_id]))

        @contextlib.asynccontextmanager
        async def _write(self, config: RunnableConfig) -> AsyncIterator[bool]:
            configurable = config.get("configurable") or {}
            if str(configurable.get("run_id")) in self._refused:
                yield False
                return
            fence = self.fence
            run_id = None if fence is None else fence.check(config)  # may raise RunFenced
            thread_id = str(configurable.get("thread_id"))
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._under_way.setdefault(thread_id, set()).add(done)
            token = None
            if fence is not None and run_id is not None:
                token = guarded_write.set((run_id, fence.worker_id))
            try:
                yield True
            except psycopg.Error as exc:
                if fence is None or run_id is None or exc.sqlstate != GUARD_SQLSTATE:
                    raise
                fence.refuse(run_id, "the run is no longer running on this worker", exc)
            finally:
                if token is not None:
                    guarded_write.reset(token)
                done.set_result(None)
                under_way = self._under_way.get(thread_id, set())
                under_way.discard(done)
                if not under_way:
                    self._under_way.pop(thread_id, None)

        @contextlib.asynccontextmanager
        async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[Any]:
            """The library's cursor; a guarded run write's pipeline (one implicit
            transaction, committed at its sync) ends with the guard statement, so
            the write lands only if the run is still this worker's, at commit."""
            guard = guarded_write.get() if pipeline else None
            async with super()._cursor(pipeline=pipeline) as cur:
                yield cur
                if guard is not None:
                    await cur.execute(GUARD_SQL, guard)

        # Reads answer 503 while PostgreSQL is unreachable, as the store's own do: the
        # driver's OperationalError (a connection cut by a restart, or refused) would
        # reach the client as a 500 (found by `make soak`: GET /threads/{id}/state).
        async def aget_tuple(self, config: RunnableConfig) -> Any:
            try:
                return await super().aget_tuple(config)
            except (psycopg.OperationalError, PoolTimeout) as exc:
                raise DatabaseUnavailable(str(exc)) from exc

        async def alist(self, config: RunnableConfig | None, **kwargs: Any,
                        ) -> AsyncIterator[CheckpointTuple]:
            try:
                async for item in super().alist(config, **kwargs):
                    yield item
            except (psycopg.OperationalError, PoolTimeout) as exc:
                raise DatabaseUnavailable(str(exc)) from exc

        async def aput(self, config: RunnableConfig, checkpoint: Checkpoint,
                       metadata: CheckpointMetadata, new_versions: ChannelVersions) -> Any:
            async with self._write(config) as allowed:
                if allowed:
                    return await super().aput(config, checkpoint, metadata, new_versions)
            configurable = config["configurable"]
            return {"configurable": {"thread_id": configurable["thread_id"],
                                     "checkpoint_ns": configurable.get("checkpoint_ns", ""),
                                     "checkpoint_id": checkpoint["id"]}}

        async def aput_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]],
                              task_id: str, task_path: str = "") -> None:
            async with self._write(config) as allowed:
                if allowed:
                    await super().aput_writes(config, writes, task_id, task_path)

    _presign(GuardedAsyncPostgresSaver)
    return GuardedAsyncPostgresSaver(pool)


def open_checkpoints(database_url: str, sqlite_path: str,
                     pool_size: int = 2) -> CheckpointBackend:
    """The checkpointer that goes with runlane's database (`pool_size`: PostgreSQL
    connections at most)."""
    parsed = make_url(database_url)
    if parsed.get_backend_name() == "postgresql":
        plain = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        return PostgresCheckpoints(plain, pool_size)
    return SqliteCheckpoints(sqlite_path)
