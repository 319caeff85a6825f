"""Graphs that report what a run's nodes see of its context and config: each context
schema langgraph accepts (dataclass, TypedDict, pydantic), and one that raises."""

from __future__ import annotations

import dataclasses
from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_config
from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime
from pydantic import BaseModel


class SeenState(TypedDict, total=False):
    note: str
    context_type: str
    context: dict
    seen_configurable: dict
    seen_get_config: dict


def _plain(value: Any) -> Any:
    """A JSON-able view of a configurable value (the auth user is an object)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    identity = getattr(value, "identity", None)
    return {"identity": identity} if identity is not None else type(value).__name__


def configurable_view(configurable: dict) -> dict:
    # langgraph's own keys (__pregel_*) are runtime objects, not the run's configuration.
    return {k: _plain(v) for k, v in configurable.items() if not k.startswith("__pregel")}


def _context_dict(context: Any) -> Any:
    if context is None:
        return None
    if dataclasses.is_dataclass(context) and not isinstance(context, type):
        return dataclasses.asdict(context)
    if isinstance(context, BaseModel):
        return context.model_dump()
    return dict(context)


def report(state: SeenState, config: RunnableConfig, runtime: Runtime) -> dict:
    return {
        "context_type": type(runtime.context).__name__,
        "context": _context_dict(runtime.context),
        "seen_configurable": configurable_view(config.get("configurable") or {}),
        # What a helper several calls deep sees through langgraph's get_config().
        "seen_get_config": configurable_view(get_config().get("configurable") or {}),
    }


@dataclasses.dataclass
class DataclassContext:
    model: str = "default-model"
    temperature: float = 0.5


class TypedDictContext(TypedDict, total=False):
    model: str
    temperature: float


class PydanticContext(BaseModel):
    model: str = "default-model"
    temperature: float = 0.5


def _reporter(schema: Any) -> Any:
    return (StateGraph(SeenState, context_schema=schema)
            .add_node("report", report).add_edge(START, "report").compile())


ctx_dataclass = _reporter(DataclassContext)
ctx_typeddict = _reporter(TypedDictContext)
ctx_pydantic = _reporter(PydanticContext)


# LangChain's react-agent template reads `runtime.context.model` in its first node:
# a run given no context must still find the schema's defaults there.
def call_model(state: SeenState, runtime: Runtime[DataclassContext]) -> dict:
    return {"note": f"{runtime.context.model} at {runtime.context.temperature}"}


ctx_template = (StateGraph(SeenState, context_schema=DataclassContext)
                .add_node("call_model", call_model).add_edge(START, "call_model").compile())


class BrokenTool(ValueError):
    """A graph's own exception type: the run's error names it."""


def explode(state: SeenState) -> dict:
    raise BrokenTool(f"the tool broke on {state.get('note')!r}")


ctx_failing = (StateGraph(SeenState).add_node("explode", explode)
               .add_edge(START, "explode").compile())
