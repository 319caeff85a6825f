"""Restart recovery on SQLite (Store.recover_after_restart): one process owns the file,
so whatever it left active died with it. A second Store on the same file stands for
the process that starts next. (PostgreSQL has no such step: other workers reap a dead
one's runs by their leases, see test_store_leases.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fast.support import (
    admit,
    admit_running,
    field,
    install_assistant,
    seconds_from_now,
    settle,
    thread_status,
)
from runlane.contract import CancelAction, RunStatus, StopReason, ThreadStatus
from runlane.store import Store


async def test_a_restart_finishes_what_the_dead_process_left_active(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runlane.sqlite'}"
    before = Store(url)
    await before.setup()
    await install_assistant(before)
    running = await admit_running(before)
    pending = (await admit(before)).run
    interrupted = await admit_running(before)
    await before.cancel_run(field(interrupted, "thread_id"), field(interrupted, "run_id"),
                            CancelAction.INTERRUPT, "user")
    rolling_back = await admit_running(before)
    await before.cancel_run(field(rolling_back, "thread_id"), field(rolling_back, "run_id"),
                            CancelAction.ROLLBACK, "user")
    delayed = (await admit(before, not_before=seconds_from_now(3600))).run
    last_seq = field(delayed, "seq")
    await before.close()  # the process dies: nothing of it settles these runs

    after = Store(url)
    await after.setup()
    try:
        finished, rollbacks = await after.recover_after_restart()

        by_id = {field(row, "run_id"): (previous, row) for previous, row in finished}
        assert set(by_id) == {field(r, "run_id") for r in (running, pending, interrupted)}

        def ended(run: Any) -> tuple[str, str, str]:
            previous, row = by_id[field(run, "run_id")]
            return previous, field(row, "status"), field(row, "stop_reason")

        assert ended(running) == ("running", "error", StopReason.SERVER_RESTARTED.value)
        assert ended(pending) == ("pending", "error", StopReason.SERVER_RESTARTED.value)
        assert ended(interrupted) == ("running", "interrupted", StopReason.CANCELLED.value)
        assert field(by_id[field(running, "run_id")][1], "error")["error"] == "ServerRestarted"
        # Stored as reported.
        for run in (running, pending, interrupted):
            stored = await after.get_run(field(run, "thread_id"), field(run, "run_id"))
            assert field(stored, "status") == ended(run)[1]
            assert field(stored, "ended_at") is not None
            assert await thread_status(after, field(run, "thread_id")) == ThreadStatus.IDLE.value

        # A recorded rollback is handed back, still running, for the caller to complete.
        assert [field(r, "run_id") for r in rollbacks] == [field(rolling_back, "run_id")]
        assert field(rollbacks[0], "status") == RunStatus.RUNNING.value
        # Its thread stays busy until the rollback is completed: never an idle thread
        # with a running run, not even if this process dies before completing it (the
        # next start hands the rollback back again, the thread still busy).
        rolled_thread = field(rolling_back, "thread_id")
        assert await thread_status(after, rolled_thread) == ThreadStatus.BUSY.value
        assert [field(r, "run_id") for r in (await after.recover_after_restart())[1]] == [
            field(rolling_back, "run_id")]
        assert await thread_status(after, rolled_thread) == ThreadStatus.BUSY.value
        removed = await after.complete_rollback(
            field(rolling_back, "run_id"), rolled_thread, field(rollbacks[0], "worker_id"),
            None, {}, ThreadStatus.IDLE)
        assert removed is not None
        assert await thread_status(after, rolled_thread) == ThreadStatus.IDLE.value

        # A delayed run stays queued (this process starts it when due), thread busy.
        stored = await after.get_run(field(delayed, "thread_id"), field(delayed, "run_id"))
        assert field(stored, "status") == RunStatus.PENDING.value
        assert await thread_status(after, field(delayed, "thread_id")) == ThreadStatus.BUSY.value

        # Creation order goes on where the dead process left it.
        newer = (await admit(after)).run
        assert field(newer, "seq") > last_seq
    finally:
        await after.close()


async def test_a_restart_with_nothing_active_changes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runlane.sqlite'}"
    store = Store(url)
    await store.setup()
    await install_assistant(store)
    try:
        run = await admit_running(store)
        await settle(store, run)
        assert await store.recover_after_restart() == ([], [])
        stored = await store.get_run(field(run, "thread_id"), field(run, "run_id"))
        assert field(stored, "status") == RunStatus.SUCCESS.value
    finally:
        await store.close()
