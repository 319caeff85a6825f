"""Restore points on the real store, each backend (store/restore_points.py): a
resumed run's rollback point is kept while the run is running, fenced by its
worker, read back by whoever completes its rollback, and deleted by every way the
run ends, so none outlives its run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from fast.support import (
    OTHER_WORKER,
    WORKER,
    admit_running,
    field,
    install_assistant,
    seconds_from_now,
    settle,
)
from runlane.contract import CancelAction, RunStatus, StopReason, ThreadStatus
from runlane.serde import utcnow
from runlane.store import Store
from runlane.store.checkpoints import RestorePoint
from runlane.store.schema import run_restore_points

# Rows as both checkpointers hold them: text, integers, NULL and blobs (SQLite's
# writes have no task_path; PostgreSQL's do).
POINT = RestorePoint(
    frozenset({("", "1f0-checkpoint"), ("child:task", "1f0-child")}),
    (("t", "", "1f0-checkpoint", "task-1", -3, "__resume__", "msgpack", b"\x81\xa1a\x00\xff"),
     ("t", "child:task", "1f0-child", "task-2", 0, "x", "msgpack", b"", None)),
)


async def keep(store: Store, run: Any, worker_id: str = WORKER) -> bool:
    return await store.keep_restore_point(field(run, "run_id"), field(run, "thread_id"),
                                          worker_id, POINT.to_json())


async def kept_ids(store: Store) -> set[str]:
    def _tx(conn: sa.Connection) -> set[str]:
        return {r.run_id for r in conn.execute(sa.select(run_restore_points.c.run_id))}
    return await store.db.run(_tx)


def test_a_restore_point_survives_its_json_form_exactly() -> None:
    assert RestorePoint.from_json(POINT.to_json()) == POINT


async def test_kept_and_read_back_exactly(store: Store) -> None:
    run = await admit_running(store)
    assert await keep(store, run)
    kept = await store.restore_point_of(field(run, "run_id"))
    assert kept is not None and RestorePoint.from_json(kept) == POINT


async def test_only_the_running_owner_keeps_one(store: Store) -> None:
    run = await admit_running(store)
    assert not await keep(store, run, worker_id=OTHER_WORKER)
    await settle(store, run)
    assert not await keep(store, run)  # no longer running
    assert await kept_ids(store) == set()


async def test_a_run_that_ends_drops_its_restore_point(store: Store) -> None:
    done = await admit_running(store)
    assert await keep(store, done)
    interrupted = await admit_running(store)
    assert await keep(store, interrupted)
    await store.cancel_run(field(interrupted, "thread_id"), field(interrupted, "run_id"),
                           CancelAction.INTERRUPT, "user")
    for run in (done, interrupted):
        result = await store.settle_run(
            field(run, "run_id"), thread_id=field(run, "thread_id"), worker_id=WORKER,
            proposed=RunStatus.SUCCESS, stop_reason=StopReason.COMPLETED,
            error=None, thread_status=ThreadStatus.IDLE, values={}, interrupts={},
            restore_kept=True)
        assert result.changed
    assert await kept_ids(store) == set()


async def test_a_recorded_rollback_keeps_it_until_its_completion(store: Store) -> None:
    run = await admit_running(store)
    thread_id, run_id = field(run, "thread_id"), field(run, "run_id")
    assert await keep(store, run)
    await store.cancel_run(thread_id, run_id, CancelAction.ROLLBACK, "user")
    result = await store.settle_run(
        run_id, thread_id=thread_id, worker_id=WORKER, proposed=RunStatus.SUCCESS,
        stop_reason=StopReason.COMPLETED,
        error=None, thread_status=ThreadStatus.IDLE, values={}, interrupts={},
        restore_kept=True)
    assert result.needs_rollback
    assert await kept_ids(store) == {run_id}
    assert await store.complete_rollback(run_id, thread_id, WORKER, None, {},
                                         ThreadStatus.IDLE) is not None
    assert await kept_ids(store) == set()


async def test_an_adopted_rollback_reads_the_dead_workers_restore_point(store: Store) -> None:
    lost = await admit_running(store, lease_seconds=-5)
    thread_id, run_id = field(lost, "thread_id"), field(lost, "run_id")
    assert await keep(store, lost)
    await store.cancel_run(thread_id, run_id, CancelAction.ROLLBACK, "user")
    _, adopted = await store.reap_expired(utcnow(), OTHER_WORKER, seconds_from_now(30))
    assert [field(r, "run_id") for r in adopted] == [run_id]
    kept = await store.restore_point_of(run_id)
    assert kept is not None and RestorePoint.from_json(kept) == POINT
    assert await store.complete_rollback(run_id, thread_id, OTHER_WORKER, None, {},
                                         ThreadStatus.IDLE) is not None
    assert await kept_ids(store) == set()


async def test_a_reaped_run_drops_its_restore_point(store: Store) -> None:
    lost = await admit_running(store, lease_seconds=-5)
    assert await keep(store, lost)
    finished, _ = await store.reap_expired(utcnow(), OTHER_WORKER, seconds_from_now(30))
    assert [field(r, "run_id") for r in finished] == [field(lost, "run_id")]
    assert await kept_ids(store) == set()


async def test_a_deleted_thread_drops_its_runs_restore_points(store: Store) -> None:
    run = await admit_running(store)
    assert await keep(store, run)
    assert await store.delete_thread(field(run, "thread_id")) is not None
    assert await kept_ids(store) == set()


async def test_the_sweep_deletes_only_rows_of_runs_not_running(store: Store) -> None:
    running = await admit_running(store)
    assert await keep(store, running)

    def orphan(conn: sa.Connection) -> None:
        conn.execute(run_restore_points.insert().values(
            run_id="00000000-0000-0000-0000-00000000dead", thread_id="gone",
            restore=POINT.to_json(), created_at=utcnow()))
    await store.db.run(orphan)
    assert await store.sweep_restore_points() == 1
    assert await kept_ids(store) == {field(running, "run_id")}


async def test_a_restart_keeps_only_the_restore_points_of_rollbacks_to_complete(
        tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'runlane.sqlite'}")
    await store.setup()
    try:
        await install_assistant(store)
        rolling = await admit_running(store)
        stopped = await admit_running(store)
        for run in (rolling, stopped):
            assert await keep(store, run)
        await store.cancel_run(field(rolling, "thread_id"), field(rolling, "run_id"),
                               CancelAction.ROLLBACK, "user")
        finished, rollbacks = await store.recover_after_restart()
        assert [field(r, "run_id") for _, r in finished] == [field(stopped, "run_id")]
        assert [field(r, "run_id") for r in rollbacks] == [field(rolling, "run_id")]
        assert await kept_ids(store) == {field(rolling, "run_id")}
    finally:
        await store.close()
