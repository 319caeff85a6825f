"""Graph factories in each form langgraph.json may name: sync or async, plain or a
context manager, taking nothing, the run's config, a ServerRuntime, or both. Each
made graph answers with what its factory was given, and a token unique to the call,
so tests can tell one factory call per run apart from a graph built once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypedDict

from context_graphs import DataclassContext, configurable_view
from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from langgraph_sdk.runtime import ServerRuntime


class MadeState(TypedDict, total=False):
    note: str
    made: dict


def _graph(made: dict[str, Any]) -> Any:
    made = {**made, "token": str(uuid.uuid4())}

    def answer(state: MadeState) -> dict:
        return {"made": made}

    return (StateGraph(MadeState, context_schema=DataclassContext)
            .add_node("answer", answer).add_edge(START, "answer").compile())


def _seen_config(config: RunnableConfig) -> dict:
    return {"configurable": configurable_view(config.get("configurable") or {})}


def _seen_runtime(runtime: ServerRuntime) -> dict:
    context = getattr(runtime, "context", None)
    user = runtime.user
    return {
        "runtime_type": type(runtime).__name__,
        "access_context": runtime.access_context,
        "context": None if context is None else dict(vars(context))
        if not isinstance(context, dict) else context,
        "user": None if user is None else user.identity,
        "has_store": runtime.store is not None,
    }


def factory_none():
    return _graph({"form": "none"})


def factory_config(config: RunnableConfig):
    return _graph({"form": "config", **_seen_config(config)})


def factory_runtime(runtime: ServerRuntime):
    return _graph({"form": "runtime", **_seen_runtime(runtime)})


# Both, runtime first: matched by annotation, not by position.
def factory_both(runtime: ServerRuntime, config: RunnableConfig):
    return _graph({"form": "both", **_seen_config(config), **_seen_runtime(runtime)})


async def factory_async(config: RunnableConfig):
    return _graph({"form": "async", **_seen_config(config)})


# Entered for each run and exited once the run is over: the exit is recorded in the
# store (item <run_id> in ("factory_acm",)), where a test can see it on any worker.
@asynccontextmanager
async def factory_acm(config: RunnableConfig, runtime: ServerRuntime) -> AsyncIterator[Any]:
    run_id = config["configurable"].get("run_id")
    yield _graph({"form": "acm", **_seen_config(config)})
    if runtime.access_context == "threads.create_run" and run_id:
        await runtime.store.aput(("factory_acm",), run_id, {"exited": True})


@contextmanager
def factory_cm(config: RunnableConfig) -> Iterator[Any]:
    yield _graph({"form": "cm", **_seen_config(config)})


def factory_uncompiled(config: RunnableConfig):
    """A factory returning a StateGraph: the server compiles it."""
    return (StateGraph(MadeState).add_node("answer", lambda s: {"note": "compiled"})
            .add_edge(START, "answer"))


def factory_raising(config: RunnableConfig):
    if config["configurable"].get("explode"):
        raise RuntimeError(f"factory refused model {config['configurable'].get('model')!r}")
    return _graph({"form": "raising"})
