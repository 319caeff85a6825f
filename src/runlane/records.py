"""Typed records of runlane's resources: runs, threads, assistants and their versions,
rollback tombstones, crons.

The store builds one record per row it returns (`from_row` on a result row,
`from_columns` on the values it just wrote); every layer above reads attributes, and
a changed copy is `dataclasses.replace`. Records are frozen and slotted, and built
without validation beyond construction: the store wrote the row, and a run's record
is built on the hot path of every run. Only the constructors live here; the code
that calls them lives in store/.

The lower layers (observability's run log, the stream broker's final run) take these
types too, which is why this module sits beside contract.py rather than in store/.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from runlane.contract import CancelAction, RunStatus, ThreadStatus
from runlane.serde import JSONObject

# Column values of a row being written: an insert's row, an update's changes.
Columns = dict[str, Any]

R = TypeVar("R")

# A run's timestamps: ISO text in a tombstone's JSON copy of the run.
_RUN_TIMES = ("created_at", "updated_at", "lease_expires_at", "not_before",
              "webhook_next_at", "started_at", "ended_at")

# Enum members by stored value: a dict lookup costs a fraction of calling the enum
# (RunStatus("running")), on every run read.
_RUN_STATUS = {status.value: status for status in RunStatus}
_THREAD_STATUS = {status.value: status for status in ThreadStatus}
_CANCEL_ACTION: dict[str | None, CancelAction | None] = {
    None: None, **{action.value: action for action in CancelAction}}

# ------------------------------------------------------------------ building
# A frozen dataclass's __init__ sets every field through object.__setattr__, looked
# up anew per field: for a run's 25 fields, four times the cost of the dict each row
# used to be copied into. Records are built from every row the store returns, so
# they are built here by setting their slots directly (about that dict's cost); the
# result is the same record (tests/test_records.py checks it against __init__).

# Per field: its name, its slot's setter, and its default (MISSING: required).
_Layout = tuple[tuple[str, Callable[[Any, Any], None], Any], ...]
_new = object.__new__
_set = object.__setattr__  # completes a record under construction (its enum fields)


def _layout(cls: type) -> _Layout:
    return tuple((field.name, cls.__dict__[field.name].__set__, field.default)
                 for field in dataclasses.fields(cls))


def _from_row(cls: type[R], layout: _Layout, row: Any) -> R:
    """A record whose every field is the row's column of the same name."""
    record = _new(cls)
    for name, set_field, _ in layout:
        set_field(record, getattr(row, name))
    return record


def _from_columns(cls: type[R], layout: _Layout, values: Mapping[str, Any]) -> R:
    """A record from the columns a statement wrote: a column left out is the field's
    default (NULL), except for required fields."""
    record = _new(cls)
    missing = dataclasses.MISSING
    for name, set_field, default in layout:
        set_field(record, values[name] if default is missing else values.get(name, default))
    return record


# ------------------------------------------------------------------- records


@dataclasses.dataclass(frozen=True, slots=True)
class Run:
    run_id: str
    thread_id: str
    assistant_id: str
    graph_id: str
    status: RunStatus
    multitask_strategy: str
    metadata: JSONObject
    # Everything needed to execute the run: input, command, config, stream modes ...
    kwargs: JSONObject
    created_at: datetime.datetime
    updated_at: datetime.datetime
    # Creation order. None only in the copy an admission returns on PostgreSQL, whose
    # sequence numbers the run as it is inserted.
    seq: int | None = None
    cancel_action: CancelAction | None = None
    cancel_reason: str | None = None
    stop_reason: str | None = None
    error: JSONObject | None = None
    worker_id: str | None = None
    lease_expires_at: datetime.datetime | None = None
    owner: str | None = None
    not_before: datetime.datetime | None = None
    webhook: str | None = None
    webhook_state: str | None = None
    webhook_attempts: int = 0
    webhook_next_at: datetime.datetime | None = None
    started_at: datetime.datetime | None = None
    ended_at: datetime.datetime | None = None

    @classmethod
    def from_row(cls, row: Any) -> Run:
        """A `runs` row as a statement returned it (every column)."""
        return _run_enums(_from_row(cls, _RUN, row))

    @classmethod
    def from_columns(cls, values: Mapping[str, Any]) -> Run:
        """The run as just written from `values`."""
        return _run_enums(_from_columns(cls, _RUN, values))

    @classmethod
    def from_json(cls, value: JSONObject) -> Run:
        """The run as a rollback tombstone keeps it (`serde.to_jsonable` of a Run)."""
        times = {key: datetime.datetime.fromisoformat(value[key])
                 for key in _RUN_TIMES if isinstance(value.get(key), str)}
        return cls.from_columns({**value, **times})


