"""Store request bodies as langgraph_sdk's StoreClient sends them, validated strictly.

Namespaces are lists of labels; a label is a non-empty string without '.', the
separator the GET route's `namespace=a.b` query uses (langgraph's own rule).

Optional fields are typed without None but default to None, as in cron_models: omitting
one is fine, an explicit null is a 422. Each `type: ignore[assignment]` below is that
None default, which the type does not admit.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StrictBool

from runlane.api.models import Json, Offset, Strict

MAX_LABELS = 64


def _labels(value: list[str]) -> list[str]:
    for label in value:
        if not label:
            raise ValueError("namespace labels cannot be empty strings")
        if "." in label:
            raise ValueError(f"namespace label {label!r} contains '.', which separates labels")
        if "\x00" in label:
            raise ValueError("namespace labels cannot contain NUL characters")
    return value


def no_nul(value: Any) -> Any:
    """PostgreSQL's jsonb (the store's column there) cannot hold NUL characters: refuse
    them on every backend rather than fail on one."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ValueError("NUL characters (\\u0000) cannot be stored")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


Labels = Annotated[list[str], Field(max_length=MAX_LABELS), AfterValidator(_labels)]
Namespace = Annotated[list[str], Field(min_length=1, max_length=MAX_LABELS),
                      AfterValidator(_labels)]
Key = Annotated[str, Field(min_length=1, max_length=1024), AfterValidator(no_nul)]


def _path(value: str) -> str:
    """A field path to embed, as langgraph reads it ("text", "meta.title",
    "chapters[*].content", "$" for the whole value)."""
    from langgraph.store.base import tokenize_path

    if not value.strip() or not tokenize_path(value):
        raise ValueError(f"{value!r} is not a field path (e.g. \"text\", \"meta.title\", "
                         "\"chapters[*].content\", \"$\" for the whole value)")
    return value


Field_ = Annotated[str, Field(max_length=1024), AfterValidator(no_nul), AfterValidator(_path)]
Value = Annotated[Json, AfterValidator(no_nul)]


class StorePut(Strict):
    namespace: Namespace
    key: Key
    value: Value
    # False: not embedded (never found by `query`); a list: the fields to embed
    # instead of langgraph.json's store.index.fields (the routes refuse a list when no
    # index is configured).
    index: Literal[False] | Annotated[list[Field_], Field(min_length=1, max_length=64)] = None  # type: ignore[assignment]
    # Minutes, as the SDK documents; the item expires that long after its last write
    # (or read, which refreshes it).
    ttl: Annotated[float, Field(gt=0, le=10 * 365 * 24 * 60)] = None  # type: ignore[assignment]


class StoreDelete(Strict):
    namespace: Namespace
    key: Key


class StoreSearch(Strict):
    namespace_prefix: Labels = Field(default_factory=list)
    filter: Value = None  # type: ignore[assignment]
    limit: Annotated[int, Field(ge=1, le=1000)] = 10
    offset: Offset = 0
    # Natural-language search, ranked by similarity (store.index; the route refuses
    # it when none is configured).
    query: Annotated[str, Field(max_length=10_000), AfterValidator(no_nul)] = None  # type: ignore[assignment]
    refresh_ttl: StrictBool = None  # type: ignore[assignment]


class StoreListNamespaces(Strict):
    prefix: Labels = None  # type: ignore[assignment]
    suffix: Labels = None  # type: ignore[assignment]
    max_depth: Annotated[int, Field(ge=1, le=MAX_LABELS)] = None  # type: ignore[assignment]
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    offset: Offset = 0
