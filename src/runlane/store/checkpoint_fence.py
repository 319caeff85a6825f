"""Fencing a worker's checkpoint writes (scale-out): a run's checkpoint lands only
while this worker may still write for the run.

Two layers, both on every `put`/`put_writes` of a run (a write whose config names a
`run_id`):

- by the worker's own clock, before it talks to anyone: `lease_held()` is false
  once the worker's last successful lease renewal is older than a lease, by
  `time.monotonic` (which counts the time the process was stopped, SIGSTOP). A
  reaper finishes a run only a grace after its lease ended, so a worker that stops
  writing when its lease ends never writes after a takeover, whatever paused it;
- in the database, in the write's own transaction (PostgreSQL): the last statement
  of the saver's pipeline is `runlane_guard_run_write(run_id, worker_id)` (migration
  0009), which fails unless the run is `running` on this worker and holds its row
  until the write commits. A failing statement aborts the pipeline's implicit
  transaction, so none of the write lands, and no clock is involved. It travels in
  the same pipeline as the write: no round trip more per checkpoint.

A refused write raises `RunFenced` and fences the run (`on_refused`: the executor
stops it without writing; the run's new owner, or the reaper, records its end).

Found by `make soak` (docs/scale-out.md, the fourth run): a worker SIGSTOPped past
its lease was reaped, and when continued its graph task wrote one more checkpoint
before its lease keeper's next renewal told it the run was no longer its own.
"""

from __future__ import annotations

import contextvars
import dataclasses
from collections.abc import Callable
from typing import Any

from runlane.errors import RunFenced

# The SQLSTATE runlane_guard_run_write raises (migration 0009).
GUARD_SQLSTATE = "RLF01"
GUARD_SQL = "SELECT runlane_guard_run_write(%s, %s)"

# The (run_id, worker_id) whose write the PostgreSQL saver's cursor guards: set for
# the duration of one put/put_writes call (the library's method opens the cursor).
guarded_write: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "runlane_guarded_write", default=None)


@dataclasses.dataclass(frozen=True)
class WriteFence:
    """What a checkpointer asks before a run's write, and whom it tells on refusal."""

    worker_id: str
    lease_held: Callable[[str], bool]  # of this run (LeaseKeeper.lease_held)
    # Stop the run without writing (thread-safe: a sync node writes from its thread).
    on_refused: Callable[[str], None]

    def check(self, config: Any) -> str | None:
        """The run id of the write (None: not a run's write), or RunFenced when this
        worker's lease is not held (the run is fenced first)."""
        run_id = run_id_of(config)
        if run_id is not None and not self.lease_held(run_id):
            self.refuse(run_id, "this worker's lease is not held (no renewal for a "
                                "whole lease)")
        return run_id

    def refuse(self, run_id: str, why: str, cause: BaseException | None = None) -> None:
        self.on_refused(run_id)
        raise RunFenced(f"checkpoint write of run {run_id} refused: {why}") from cause


def run_id_of(config: Any) -> str | None:
    run_id = ((config or {}).get("configurable") or {}).get("run_id")
    return None if run_id is None else str(run_id)
