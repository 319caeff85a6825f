"""Restore points of running runs (a mixin of Store).

A run that resumes a checkpoint which existed before it (a resume, a `command`, a
run without input) writes onto that checkpoint: its resume value, its tasks'
results. Its rollback must put back the pending writes that checkpoint had before
the run: the *restore point* (checkpoints.RestorePoint), read before the graph
starts. Held only in the executing worker's memory, it died with that worker, and a
rollback completed by another worker (or by the next start of one SQLite process)
could not restore them. So it is kept here, one row per run, from before the graph
can write until the run leaves `running`:

- written by the executing worker, fenced by its worker id and only while the run
  is `running` (under the thread's row lock, as every status change: a run reaped or
  settled meanwhile gets no row);
- read by whoever completes the run's rollback;
- deleted in the transaction that ends the run (its settle, its rollback's removal,
  its reaping), and swept for runs no longer running (restart recovery, the lease
  keeper's housekeeping, a thread's deletion): a row never outlives its run.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from runlane.contract import RunStatus
from runlane.serde import JSONObject, utcnow
from runlane.store.schema import run_restore_points, runs

# A row whose run is no longer running is of no use to anyone.
_ORPHANED = ~sa.exists().where(runs.c.run_id == run_restore_points.c.run_id,
                               runs.c.status == RunStatus.RUNNING.value)


def drop(conn: Connection, run_ids: Iterable[str]) -> None:
    """Delete the restore points of these runs (they are ending in this transaction)."""
    ids = list(run_ids)
    if ids:
        conn.execute(run_restore_points.delete().where(run_restore_points.c.run_id.in_(ids)))


def drop_thread(conn: Connection, thread_id: str) -> None:
    conn.execute(run_restore_points.delete().where(run_restore_points.c.thread_id == thread_id))


def drop_orphans(conn: Connection) -> int:
    """Delete the restore points of runs that are not running (or gone); how many."""
    return conn.execute(run_restore_points.delete().where(_ORPHANED)).rowcount


class RestorePointQueries:
    """Mixed into Store: needs `self.db` and `self._lock_thread`."""

    db: Any

    def _lock_thread(self, conn: Connection, thread_id: str) -> None:
        raise NotImplementedError  # Store's

    async def keep_restore_point(self, run_id: str, thread_id: str, worker_id: str,
                                 restore: JSONObject) -> bool:
        """Record a running run's restore point (RestorePoint.to_json()). False, and
        nothing written, if the run is no longer running on `worker_id` (reaped,
        settled, deleted): its graph must not start."""

        def _tx(conn: Connection) -> bool:
            self._lock_thread(conn, thread_id)
            mine = conn.execute(sa.select(runs.c.run_id).where(
                runs.c.run_id == run_id, runs.c.status == RunStatus.RUNNING.value,
                runs.c.worker_id == worker_id)).first()
            if mine is None:
                return False
            conn.execute(run_restore_points.insert().values(
                run_id=run_id, thread_id=thread_id, restore=restore, created_at=utcnow()))
            return True

        return bool(await self.db.run(_tx))

    async def restore_point_of(self, run_id: str) -> JSONObject | None:
        """The restore point kept for a run, if any."""

        def _tx(conn: Connection) -> Any:
            return conn.execute(sa.select(run_restore_points.c.restore)
                                .where(run_restore_points.c.run_id == run_id)).scalar()

        return await self.db.run(_tx)

    async def sweep_restore_points(self) -> int:
        """Delete the restore points of runs that are no longer running (a safety net:
        each run's end deletes its own); how many."""
        return int(await self.db.run(drop_orphans))
