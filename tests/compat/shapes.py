"""Check a server's JSON answer against the TypedDict langgraph_sdk/schema.py declares.

The SDK's TypedDicts are the contract the official client is written against, so
the check is strict: every required key present, every value of the declared type
(pydantic in strict JSON mode: no int for a str, no null where None is not allowed,
Literal statuses checked, timestamps must parse). Extra keys are allowed: the SDK
ignores them, and both servers send some (runlane `stop_reason`, the reference
`kwargs`).
"""

from __future__ import annotations

import functools
import types
import typing
from typing import Any, NotRequired

import orjson
from langgraph_sdk import schema
from pydantic import TypeAdapter, ValidationError
from typing_extensions import TypedDict

# `Context`/`Input` are unions of Protocols (TypedDict-like, dataclass-like, ...)
# that describe what a client may *send*; on the wire an answer carries a JSON
# object. pydantic cannot build a validator for Protocols, so those fields are
# checked as the JSON object they are.
_WIRE_OBJECT = dict[str, Any]


def _is_protocol_union(tp: Any) -> bool:
    args = typing.get_args(tp)
    return bool(args) and any(getattr(a, "_is_protocol", False) for a in args)


def _is_typed_dict(tp: Any) -> bool:
    return isinstance(tp, type) and hasattr(tp, "__required_keys__")


def _wire(tp: Any, visiting: frozenset = frozenset()) -> Any:
    """`tp` with client-side Protocol unions replaced by JSON objects, however deep
    (e.g. the `context` of each Assistant in an AssistantsSearchResponse)."""
    if _is_protocol_union(tp):
        return _WIRE_OBJECT
    if _is_typed_dict(tp):
        if tp in visiting:  # a recursive TypedDict (ThreadState -> ThreadTask -> ...)
            return tp
        hints = typing.get_type_hints(tp)
        wired = {name: _wire(t, visiting | {tp}) for name, t in hints.items()}
        if all(wired[name] is hints[name] for name in hints):
            return tp
        fields = {name: NotRequired[t] if name in tp.__optional_keys__ else t
                  for name, t in wired.items()}
        return TypedDict(f"Wire{tp.__name__}", fields)  # type: ignore[operator]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is None or not args:
        return tp
    wired_args = tuple(_wire(a, visiting) for a in args)
    if all(w is a for w, a in zip(wired_args, args, strict=True)):
        return tp
    if origin in (typing.Union, types.UnionType):
        return typing.Union[wired_args]  # noqa: UP007
    if origin is typing.Literal:
        return tp
    if hasattr(tp, "copy_with"):
        return tp.copy_with(wired_args)
    return typing.get_origin(tp)[wired_args]


@functools.cache
def _adapter(tp: Any) -> TypeAdapter:
    return TypeAdapter(_wire(tp))


def shape_problems(value: Any, tp: Any) -> list[str]:
    """What in `value` does not match `tp` (empty when it matches)."""
    try:
        _adapter(tp).validate_json(orjson.dumps(value), strict=True)
    except ValidationError as exc:
        return [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
                for e in exc.errors()]
    return []


# Shape problems found during the current test. The conftest clears this before each
# compat test and fails the test with all of them once its body has passed: a test
# first shows whether the call did what it says, and then whether the answer is
# shaped as the SDK declares (the reference server often misses keys the SDK
# declares required, e.g. Thread.interrupts; stopping at the first one would hide
# everything else the test checks).
found: list[str] = []


def assert_shape(value: Any, tp: Any, name: str | None = None) -> None:
    """Record every mismatch between `value` and the SDK's declared type `tp`; the
    test fails with them at its end (see `found`)."""
    name = name or (tp.__name__ if isinstance(tp, type) else repr(tp))
    found.extend(f"{name}.{problem}" for problem in shape_problems(value, tp))


def shape_failure() -> str | None:
    """The failure message for the shape problems recorded so far, if any."""
    if not found:
        return None
    unique = list(dict.fromkeys(found))
    return ("shape: the answers differ from langgraph_sdk.schema: " + "; ".join(unique[:20])
            + (f" (and {len(unique) - 20} more)" if len(unique) > 20 else ""))


Assistant = schema.Assistant
AssistantVersion = schema.AssistantVersion
Thread = schema.Thread
ThreadState = schema.ThreadState
Run = schema.Run
Cron = schema.Cron
Item = schema.Item
