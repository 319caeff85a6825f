"""A served graph: a compiled graph used as it is, or a factory called each time the
graph is needed (each run, each state read, each schema request), as the reference
server calls graph factories.

A factory may be sync or async, return a graph or a (sync or async) context manager
yielding one, and take nothing, the config, a `ServerRuntime`, or both. Which
parameter is the runtime is told by its annotation (`ServerRuntime`, parameterized
or not, or its concrete classes); any other single parameter is the config."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import inspect
import typing
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal, get_args, get_origin

from langchain_core.runnables import RunnableConfig
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from langgraph_sdk.runtime import ServerRuntime, _ExecutionRuntime, _ReadRuntime

from runlane.errors import ConfigError

# Why a graph is needed, as the reference names it to a factory's ServerRuntime.
Access = Literal["threads.create_run", "threads.update", "threads.read", "assistants.read"]

# The factory's keyword arguments from (config, runtime).
Arguments = Callable[[RunnableConfig, Any], dict[str, Any]]

# Annotations written as strings (`from __future__ import annotations`, or imports
# under TYPE_CHECKING) resolve against these too.
_HINT_NAMES = {"ServerRuntime": ServerRuntime, "RunnableConfig": RunnableConfig}


class GraphFactoryError(TypeError):
    """A factory gave something that is not a graph (the run ends `error` with it)."""


def _is_runtime(annotation: Any) -> bool:
    if annotation is inspect.Parameter.empty:
        return False
    if annotation is ServerRuntime or get_origin(annotation) is ServerRuntime:
        return True
    if isinstance(annotation, type):
        return issubclass(annotation, _ExecutionRuntime | _ReadRuntime)
    if isinstance(annotation, str):
        return annotation.split("[", 1)[0].strip() == "ServerRuntime"
    args = get_args(annotation)  # Annotated[ServerRuntime, ...]
    return bool(args) and _is_runtime(args[0])


def classify(factory: Callable[..., Any], where: str) -> Arguments:
    """How to call `factory`: the keyword arguments it takes, by name."""
    try:
        params = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        params = []
    try:
        hints = typing.get_type_hints(factory, localns=_HINT_NAMES)
    except Exception:  # noqa: BLE001 - unresolvable annotations: use what was written
        hints = {}
    runtime_at = [i for i, p in enumerate(params)
                  if _is_runtime(hints.get(p.name, p.annotation))]
    names = [p.name for p in params]
    if not params:
        return lambda config, runtime: {}
    if len(params) == 1:
        name = names[0]
        if runtime_at:
            return lambda config, runtime: {name: runtime}
        return lambda config, runtime: {name: config}
    if len(params) == 2 and len(runtime_at) == 1:
        runtime_name, config_name = names[runtime_at[0]], names[1 - runtime_at[0]]
        return lambda config, runtime: {runtime_name: runtime, config_name: config}
    if len(params) == 2:
        raise ConfigError(
            f"{where}: a factory taking two parameters takes a config and a runtime "
            f"annotated `ServerRuntime`; got {names}")
    raise ConfigError(f"{where}: a graph factory takes at most two parameters (a config "
                      f"and/or a `ServerRuntime`); got {names}")


@asynccontextmanager
async def _entered(value: Any) -> AsyncIterator[Any]:
    """What a factory's result stands for: a context manager's value (kept entered
    while the graph is in use), an awaitable's result, or the value itself."""
    if hasattr(value, "__aenter__") and hasattr(value, "__aexit__"):
        async with value as entered:
            yield entered
    elif hasattr(value, "__enter__") and hasattr(value, "__exit__"):
        with value as entered:
            yield entered
    elif asyncio.iscoroutine(value) or inspect.isawaitable(value):
        yield await value
    else:
        yield value


@dataclasses.dataclass(frozen=True)
class ServedGraph:
    """One graph id's graph. `compiled` is set for a plain graph (used for every run
    with no per-run cost), `factory` for a factory (called each time)."""

    graph_id: str
    compiled: Pregel | None = None
    factory: Callable[..., Any] | None = None
    arguments: Arguments | None = None
    # Runlane's checkpointer and store, given to every graph a factory makes.
    checkpointer: Any = None
    store: Any = None
    # The graph's module's `stream_transformers` export, when it is callable: called
    # once per v2 protocol run for the run's own transformers (executor/execution.py).
    stream_transformers: Callable[[], Any] | None = None

    @classmethod
    def plain(cls, graph_id: str, graph: Pregel) -> ServedGraph:
        return cls(graph_id, compiled=graph, checkpointer=graph.checkpointer,
                   store=graph.store)

    @classmethod
    def of_factory(cls, graph_id: str, factory: Callable[..., Any], where: str) -> ServedGraph:
        return cls(graph_id, factory=factory, arguments=classify(factory, where))

    @property
    def is_factory(self) -> bool:
        return self.compiled is None

    def bind(self, *, checkpointer: Any, store: Any) -> ServedGraph:
        """The same graph with runlane's checkpointer and store."""
        compiled = self.compiled
        if compiled is not None:
            compiled = compiled.copy(update={"checkpointer": checkpointer, "store": store})
        return dataclasses.replace(self, compiled=compiled, checkpointer=checkpointer,
                                   store=store)

    @asynccontextmanager
    async def open(self, access: Access, config: Mapping[str, Any] | None = None, *,
                   user: Any = None, context: Any = None,
                   store: Any = None) -> AsyncIterator[Pregel]:
        """The graph to use for `access`: the compiled one, or what the factory makes
        of this `config` (and, for a run, its `context`), with `store` (default: the
        served store) in place. A factory's context manager stays entered until the
        block ends."""
        if self.compiled is not None:
            if store is None or store is self.compiled.store:
                yield self.compiled
            else:
                yield self.compiled.copy(update={"store": store})
            return
        assert self.factory is not None and self.arguments is not None
        store = self.store if store is None else store
        runtime: Any
        if access == "threads.create_run":
            runtime = _ExecutionRuntime(access_context=access, user=user, store=store,
                                        context=copy.copy(context))
        else:
            runtime = _ReadRuntime(access_context=access, user=user, store=store)
        given: Any = dict(config or {})
        given["configurable"] = {**(given.get("configurable") or {}),
                                 "__is_for_execution__": access == "threads.create_run"}
        async with self._made(given, runtime) as value:
            graph = value.compile() if isinstance(value, StateGraph) else value
            if not isinstance(graph, Pregel):
                raise GraphFactoryError(
                    f"the factory of graph {self.graph_id!r} returned "
                    f"{type(value).__name__}, not a graph (a compiled graph or a StateGraph)")
            update: dict[str, Any] = {"checkpointer": self.checkpointer, "store": store}
            if graph.name == "LangGraph":
                update["name"] = self.graph_id
            yield graph.copy(update=update)

    @asynccontextmanager
    async def _made(self, config: Any, runtime: Any) -> AsyncIterator[Any]:
        """The factory's result, entered. What the factory raises (calling it, or
        entering its context manager) keeps its type, the run's error reports it as
        the reference does, with a note naming the factory for the log."""
        assert self.factory is not None and self.arguments is not None
        entered = False
        try:
            async with _entered(self.factory(**self.arguments(config, runtime))) as value:
                entered = True
                yield value
        except Exception as exc:
            if not entered:
                exc.add_note(f"raised by the graph factory of {self.graph_id!r} "
                             f"({getattr(self.factory, '__qualname__', self.factory)!s}, "
                             f"access {runtime.access_context})")
            raise
