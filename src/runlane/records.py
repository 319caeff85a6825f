"""Typed records of runlane's resources: runs, threads, assistants and their versions,
rollback tombstones, crons.

The store builds one record per row it returns (`from_row` on a result row,
`from_columns` on the values it just wrote); every layer above reads attributes, and
a changed copy is `dataclasses.replace`. Records are frozen and slotted, and built
without validation beyond construction: the store wrote the row, and a run's record
is built on the hot path of every run. Only `from_row`/`from_columns`/`from_json`
live here; the code that calls them lives in store/.

The lower layers (observability's run log, the stream broker's final row) take these
types too, which is why this module sits beside contract.py rather than in store/.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

from runlane.contract import CancelAction, RunStatus, ThreadStatus
from runlane.serde import JSONObject

# Column values of a row being written: an insert's row, an update's changes.
Columns = dict[str, Any]

# A run's timestamps: ISO text in a tombstone's JSON copy of the run.
_RUN_TIMES = ("created_at", "updated_at", "lease_expires_at", "not_before",
              "webhook_next_at", "started_at", "ended_at")

# Enum members by stored value: a dict lookup costs a fraction of calling the enum
# (RunStatus("running")), on every run read.
_RUN_STATUS = {status.value: status for status in RunStatus}
_THREAD_STATUS = {status.value: status for status in ThreadStatus}
_CANCEL_ACTION: dict[str | None, CancelAction | None] = {
    None: None, **{action.value: action for action in CancelAction}}


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
        return cls(
            run_id=row.run_id, thread_id=row.thread_id, assistant_id=row.assistant_id,
            graph_id=row.graph_id, status=_RUN_STATUS[row.status],
            multitask_strategy=row.multitask_strategy, metadata=row.metadata,
            kwargs=row.kwargs, created_at=row.created_at, updated_at=row.updated_at,
            seq=row.seq, cancel_action=_CANCEL_ACTION[row.cancel_action],
            cancel_reason=row.cancel_reason, stop_reason=row.stop_reason, error=row.error,
            worker_id=row.worker_id, lease_expires_at=row.lease_expires_at, owner=row.owner,
            not_before=row.not_before, webhook=row.webhook, webhook_state=row.webhook_state,
            webhook_attempts=row.webhook_attempts, webhook_next_at=row.webhook_next_at,
            started_at=row.started_at, ended_at=row.ended_at,
        )

    @classmethod
    def from_columns(cls, values: Mapping[str, Any]) -> Run:
        """The run as just written from `values` (columns left out are NULL)."""
        get = values.get
        return cls(
            run_id=values["run_id"], thread_id=values["thread_id"],
            assistant_id=values["assistant_id"], graph_id=values["graph_id"],
            status=_RUN_STATUS[values["status"]],
            multitask_strategy=values["multitask_strategy"], metadata=values["metadata"],
            kwargs=values["kwargs"], created_at=values["created_at"],
            updated_at=values["updated_at"], seq=get("seq"),
            cancel_action=_CANCEL_ACTION[get("cancel_action")],
            cancel_reason=get("cancel_reason"), stop_reason=get("stop_reason"),
            error=get("error"), worker_id=get("worker_id"),
            lease_expires_at=get("lease_expires_at"), owner=get("owner"),
            not_before=get("not_before"), webhook=get("webhook"),
            webhook_state=get("webhook_state"), webhook_attempts=get("webhook_attempts") or 0,
            webhook_next_at=get("webhook_next_at"), started_at=get("started_at"),
            ended_at=get("ended_at"),
        )

    @classmethod
    def from_json(cls, value: JSONObject) -> Run:
        """The run as a rollback tombstone keeps it (`serde.to_jsonable` of a Run)."""
        times = {key: datetime.datetime.fromisoformat(value[key])
                 for key in _RUN_TIMES if isinstance(value.get(key), str)}
        return cls.from_columns({**value, **times})


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
    owner: str | None
    expires_at: datetime.datetime | None
    ttl: JSONObject | None  # {"strategy", "ttl": minutes}, see store/threads.py
    created_at: datetime.datetime
    updated_at: datetime.datetime

    @classmethod
    def from_row(cls, row: Any) -> Thread:
        """A `threads` row as a statement returned it (every column)."""
        return cls(
            thread_id=row.thread_id, status=_THREAD_STATUS[row.status], metadata=row.metadata,
            config=row.config, values=row.values, interrupts=row.interrupts,
            temporary=row.temporary, owner=row.owner, expires_at=row.expires_at, ttl=row.ttl,
            created_at=row.created_at, updated_at=row.updated_at,
        )

    @classmethod
    def from_columns(cls, values: Mapping[str, Any]) -> Thread:
        """The thread as just written from `values` (columns left out are NULL)."""
        get = values.get
        return cls(
            thread_id=values["thread_id"], status=_THREAD_STATUS[values["status"]],
            metadata=values["metadata"], config=values["config"], values=get("values"),
            interrupts=values["interrupts"], temporary=values["temporary"],
            owner=get("owner"), expires_at=get("expires_at"), ttl=get("ttl"),
            created_at=values["created_at"], updated_at=values["updated_at"],
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Assistant:
    """An assistant as it is now (the version in use)."""

    assistant_id: str
    graph_id: str
    name: str
    description: str | None
    config: JSONObject
    context: JSONObject
    metadata: JSONObject
    version: int
    owner: str | None
    created_at: datetime.datetime
    updated_at: datetime.datetime

    @classmethod
    def from_row(cls, row: Any) -> Assistant:
        """An `assistants` row as a statement returned it (every column)."""
        return cls(
            assistant_id=row.assistant_id, graph_id=row.graph_id, name=row.name,
            description=row.description, config=row.config, context=row.context,
            metadata=row.metadata, version=row.version, owner=row.owner,
            created_at=row.created_at, updated_at=row.updated_at,
        )

    @classmethod
    def from_columns(cls, values: Mapping[str, Any]) -> Assistant:
        """The assistant as just written from `values` (columns left out are NULL)."""
        get = values.get
        return cls(
            assistant_id=values["assistant_id"], graph_id=values["graph_id"],
            name=values["name"], description=get("description"), config=values["config"],
            context=values["context"], metadata=values["metadata"], version=values["version"],
            owner=get("owner"), created_at=values["created_at"],
            updated_at=values["updated_at"],
        )


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
        return cls(
            assistant_id=row.assistant_id, version=row.version, graph_id=row.graph_id,
            name=row.name, description=row.description, config=row.config,
            context=row.context, metadata=row.metadata, created_at=row.created_at,
        )


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

    @classmethod
    def from_row(cls, row: Any) -> Cron:
        """A `crons` row as a statement returned it (every column)."""
        return cls(
            cron_id=row.cron_id, assistant_id=row.assistant_id, thread_id=row.thread_id,
            schedule=row.schedule, payload=row.payload, metadata=row.metadata,
            user_id=row.user_id, owner=row.owner, enabled=row.enabled, end_time=row.end_time,
            next_run_date=row.next_run_date, created_at=row.created_at,
            updated_at=row.updated_at,
        )

    @classmethod
    def from_columns(cls, values: Mapping[str, Any]) -> Cron:
        """The cron as just written from `values` (every column)."""
        return cls(**{field: values[field] for field in _CRON_FIELDS})


_CRON_FIELDS = tuple(field.name for field in dataclasses.fields(Cron))
