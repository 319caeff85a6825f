"""The run contract as code: statuses, transitions, cancel outcomes and their HTTP codes.

Pure rules, no I/O. `docs/run-contract.md` is the prose; this module is
the single place the rest of runlane reads them from. The store turns every
transition below into one compare-and-set statement; the service turns each cancel's
outcome into its status code through `cancel_http_status`, once, and the API answers
with that code.
"""

from __future__ import annotations

import enum


class RunStatus(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"


ACTIVE = frozenset({RunStatus.PENDING, RunStatus.RUNNING})
TERMINAL = frozenset(
    {RunStatus.SUCCESS, RunStatus.ERROR, RunStatus.TIMEOUT, RunStatus.INTERRUPTED}
)
# Terminal statuses a cancel can no longer turn into `interrupted`: the 409 answers.
# Also the only ones a running run ends in by itself (what an executor may propose):
# `interrupted` is decided by a recorded cancel.
FINISHED_WITHOUT_CANCEL = frozenset({RunStatus.SUCCESS, RunStatus.ERROR, RunStatus.TIMEOUT})

# Every allowed edge. Terminal statuses are absorbing: they have no outgoing edge.
TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset({RunStatus.RUNNING, RunStatus.INTERRUPTED, RunStatus.ERROR}),
    RunStatus.RUNNING: frozenset(
        {RunStatus.SUCCESS, RunStatus.ERROR, RunStatus.TIMEOUT, RunStatus.INTERRUPTED}
    ),
    **{status: frozenset() for status in TERMINAL},
}


class CancelAction(str, enum.Enum):
    INTERRUPT = "interrupt"
    ROLLBACK = "rollback"


class MultitaskStrategy(str, enum.Enum):
    REJECT = "reject"
    INTERRUPT = "interrupt"
    ROLLBACK = "rollback"
    ENQUEUE = "enqueue"


class ThreadStatus(str, enum.Enum):
    IDLE = "idle"
    BUSY = "busy"
    INTERRUPTED = "interrupted"  # the graph paused at a human-in-the-loop interrupt()
    ERROR = "error"


class StopReason(str, enum.Enum):
    """Why a run stopped; recorded with its terminal status."""

    COMPLETED = "completed"  # the graph returned (possibly paused at an interrupt())
    GRAPH_ERROR = "graph_error"  # the graph raised
    CANCELLED = "cancelled"  # a cancel request was recorded (see cancel_reason)
    SERVER_RESTARTED = "server_restarted"  # the process died while the run was active
    WORKER_LOST = "worker_lost"  # its worker stopped renewing its lease (scale-out)
    COULD_NOT_START = "could_not_start"  # e.g. its graph is no longer served


class CancelReason(str, enum.Enum):
    """Who asked for a cancel. Recorded once: the first cancel wins."""

    USER = "user"
    MULTITASK_INTERRUPT = "multitask_interrupt"
    MULTITASK_ROLLBACK = "multitask_rollback"
    DISCONNECT = "disconnect"
    THREAD_DELETED = "thread_deleted"
    SHUTDOWN = "shutdown"


# What a new run's multitask strategy does to the active runs of its thread, inside its
# admission: the cancel it records on each of them (action, reason), or None when it
# leaves them be (`enqueue` waits behind them; `reject` refuses the new run instead).
MULTITASK_CANCELS: dict[MultitaskStrategy, tuple[CancelAction, CancelReason] | None] = {
    MultitaskStrategy.REJECT: None,
    MultitaskStrategy.INTERRUPT: (CancelAction.INTERRUPT, CancelReason.MULTITASK_INTERRUPT),
    MultitaskStrategy.ROLLBACK: (CancelAction.ROLLBACK, CancelReason.MULTITASK_ROLLBACK),
    MultitaskStrategy.ENQUEUE: None,
}


class CancelOutcome(str, enum.Enum):
    """What the store held at the instant the cancel landed (one row of the contract table)."""

    RECORDED = "recorded"  # pending/running, this request recorded the cancel
    ALREADY_RECORDED = "already_recorded"  # an earlier cancel won; still stopping
    ALREADY_INTERRUPTED = "already_interrupted"  # terminal `interrupted`
    ROLLED_BACK = "rolled_back"  # removed by its own rollback; a tombstone remains
    TOO_LATE = "too_late"  # success / error / timeout: 409
    NOT_FOUND = "not_found"  # no such run on this thread: 404


ACCEPTED_OUTCOMES = frozenset(
    {
        CancelOutcome.RECORDED,
        CancelOutcome.ALREADY_RECORDED,
        CancelOutcome.ALREADY_INTERRUPTED,
        CancelOutcome.ROLLED_BACK,
    }
)


def cancel_http_status(outcome: CancelOutcome, *, wait: bool) -> int:
    """The contract's table. `wait=True` answers 200 once the run is terminal."""
    if outcome in ACCEPTED_OUTCOMES:
        return 200 if wait else 202
    if outcome is CancelOutcome.TOO_LATE:
        return 409
    return 404


def outcome_for_existing_run(status: RunStatus, cancel_action: str | None) -> CancelOutcome:
    """Classify a run row that a cancel's compare-and-set did not change.

    Only meaningful *after* the CAS failed: then the row was already terminal or
    already carried a cancel, and both of those are absorbing, so this read cannot
    be stale in a way that changes the answer.
    """
    if status in ACTIVE:
        if cancel_action is None:  # pragma: no cover - the CAS would have matched
            raise AssertionError("an active run without a cancel must be cancelled by the CAS")
        return CancelOutcome.ALREADY_RECORDED
    if status is RunStatus.INTERRUPTED:
        return CancelOutcome.ALREADY_INTERRUPTED
    return CancelOutcome.TOO_LATE


# Stream modes a client may ask a run's stream for -> the SSE event name their events
# carry (a subgraph's events add `|<namespace>` to it).
STREAM_MODES: dict[str, str] = {
    "values": "values",
    "updates": "updates",
    "custom": "custom",
    "debug": "debug",
    "tasks": "tasks",
    "checkpoints": "checkpoints",
    "messages-tuple": "messages",
    "messages": "messages",
    "events": "events",
}


def event_names_for(modes: list[str]) -> frozenset[str]:
    """The SSE event names a join filtered to `modes` lets through."""
    names = {"metadata", "error"}
    for mode in modes:
        names.add(STREAM_MODES[mode])
        if mode == "messages":
            names.update({"messages/partial", "messages/complete", "messages/metadata"})
    return frozenset(names)


def parse_bool(value: str) -> bool:
    """Booleans in query strings: the SDK sends 1/0, browsers true/false."""
    lowered = value.strip().lower()
    if lowered in ("1", "true"):
        return True
    if lowered in ("0", "false"):
        return False
    raise ValueError(f"expected a boolean (1, 0, true or false), got {value!r}")
