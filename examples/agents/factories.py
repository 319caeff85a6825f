"""A graph factory in each form the reference server accepts.

Every factory returns the same topology (an agent node and a tools node) whatever it is
given, as the reference requires of a factory called for schemas and state reads too;
what varies per run is the tool list and the model's knobs. Each one also works when
called with an empty config (`{}`), as runlane calls factories at start-up today.

- factory_sync(config)               a plain function taking the run's `RunnableConfig`
- factory_async(config)              an `async def`
- factory_cm(config)                 an `@asynccontextmanager` yielding the graph (set-up
                                     before, tear-down after the run)
- factory_runtime(runtime)           takes a `ServerRuntime` (langgraph_sdk.runtime)
- factory_both(config, runtime)      takes both
- factory_per_run(config, runtime)   picks its tools from the run's context (`tools`:
                                     names) or `configurable.tools`, per run
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

from agent_tools import calculator, get_weather, slow_search
from langchain_core.runnables import RunnableConfig
from langgraph_sdk.runtime import ServerRuntime
from react_agent import build

ALL_TOOLS = {t.name: t for t in (get_weather, slow_search, calculator)}

# Set while factory_cm's graph is lent out: shows set-up and tear-down happened.
OPEN_RESOURCES: list[str] = []


def _tools(names: Iterable[str] | None) -> list[Any]:
    if not names:
        return list(ALL_TOOLS.values())
    return [ALL_TOOLS[n] for n in names if n in ALL_TOOLS] or list(ALL_TOOLS.values())


def _configurable(config: RunnableConfig | None) -> dict[str, Any]:
    return dict((config or {}).get("configurable") or {})


def factory_sync(config: RunnableConfig) -> Any:
    return build(_tools(_configurable(config).get("tools")), name="factory_sync")


async def factory_async(config: RunnableConfig) -> Any:
    return build(_tools(_configurable(config).get("tools")), name="factory_async")


@contextlib.asynccontextmanager
async def factory_cm(config: RunnableConfig) -> AsyncIterator[Any]:
    resource = f"connection for {_configurable(config).get('thread_id', 'no thread')}"
    OPEN_RESOURCES.append(resource)
    try:
        yield build(_tools(None), name="factory_cm")
    finally:
        OPEN_RESOURCES.remove(resource)


def _context_tools(runtime: ServerRuntime | None) -> list[str] | None:
    execution = runtime.execution_runtime if runtime is not None else None
    context = execution.context if execution is not None else None
    if isinstance(context, dict):
        return context.get("tools")
    return getattr(context, "tools", None)


def factory_runtime(runtime: ServerRuntime) -> Any:
    return build(_tools(_context_tools(runtime)), name="factory_runtime")


def factory_both(config: RunnableConfig, runtime: ServerRuntime) -> Any:
    names = _context_tools(runtime) or _configurable(config).get("tools")
    return build(_tools(names), name="factory_both")


def factory_per_run(config: RunnableConfig, runtime: ServerRuntime) -> Any:
    """One tool list per run: the run's context `tools`, else `configurable.tools`, else all."""
    names = _context_tools(runtime) or _configurable(config).get("tools")
    return build(_tools(names), name="factory_per_run")
