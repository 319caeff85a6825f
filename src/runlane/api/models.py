"""Request bodies as the LangGraph server API accepts them, validated strictly: an
unknown field or enum value is a 422 that names it, never a silent default."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

StreamModeName = Literal[
    "values", "updates", "custom", "debug", "tasks", "checkpoints",
    "messages-tuple", "messages", "events",
]
Json = dict[str, Any]
NodeList = Literal["*"] | list[str]
Limit = Annotated[int, Field(ge=1, le=1000)]
Offset = Annotated[int, Field(ge=0)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CommandBody(Strict):
    update: Any = None
    resume: Any = None
    goto: Any = None


class CheckpointRef(Strict):
    thread_id: str | None = None
    checkpoint_ns: str = ""
    checkpoint_id: str | None = None
    checkpoint_map: Json | None = None


class RunCreate(Strict):
    assistant_id: Annotated[str, Field(min_length=1, max_length=256)]
    input: Any = None
    command: CommandBody | None = None
    config: Json | None = None
    context: Json | None = None
    metadata: Json | None = None
    stream_mode: StreamModeName | list[StreamModeName] = "values"
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    interrupt_before: NodeList | None = None
    interrupt_after: NodeList | None = None
    checkpoint: CheckpointRef | None = None
    checkpoint_id: UUID | None = None
    checkpoint_during: bool | None = None
    multitask_strategy: Literal["reject", "interrupt", "rollback", "enqueue"] = "enqueue"
    if_not_exists: Literal["create", "reject"] = "reject"
    on_completion: Literal["delete", "keep"] | None = None
    on_disconnect: Literal["cancel", "continue"] = "continue"
    durability: Literal["sync", "async", "exit"] | None = None
    feedback_keys: list[str] | None = None
    webhook: str | None = None
    after_seconds: float | None = None
    strict_resume: bool | None = None
    langsmith_tracer: Json | None = None

    @field_validator("after_seconds")
    @classmethod
    def _after(cls, value: float | None) -> float | None:
        if value:
            raise ValueError("after_seconds (delayed start) is not supported yet")
        return value

    @field_validator("webhook")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        if value:
            raise ValueError("webhook is not supported yet")
        return value

    def modes(self) -> list[str]:
        modes = [self.stream_mode] if isinstance(self.stream_mode, str) else self.stream_mode
        return list(dict.fromkeys(modes)) or ["values"]


class ThreadCreate(Strict):
    thread_id: UUID | None = None
    metadata: Json | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    ttl: Any = None
    supersteps: Any = None

    @field_validator("supersteps", "ttl")
    @classmethod
    def _unsupported(cls, value: Any, info: Any) -> Any:
        if value is not None:
            raise ValueError(f"{info.field_name} is not supported yet")
        return value


class ThreadPatch(Strict):
    metadata: Json = Field(default_factory=dict)
    ttl: Any = None


ThreadStatusName = Literal["idle", "busy", "interrupted", "error"]


class ThreadSearch(Strict):
    metadata: Json | None = None
    values: Json | None = None
    status: ThreadStatusName | None = None
    ids: list[UUID] | None = None
    limit: Limit = 10
    offset: Offset = 0
    sort_by: Literal["thread_id", "status", "created_at", "updated_at"] = "created_at"
    sort_order: Literal["asc", "desc"] = "desc"
    select: list[str] | None = None
    extract: Json | None = None


class ThreadCount(Strict):
    metadata: Json | None = None
    values: Json | None = None
    status: ThreadStatusName | None = None


class ThreadStateUpdate(Strict):
    values: Any = None
    as_node: str | None = None
    checkpoint: CheckpointRef | None = None
    checkpoint_id: UUID | None = None


class ThreadStateCheckpoint(Strict):
    checkpoint: CheckpointRef
    subgraphs: bool = False


class ThreadHistory(Strict):
    limit: Limit = 10
    before: CheckpointRef | str | None = None
    metadata: Json | None = None
    checkpoint: CheckpointRef | None = None


class AssistantSearch(Strict):
    graph_id: str | None = None
    name: str | None = None
    metadata: Json | None = None
    limit: Limit = 10
    offset: Offset = 0
    sort_by: Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"] = (
        "created_at"
    )
    sort_order: Literal["asc", "desc"] = "desc"
    select: list[str] | None = None


class AssistantCount(Strict):
    graph_id: str | None = None
    name: str | None = None
    metadata: Json | None = None


class AssistantCreate(Strict):
    graph_id: Annotated[str, Field(min_length=1)]
    assistant_id: UUID | None = None
    config: Json | None = None
    context: Json | None = None
    metadata: Json | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    name: str | None = None
    description: str | None = None


class AssistantPatch(Strict):
    graph_id: str | None = None
    config: Json | None = None
    context: Json | None = None
    metadata: Json | None = None
    name: str | None = None
    description: str | None = None


class RunsCancelMany(Strict):
    thread_id: UUID | None = None
    run_ids: list[UUID] | None = None
    status: Literal["pending", "running", "all"] | None = None
