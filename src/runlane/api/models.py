"""Request bodies as the LangGraph server API accepts them, validated strictly: an
unknown field or enum value is a 422 that names it, never a silent default."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

import httpx
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from runlane.api import extract as extract_paths

StreamModeName = Literal[
    "values", "updates", "custom", "debug", "tasks", "checkpoints",
    "messages-tuple", "messages", "events",
]
Json = dict[str, Any]
NodeList = Literal["*"] | list[str]
Limit = Annotated[int, Field(ge=1, le=1000)]
MAX_OFFSET = 2**63 - 1  # SQLite's largest integer
Offset = Annotated[int, Field(ge=0, le=MAX_OFFSET)]


def _sql_scalar(value: Any) -> Any:
    # SQLite compares integers beyond 64 bits as reals; it cannot bind them at all.
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_OFFSET:
        return float(value)
    return value


# SQLite refuses statements past ~1000 nested ANDs or 32766 bound values: bound them.
MAX_FILTER_KEYS = 100
MAX_IDS = 10_000


def _filter_size(value: Json) -> None:
    if len(value) > MAX_FILTER_KEYS:
        raise ValueError(f"a filter may have at most {MAX_FILTER_KEYS} keys (got {len(value)})")


def _filter(value: Json) -> Json:
    """A `{key: value}` equality filter on a JSON column (metadata, values)."""
    _filter_size(value)
    for key in value:
        if "\x00" in key:
            raise ValueError(f"filter keys cannot contain NUL characters (got {key!r})")
    return {key: _sql_scalar(item) for key, item in value.items()}


def _history_filter(value: Json) -> Json:
    """The checkpointer's metadata filter: its keys are paths like `a.b`."""
    _filter_size(value)
    for key in value:
        if not key or not all(c.isascii() and (c.isalnum() or c in "_.-") for c in key):
            raise ValueError(f"history metadata filter keys may contain only ASCII letters, "
                             f"digits, '_', '.' and '-' (got {key!r})")
    return {key: _sql_scalar(item) for key, item in value.items()}


