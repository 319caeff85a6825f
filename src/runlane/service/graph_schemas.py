"""The JSON schemas of a served graph, as GET /assistants/{id}/schemas and /subgraphs
answer them: input, output, state, config (its `configurable` part) and context.

pydantic refuses `typing.TypedDict` before Python 3.12 ("use typing_extensions.TypedDict"),
and graphs commonly declare their state with it, so langgraph's own helpers
(`graph.get_input_jsonschema()` ...) fail for them on 3.11. Where they fail, the type
is rewritten with `typing_extensions.TypedDict` (same name, keys, required keys and
annotations, nested TypedDicts too) and its schema taken from that: the schema
pydantic itself gives on 3.12. A part that still has no schema is None (the SDK types
each part as optional), never an error: a graph with an odd type keeps the rest.
"""

from __future__ import annotations

import functools
import logging
import operator
import types
import typing
import warnings
from typing import Any

import typing_extensions
from pydantic import TypeAdapter, create_model

from runlane.observability import logs

log = logging.getLogger("runlane.graph_schemas")

Schema = dict[str, Any]

# Keys of `configurable` that runlane (and the LangGraph server) set for every run:
# not part of what a client configures.
_RESERVED_CONFIGURABLE = ("__pregel_checkpointer", "__pregel_store", "checkpoint_id",
                          "checkpoint_ns", "thread_id")
_REQUIRED_MARKERS = (typing.Required, typing.NotRequired, typing_extensions.Required,
                     typing_extensions.NotRequired)


def _is_plain_typeddict(tp: Any) -> bool:
    """A TypedDict made with `typing.TypedDict` (the kind pydantic refuses on 3.11)."""
    return typing_extensions.is_typeddict(tp) and type(tp).__module__ == "typing"


# Over the complexity ceiling: one case per form a type takes.
def _portable(tp: Any, seen: dict[int, Any] | None = None) -> Any:  # noqa: C901
    """`tp` with every `typing.TypedDict` in it rewritten as a `typing_extensions` one."""
    seen = {} if seen is None else seen
    if id(tp) in seen:
        return seen[id(tp)]
    if _is_plain_typeddict(tp):
        hints = typing.get_type_hints(tp, include_extras=True)
        fields = {}
        for key, hint in hints.items():
            bare = hint
            while typing.get_origin(bare) in _REQUIRED_MARKERS:  # re-marked below
                bare = typing.get_args(bare)[0]
            marker = (typing_extensions.Required if key in tp.__required_keys__
                      else typing_extensions.NotRequired)
            fields[key] = marker[_portable(bare, seen)]
        # Built at run time, under a name only known then (which mypy cannot follow).
        converted = typing_extensions.TypedDict(tp.__name__, fields)  # type: ignore[misc]
        converted.__doc__ = tp.__doc__
        converted.__module__ = tp.__module__
        seen[id(tp)] = converted
        return converted
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is None or not args:
        return tp
    if origin is typing.Annotated:
        return typing.Annotated[(_portable(args[0], seen), *tp.__metadata__)]
    if origin is typing.Literal:
        return tp
    converted_args = tuple(_portable(a, seen) if not isinstance(a, list)
                           else [_portable(x, seen) for x in a] for a in args)
    if converted_args == args:
        return tp
    try:
        if origin is types.UnionType:
            return functools.reduce(operator.or_, converted_args)
        if origin is typing.Union:
            return typing.Union[converted_args]  # noqa: UP007 - built at run time
        return origin[converted_args]
    except TypeError:  # e.g. collections.abc.Callable's own argument shape
        try:
            return typing.get_origin(tp).__class_getitem__(converted_args)
        except Exception:  # noqa: BLE001 - a generic that cannot be rebuilt stays as it was
            return tp


def json_schema_of(tp: Any) -> Schema | None:
    """The JSON schema pydantic gives `tp` (on 3.11 too, for TypedDicts); None if none."""
    # pydantic raises several kinds of error for a type it cannot read: then rewrite it
    with logs.failure_logged(log, "reading %r as it is declared", tp, level=logging.DEBUG):
        return TypeAdapter(tp).json_schema()
    try:
        return TypeAdapter(_portable(tp)).json_schema()
    except Exception as exc:  # noqa: BLE001 - no schema is an answer (None), never a 500
        log.debug("no JSON schema for %r: %s", tp, exc)
        return None


def _io_schema(graph: Any, getter: str, builder_attr: str) -> Schema | None:
    """The graph's input or output schema: langgraph's helper, or (when it fails on a
    typing.TypedDict) the builder's schema type rewritten."""
    try:
        return getattr(graph, getter)()
    except Exception as exc:  # noqa: BLE001 - see the module docstring
        builder = getattr(graph, "builder", None)
        declared = getattr(builder, builder_attr, None)
        if declared is not None and typing_extensions.is_typeddict(declared):
            return json_schema_of(declared)
        log.warning("no %s for graph %s: %s", getter.removeprefix("get_").replace("_", " "),
                    graph.get_name(), exc)
        return None


def _state_schema(graph: Any) -> Schema | None:
    """One property per state channel, typed as the channel accepts updates (a
    channel whose type has no JSON schema is typed as anything)."""
    fields: dict[str, Any] = {}
    for key in graph.stream_channels_list:
        update_type = _portable(graph.channels[key].UpdateType)
        try:
            TypeAdapter(update_type).json_schema()
        except Exception:  # noqa: BLE001 - any type pydantic cannot describe
            update_type = Any
        fields[key] = (update_type, None)
    try:
        return create_model(graph.get_name("State"), **fields).model_json_schema()
    except Exception as exc:  # noqa: BLE001 - see the module docstring
        log.warning("no state schema for graph %s: %s", graph.get_name(), exc)
        return None


def _config_schema(graph: Any) -> Schema | None:
    """The schema of the graph's `configurable` (without the keys every run gets);
    {} when the graph declares none."""
    try:
        with warnings.catch_warnings():  # config_schema() is deprecated in langgraph 1.x
            warnings.simplefilter("ignore")
            model = graph.config_schema()
    except Exception as exc:  # noqa: BLE001 - see the module docstring
        log.warning("no config schema for graph %s: %s", graph.get_name(), exc)
        return None
    field = getattr(model, "model_fields", {}).get("configurable")
    if field is None:
        return {}
    schema = json_schema_of(field.annotation)
    if not schema:
        return schema
    for key in _RESERVED_CONFIGURABLE:
        schema.get("properties", {}).pop(key, None)
    config_type = getattr(graph, "config_type", None)
    if config_type is not None and hasattr(config_type, "__name__"):
        schema["title"] = config_type.__name__
    return schema


def _context_schema(graph: Any) -> Schema | None:
    declared = getattr(graph, "context_schema", None)
    if declared is None:
        return None
    try:
        return graph.get_context_jsonschema()
    except Exception:  # noqa: BLE001  # a typing.TypedDict on 3.11, or a plain type such as dict
        return json_schema_of(declared)


def input_schema(graph: Any) -> Schema | None:
    """The graph's input schema alone (what an MCP tool's inputSchema is made of)."""
    return _io_schema(graph, "get_input_jsonschema", "input_schema")


def graph_schemas(graph: Any) -> Schema:
    """input_schema, output_schema, state_schema, config_schema, context_schema."""
    return {
        "input_schema": _io_schema(graph, "get_input_jsonschema", "input_schema"),
        "output_schema": _io_schema(graph, "get_output_jsonschema", "output_schema"),
        "state_schema": _state_schema(graph),
        "config_schema": _config_schema(graph),
        "context_schema": _context_schema(graph),
    }