def _run_enums(run: Run) -> Run:
    _set(run, "status", _RUN_STATUS[run.status])
    _set(run, "cancel_action", _CANCEL_ACTION[run.cancel_action])
    return run


@dataclasses.dataclass(frozen=True, slots=True)
class Tombstone:
    """What a rollback leaves of the run it removed (see schema.run_tombstones)."""

    run_id: str
    thread_id: str
    outcome: str
    run: Run  # the run as it ended: interrupted, stop_reason cancelled
    owner: str | None
    created_at: datetime.datetime

    @classmethod
    def from_row(cls, row: Any) -> Tombstone:
        return cls(run_id=row.run_id, thread_id=row.thread_id, outcome=row.outcome,
                   run=Run.from_json(row.run), owner=row.owner, created_at=row.created_at)


@dataclasses.dataclass(frozen=True, slots=True)
class Thread:
    thread_id: str
    status: ThreadStatus
    metadata: JSONObject
    config: JSONObject
    values: Any  # the graph's state after the last run (None before any)
    interrupts: JSONObject  # pending interrupts by task id
    temporary: bool  # a stateless run's thread, deleted with it
    created_at: datetime.datetime
    updated_at: datetime.datetime
    owner: str | None = None
    expires_at: datetime.datetime | None = None
    ttl: JSONObject | None = None  # {"strategy", "ttl": minutes}, see store/threads.py

    @classmethod
    def from_row(cls, row: Any) -> Thread:
        """A `threads` row as a statement returned it (every column)."""
        return _thread_enums(_from_row(cls, _THREAD, row))

    @classmethod
    def from_columns(cls, values: Mapping[str, Any]) -> Thread:
        """The thread as just written from `values`."""
        return _thread_enums(_from_columns(cls, _THREAD, values))


def _thread_enums(thread: Thread) -> Thread:
    _set(thread, "status", _THREAD_STATUS[thread.status])
    return thread


@dataclasses.dataclass(frozen=True, slots=True)
class Assistant:
    """An assistant as it is now (the version in use)."""

    assistant_id: str
    graph_id: str
    name: str
    config: JSONObject
    context: JSONObject
    metadata: JSONObject
    version: int
    created_at: datetime.datetime
    updated_at: datetime.datetime
    description: str | None = None
    owner: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> Assistant:
        """An `assistants` row as a statement returned it (every column)."""
        return _from_row(cls, _ASSISTANT, row)

    @classmethod
    def from_columns(cls, values: Mapping[str, Any]) -> Assistant:
        """The assistant as just written from `values`."""
        return _from_columns(cls, _ASSISTANT, values)


@dataclasses.dataclass(frozen=True, slots=True)
class AssistantVersion:
    """One stored version of an assistant (see schema.assistant_versions)."""

    assistant_id: str
    version: int
    graph_id: str
    name: str
    description: str | None
    config: JSONObject
    context: JSONObject
    metadata: JSONObject
    created_at: datetime.datetime

    @classmethod
    def from_row(cls, row: Any) -> AssistantVersion:
        return _from_row(cls, _ASSISTANT_VERSION, row)


@dataclasses.dataclass(frozen=True, slots=True)
class Cron:
    cron_id: str
    assistant_id: str
    thread_id: str | None  # None: each firing is a stateless run
    schedule: str
    payload: JSONObject  # the run each firing creates (input, config, timezone ...)
    metadata: JSONObject
    user_id: str | None
    owner: str | None
    enabled: bool
    end_time: datetime.datetime | None
    next_run_date: datetime.datetime | None
    created_at: datetime.datetime
    updated_at: datetime.datetime
    # Who created it, as authenticated then (identity, permissions ...): its runs'
    # user. None with auth off, or for a cron older than the column (see user_id).
    auth_user: JSONObject | None = None

    @classmethod
    def from_row(cls, row: Any) -> Cron:
        """A `crons` row as a statement returned it (every column)."""
        return _from_row(cls, _CRON, row)

    @classmethod
    def from_columns(cls, values: Mapping[str, Any]) -> Cron:
        """The cron as just written from `values` (every column)."""
        return _from_columns(cls, _CRON, values)


_RUN = _layout(Run)
_THREAD = _layout(Thread)
_ASSISTANT = _layout(Assistant)
_ASSISTANT_VERSION = _layout(AssistantVersion)
_CRON = _layout(Cron)
