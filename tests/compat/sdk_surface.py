"""The public surface of the installed langgraph_sdk client, and which compat tests
exercise which part of it.

Both sides are found by introspection, so a method the SDK adds in a new release
shows up as uncovered (test_coverage.py fails) without anyone listing it here.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

from langgraph_sdk import get_client

RESOURCES = ("assistants", "threads", "runs", "crons", "store")
COMPAT_DIR = Path(__file__).parent
# Protocols served beside the LangGraph API, which no langgraph_sdk object has: their
# methods as `protocol.method`, each needing a compat test as an SDK method does (A2A:
# tests/compat/test_a2a.py; MCP at /mcp: tests/compat/test_mcp.py; the commands of the
# v2 thread streaming protocol under `client.threads.stream`, some of which the SDK
# sends only over a raw WebSocket: tests/compat/test_thread_stream_v2.py).
PROTOCOL_METHODS = ("a2a.agent_card", "a2a.message/send", "a2a.message/stream",
                    "a2a.tasks/get", "a2a.tasks/cancel", "mcp.tools/list", "mcp.tools/call",
                    "v2.run.start", "v2.input.respond", "v2.agent.getTree",
                    "v2.subscription.subscribe", "v2.subscription.unsubscribe",
                    "v2.subscription.reconnect")


def sdk_methods() -> list[str]:
    """Every public method of the async client's resources, as `resource.method`."""
    client = get_client(url="http://127.0.0.1:9")  # never contacted
    names = []
    for resource in RESOURCES:
        obj = getattr(client, resource)
        for name, member in inspect.getmembers(obj):
            if not name.startswith("_") and inspect.ismethod(member):
                names.append(f"{resource}.{name}")
    return sorted(names)


def surface() -> list[str]:
    """Everything the compat suite must cover: the SDK's methods, then the protocols'."""
    return [*sdk_methods(), *PROTOCOL_METHODS]


def compat_tests() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Every compat test function: `file::name` -> (area, SDK methods it exercises),
    read from its `@pytest.mark.compat(area, *methods)` marker."""
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    for info in pkgutil.iter_modules([str(COMPAT_DIR)]):
        if not info.name.startswith("test_"):
            continue
        module = importlib.import_module(f"compat.{info.name}")
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if not name.startswith("test_") or fn.__module__ != module.__name__:
                continue
            for mark in getattr(fn, "pytestmark", []):
                if mark.name == "compat":
                    area, *methods = mark.args
                    found[f"{info.name}.py::{name}"] = (area, tuple(methods))
    return found
