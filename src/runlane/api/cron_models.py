"""Cron request bodies as the LangGraph server API (and langgraph_sdk's CronClient)
sends them, validated strictly: an unknown field or enum value is a 422 that names it.

Optional fields are typed without None but default to None: omitting one is fine,
sending an explicit null is a 422 (never a silent default). `end_time` alone may be
null in a PATCH, which clears it (as the SDK documents). Such a default is what each
`type: ignore[assignment]` below is about: a None the type does not admit.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, Field, StrictBool, field_validator

from runlane.api.models import (
    Config,
    Filter,
    Json,
    Limit,
    NodeList,
    Offset,
    StreamModeName,
    Strict,
)
from runlane.api.store_models import no_nul
from runlane.service import schedules

MultitaskStrategyName = Literal["reject", "interrupt", "rollback", "enqueue"]
CronSortBy = Literal["cron_id", "assistant_id", "thread_id", "created_at", "updated_at",
                     "next_run_date", "end_time"]
CronSelectField = Literal["cron_id", "assistant_id", "thread_id", "end_time", "schedule",
                          "timezone", "created_at", "updated_at", "user_id", "payload",
                          "next_run_date", "metadata", "now", "on_run_completed", "enabled"]
Schedule = Annotated[str, Field(min_length=1, max_length=256)]
# Cron metadata is filtered as jsonb on PostgreSQL, which cannot hold NUL characters.
Metadata = Annotated[Json, AfterValidator(no_nul)]
MetadataFilter = Annotated[Filter, AfterValidator(no_nul)]


def _utc(value: datetime.datetime | None) -> datetime.datetime | None:
    """A time without a zone is read as UTC (the SDK sends `datetime.isoformat()`)."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=datetime.UTC)
    return value


class _RunFields(Strict):
    """What each firing's run is made of."""

    input: Any = None
    metadata: Metadata = None  # type: ignore[assignment]
    config: Config = None
    context: Json = None  # type: ignore[assignment]
    checkpoint_during: StrictBool = None  # type: ignore[assignment]
    interrupt_before: NodeList = None  # type: ignore[assignment]
    interrupt_after: NodeList = None  # type: ignore[assignment]
    webhook: str = None  # type: ignore[assignment]
    stream_mode: StreamModeName | list[StreamModeName] = None  # type: ignore[assignment]
    stream_subgraphs: StrictBool = None  # type: ignore[assignment]
    stream_resumable: StrictBool = None  # type: ignore[assignment]
    durability: Literal["sync", "async", "exit"] = None  # type: ignore[assignment]
    timezone: str = None  # type: ignore[assignment]
    end_time: datetime.datetime | None = None
    enabled: StrictBool = None  # type: ignore[assignment]

    @field_validator("webhook")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        if value:
            raise ValueError("webhook is not supported yet")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                schedules.timezone_of(value)
            except schedules.BadSchedule as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("end_time")
    @classmethod
    def _end_time(cls, value: datetime.datetime | None) -> datetime.datetime | None:
        return _utc(value)

    def run_fields(self) -> dict[str, Any]:
        """The fields given that every run gets (api -> crons.CronSpec.payload)."""
        from runlane.service.crons import RUN_FIELDS

        return {k: v for k, v in self.model_dump(exclude_unset=True).items() if k in RUN_FIELDS}


class ThreadCronCreate(_RunFields):
    schedule: Schedule
    assistant_id: Annotated[str, Field(min_length=1, max_length=256)]
    multitask_strategy: MultitaskStrategyName = "enqueue"


class CronCreate(ThreadCronCreate):
    """A stateless cron: each firing's run gets a thread of its own."""

    on_run_completed: Literal["delete", "keep"] = None  # type: ignore[assignment]


class CronPatch(_RunFields):
    schedule: Schedule = None  # type: ignore[assignment]
    on_run_completed: Literal["delete", "keep"] = None  # type: ignore[assignment]
    multitask_strategy: MultitaskStrategyName = None  # type: ignore[assignment]

    def changes(self) -> dict[str, Any]:
        """Only what the client sent (`end_time: null` included: it clears it)."""
        return self.model_dump(exclude_unset=True)


class CronSearch(Strict):
    assistant_id: Annotated[str, Field(min_length=1, max_length=256)] = None  # type: ignore[assignment]
    thread_id: UUID = None  # type: ignore[assignment]
    enabled: StrictBool = None  # type: ignore[assignment]
    metadata: MetadataFilter = None  # type: ignore[assignment]
    limit: Limit = 10
    offset: Offset = 0
    sort_by: CronSortBy = "created_at"
    sort_order: Literal["asc", "desc"] = "desc"
    select: Annotated[list[CronSelectField], Field(min_length=1)] = None  # type: ignore[assignment]


class CronCount(Strict):
    assistant_id: Annotated[str, Field(min_length=1, max_length=256)] = None  # type: ignore[assignment]
    thread_id: UUID = None  # type: ignore[assignment]
    metadata: MetadataFilter = None  # type: ignore[assignment]