def _config(value: Json | None) -> Json | None:
    """The few RunnableConfig keys whose type runlane and langgraph rely on."""
    if value is None:
        return value
    configurable = value.get("configurable")
    if configurable is not None and not isinstance(configurable, dict):
        raise ValueError("config.configurable must be an object")
    tags = value.get("tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        raise ValueError("config.tags must be a list of strings")
    limit = value.get("recursion_limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError("config.recursion_limit must be a positive integer")
    if value.get("metadata") is not None and not isinstance(value["metadata"], dict):
        raise ValueError("config.metadata must be an object")
    return value


Filter = Annotated[Json, AfterValidator(_filter)]
HistoryFilter = Annotated[Json, AfterValidator(_history_filter)]
Config = Annotated[Json | None, AfterValidator(_config)]


# after_seconds: at most a year ahead (a larger value is almost surely a unit mistake).
MAX_AFTER_SECONDS = 365 * 24 * 3600


def webhook_url(value: str) -> str:
    """An absolute http(s) URL with a host: where a finished run is POSTed."""
    try:
        url = httpx.URL(value)
    except Exception:  # noqa: BLE001 - any parse failure is a 422, never a 500
        raise ValueError(f"webhook {value!r} is not a URL; give an absolute http:// or "
                         "https:// URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"webhook must be an absolute http:// or https:// URL with a host "
                         f"(got {value!r})")
    # Its length, host and addresses are the webhook policy's (service.check_webhook).
    return value


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
    config: Config = None
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
        if value is not None and not (0 <= value <= MAX_AFTER_SECONDS):
            raise ValueError(f"after_seconds must be a number of seconds from 0 to "
                             f"{MAX_AFTER_SECONDS} (got {value})")
        return value

    @field_validator("webhook")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        return None if value is None else webhook_url(value)

    @field_validator("feedback_keys")
    @classmethod
    def _feedback_keys(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(value) > 100:
            raise ValueError(f"feedback_keys may hold at most 100 keys (got {len(value)})")
        return value

    @model_validator(mode="after")
    def _checkpoint_during(self) -> RunCreate:
        # The older spelling of durability (langgraph_sdk: checkpoint_during=True is
        # durability "async", False is "sync"); both at once must agree.
        if self.checkpoint_during is not None:
            implied: Literal["async", "sync"] = "async" if self.checkpoint_during else "sync"
            if self.durability is not None and self.durability != implied:
                raise ValueError(
                    f"checkpoint_during={str(self.checkpoint_during).lower()} means "
                    f"durability {implied!r}, but durability is {self.durability!r}: "
                    "give one of them")
            self.durability = implied
        return self

    def modes(self) -> list[str]:
        modes = [self.stream_mode] if isinstance(self.stream_mode, str) else self.stream_mode
        return list(dict.fromkeys(modes)) or ["values"]


# Thread TTL, as the SDK sends it: {"strategy": "delete"|"keep_latest", "ttl": minutes}.
MAX_TTL_MINUTES = 100 * 365 * 24 * 60  # a century: beyond it, a timestamp overflows


class ThreadTTL(Strict):
    """After `ttl` minutes without activity on the thread (created, updated, a run
    started or ended, its state changed), `delete` removes it with its runs and
    checkpoints; `keep_latest` keeps it but prunes every checkpoint but the latest."""

    strategy: Literal["delete", "keep_latest"] = "delete"
    ttl: Annotated[float, Field(gt=0, le=MAX_TTL_MINUTES, allow_inf_nan=False)]


def _ttl(value: Any) -> Any:
    # The JS SDK and curl users may send a bare number of minutes, as the SDKs accept.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"strategy": "delete", "ttl": value}
    return value


class SuperstepUpdate(Strict):
    values: Any = None
    command: CommandBody | None = None
    as_node: Annotated[str, Field(min_length=1)]

    @field_validator("command")
    @classmethod
    def _no_command(cls, value: CommandBody | None) -> CommandBody | None:
        if value is not None:
            raise ValueError("a command in supersteps is not supported yet: send values")
        return value


class Superstep(Strict):
    updates: Annotated[list[SuperstepUpdate], Field(min_length=1, max_length=1000)]


class ThreadCreate(Strict):
    """`supersteps` replays state updates onto the new thread (copying a thread from
    another deployment); they need `metadata.graph_id` naming a served graph."""

    thread_id: UUID | None = None
    metadata: Json | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    ttl: ThreadTTL | None = None
    supersteps: Annotated[list[Superstep], Field(max_length=1000)] | None = None

    @field_validator("ttl", mode="before")
    @classmethod
    def _bare_ttl(cls, value: Any) -> Any:
        return _ttl(value)


class ThreadPatch(Strict):
    metadata: Json = Field(default_factory=dict)
    ttl: ThreadTTL | None = None

    @field_validator("ttl", mode="before")
    @classmethod
    def _bare_ttl(cls, value: Any) -> Any:
        return _ttl(value)


class ThreadPrune(Strict):
    thread_ids: Annotated[list[UUID], Field(min_length=1, max_length=MAX_IDS)]
    strategy: Literal["delete", "keep_latest"] = "delete"


ThreadStatusName = Literal["idle", "busy", "interrupted", "error"]


ThreadSelectField = Literal[
    "thread_id", "created_at", "updated_at", "metadata", "config", "status", "values",
    "interrupts",
]
AssistantSelectField = Literal[
    "assistant_id", "graph_id", "name", "description", "config", "context", "created_at",
    "updated_at", "metadata", "version",
]


class ThreadSearch(Strict):
    metadata: Filter | None = None
    values: Filter | None = None
    status: ThreadStatusName | None = None
    ids: Annotated[list[UUID], Field(max_length=MAX_IDS)] | None = None
    limit: Limit = 10
    offset: Offset = 0
    sort_by: Literal["thread_id", "status", "created_at", "updated_at"] = "created_at"
    sort_order: Literal["asc", "desc"] = "desc"
    select: Annotated[list[ThreadSelectField], Field(min_length=1)] | None = None
    extract: Json | None = None

    @field_validator("extract")
    @classmethod
    def _extract(cls, value: Json | None) -> Json | None:
        return None if value is None else extract_paths.validate(value)


class ThreadCount(Strict):
    metadata: Filter | None = None
    values: Filter | None = None
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
    before: CheckpointRef | UUID | None = None
    metadata: HistoryFilter | None = None
    checkpoint: CheckpointRef | None = None

    @field_validator("before", mode="before")
    @classmethod
    def _before_config(cls, value: Any) -> Any:
        # The JS SDK types `before` as a config: {"configurable": {"checkpoint_id": ...}}.
        if isinstance(value, dict) and set(value) == {"configurable"}:
            return value["configurable"]
        return value


class AssistantSearch(Strict):
    graph_id: str | None = None
    name: str | None = None
    metadata: Filter | None = None
    limit: Limit = 10
    offset: Offset = 0
    sort_by: Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"] = (
        "created_at"
    )
    sort_order: Literal["asc", "desc"] = "desc"
    select: Annotated[list[AssistantSelectField], Field(min_length=1)] | None = None


class AssistantCount(Strict):
    graph_id: str | None = None
    name: str | None = None
    metadata: Filter | None = None


class AssistantCreate(Strict):
    graph_id: Annotated[str, Field(min_length=1)]
    assistant_id: UUID | None = None
    config: Config = None
    context: Json | None = None
    metadata: Json | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    name: str | None = None
    description: str | None = None


class AssistantPatch(Strict):
    graph_id: str | None = None
    config: Config = None
    context: Json | None = None
    metadata: Json | None = None
    name: str | None = None
    description: str | None = None


class AssistantVersions(Strict):
    metadata: Filter | None = None
    limit: Limit = 10
    offset: Offset = 0


class AssistantSetLatest(Strict):
    version: Annotated[int, Field(ge=1, le=2**31 - 1)]


class RunsCancelMany(Strict):
    thread_id: UUID | None = None
    run_ids: Annotated[list[UUID], Field(max_length=MAX_IDS)] | None = None
    status: Literal["pending", "running", "all"] | None = None
