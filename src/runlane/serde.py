"""JSON encoding of whatever graphs put in their state and stream (messages, pydantic
models, dataclasses, interrupts ...), in one place."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from langgraph.types import Interrupt, Send

# A JSON object as runlane passes it around: a request's or a column's JSON, a body.
JSONObject = dict[str, Any]

# Dataclasses go through _default (orjson would encode them itself), so that an
# Interrupt is shaped as the SDK types it.
_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_PASSTHROUGH_DATACLASS


def _interrupt(obj: Interrupt) -> dict[str, Any]:
    """An interrupt as the SDK types it: `response_schema` is optional (absent or an
    object), so it is left out when the graph gave none rather than sent as null."""
    body: dict[str, Any] = {"value": obj.value, "id": obj.id}
    schema = obj.response_schema
    if isinstance(schema, Mapping):
        body["response_schema"] = dict(schema)
    elif schema is not None:  # a Python type: its JSON schema, when it has one
        from runlane.service.graph_schemas import json_schema_of

        converted = json_schema_of(schema)
        if converted is not None:
            body["response_schema"] = converted
    return body


def _default(obj: Any) -> Any:  # noqa: C901 - a flat dispatch on type
    if isinstance(obj, Interrupt):
        return _interrupt(obj)
    if isinstance(obj, Send):  # a conditional edge's fan-out, in `events` (as the reference)
        return {"node": obj.node, "args": obj.arg}
    # pydantic models, including langchain messages
    model_dump = getattr(obj, "model_dump", None)
    if callable(model_dump):
        return model_dump(mode="json")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if isinstance(obj, (uuid.UUID, datetime.timedelta)):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, BaseException):
        return {"error": type(obj).__name__, "message": str(obj)}
    if isinstance(obj, bytes):
        return obj.decode(errors="replace")
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, Sequence):
        return list(obj)
    # NamedTuple-like objects (langgraph's StateSnapshot, Send ...)
    as_dict = getattr(obj, "_asdict", None)
    if callable(as_dict):
        return as_dict()
    if hasattr(obj, "__dict__"):
        return {k: v for k, v in vars(obj).items() if not k.startswith("_")}
    return repr(obj)


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_default, option=_OPTIONS)


def dumps_model(obj: Any) -> bytes:
    """`dumps(obj)` for a pydantic model (a streamed message chunk), by pydantic's own
    JSON writer: the same bytes as `model_dump(mode="json")` written by orjson, which
    `dumps` does (tests/fast/test_frames.py), without building the dict in between (a
    token's chunk, once per token per run); an integer beyond 64 bits, which orjson
    refuses, is written. Anything it cannot write goes through `dumps`."""
    serializer = getattr(type(obj), "__pydantic_serializer__", None)
    if serializer is not None:
        try:
            encoded: bytes = serializer.to_json(obj)
        except Exception:  # noqa: BLE001 - dumps decides, as for any other value
            return dumps(obj)
        return encoded
    return dumps(obj)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def to_jsonable(obj: Any) -> Any:
    """Round-trip through JSON: plain dicts/lists/scalars only."""
    return orjson.loads(dumps(obj))


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
