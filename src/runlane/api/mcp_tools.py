"""The assistants as MCP tools (docs/mcp.md): what `tools/list` and `tools/call` answer.

As on the reference server, every assistant the caller can see is a tool: its name
made a valid MCP tool name, its description (or "Tool based on the <name>
assistant"), and its graph's input schema, where a list of LangChain messages reads
as one string (the user's message: `add_messages` takes a string as a human message).
A call is a stateless run created as POST /runs/wait creates one (the caller's owner,
the `threads.create_run` handler, the run contract), answered with the run's output.

The transport (sessions, cancellation by `notifications/cancelled`) is runlane.api.mcp.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Iterator
from typing import Any

import anyio
import jsonschema
import orjson
from mcp import types
from mcp.shared.exceptions import McpError
from pydantic import ValidationError
from starlette.requests import Request

from runlane.api.access import allowed
from runlane.api.models import RunCreate
from runlane.api.runs import admit_as_caller
from runlane.contract import CancelAction, CancelReason
from runlane.errors import RunlaneError
from runlane.graph_factories import ServedGraph
from runlane.owners import owner_of
from runlane.records import Assistant
from runlane.serde import dumps
from runlane.service.graph_schemas import Schema, input_schema
from runlane.service.runs import Runlane

log = logging.getLogger("runlane.mcp")

# Tools per tools/list page (the reference's page size).
PAGE_SIZE = 100
# The most assistants a caller's tools are drawn from (newest first).
MAX_ASSISTANTS = 10_000
# MCP tool names: ^[A-Za-z0-9_.-]{1,128}$ (spec 2025-11-25).
_NAME_LIMIT = 128
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_.\-]")
# The $defs pydantic gives LangChain's message classes: a property that is a list of
# them (AnyMessage's union, or BaseMessage as create_react_agent's state declares it).
MESSAGE_TYPES = frozenset(
    {"BaseMessage", "BaseMessageChunk"} | {
        f"{kind}{suffix}" for kind in ("AI", "Human", "Chat", "System", "Function", "Tool",
                                       "Remove")
        for suffix in ("Message", "MessageChunk")})
# Every tool runs an agent: it changes things, may take long, reaches the world.
ANNOTATIONS = types.ToolAnnotations(readOnlyHint=False, destructiveHint=False,
                                    idempotentHint=False, openWorldHint=True)


def tool_name(assistant_name: str) -> str:
    """The assistant's name as an MCP tool name: whitespace runs become `_`, other
    characters outside [A-Za-z0-9_.-] go, at most 128 characters (as the reference)."""
    name = re.sub(r"\s+", "_", assistant_name.strip())
    return _NOT_IN_NAME.sub("", name)[:_NAME_LIMIT]


def _refs(node: Any) -> Iterator[str]:
    """The $defs names a schema fragment refers to."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            yield ref.removeprefix("#/$defs/")
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _is_message_list(prop: Any) -> bool:
    if not isinstance(prop, dict) or prop.get("type") != "array":
        return False
    return any(name in MESSAGE_TYPES for name in _refs(prop.get("items", {})))


def simplified(schema: Schema) -> tuple[Schema, set[str]]:
    """The tool's inputSchema (a copy): each property holding a list of LangChain
    messages becomes a string, the $defs nothing refers to any more go, and the
    type is `object` as MCP requires. Also the names of the properties simplified."""
    schema = copy.deepcopy(schema)
    props = schema.get("properties")
    simple: set[str] = set()
    if isinstance(props, dict):
        for key, prop in props.items():
            if _is_message_list(prop):
                props[key] = {"type": "string", "title": prop.get("title", key),
                              "description": "The user message to send to the agent."}
                simple.add(key)
    defs = schema.get("$defs")
    if simple and isinstance(defs, dict):
        # Keep the definitions still reachable from the schema itself.
        reachable: set[str] = set()
        pending = list(_refs({k: v for k, v in schema.items() if k != "$defs"}))
        while pending:
            name = pending.pop()
            if name not in reachable and name in defs:
                reachable.add(name)
                pending.extend(_refs(defs[name]))
        schema["$defs"] = {k: v for k, v in defs.items() if k in reachable}
        if not schema["$defs"]:
            del schema["$defs"]
    schema.setdefault("type", "object")
    return schema, simple


def _validation_schema(schema: Schema, simple: set[str]) -> Schema:
    """What arguments are checked against: the tool's schema, where a simplified
    messages property also takes the list of messages the graph itself accepts."""
    if not simple:
        return schema
    checked = copy.deepcopy(schema)
    for key in simple:
        checked["properties"][key] = {"anyOf": [{"type": "string"}, {"type": "array"}]}
    return checked


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                isError=True)


class AssistantTools:
    """The caller's assistants as tools. Input schemas of compiled graphs are kept per
    graph (they never change); a factory's graph is made per listing, as for GET
    /assistants/{id}/schemas."""

    def __init__(self) -> None:
        self._schemas: dict[str, Schema | None] = {}
        # Set when the server shuts down: calls stopped then leave their runs to the
        # runtime's own shutdown (as an HTTP wait cut by the shutdown does).
        self.closing = False

    # ------------------------------------------------------------ listing

    async def _assistants(self, request: Request) -> list[tuple[str, Assistant]]:
        """(tool name, assistant) for every assistant the caller can see, newest first;
        of several with one tool name, the newest (the one tools/list shows)."""
        filters = await allowed(request, "assistants", "search", {})
        svc: Runlane = request.app.state.runlane
        rows = await svc.store.search_assistants(
            owner=owner_of(request), auth_filter=filters, graph_id=None, name=None,
            metadata_filter=None, limit=MAX_ASSISTANTS, offset=0, sort_by="created_at",
            sort_order="desc")
        seen: dict[str, Assistant] = {}
        for row in rows:
            name = tool_name(row.name or "")
            if not name:
                continue
            if name in seen:
                log.warning("assistant %s is not an MCP tool: the newer assistant %s has "
                            "the same tool name %r", row.assistant_id,
                            seen[name].assistant_id, name)
                continue
            seen[name] = row
        return list(seen.items())

    async def _input_schema(self, request: Request, assistant: Assistant) -> Schema | None:
        svc: Runlane = request.app.state.runlane
        served: ServedGraph | None = svc.graphs.get(assistant.graph_id)
        if served is None:
            return None
        if not served.is_factory and assistant.graph_id in self._schemas:
            return self._schemas[assistant.graph_id]
        config = {**assistant.config,
                  "configurable": {**(assistant.config.get("configurable") or {}),
                                   "assistant_id": assistant.assistant_id,
                                   "graph_id": assistant.graph_id}}
        try:
            async with served.open("assistants.read", config,
                                   user=getattr(request.state, "user", None)) as graph:
                schema = input_schema(graph)
        except Exception as exc:  # noqa: BLE001 - a factory's failure hides its tool only
            log.warning("assistant %s is not an MCP tool: its graph %r could not be made "
                        "(%s: %s)", assistant.assistant_id, assistant.graph_id,
                        type(exc).__name__, exc)
            return None
        if not served.is_factory:
            self._schemas[assistant.graph_id] = schema
        return schema

    async def _tool(self, request: Request, name: str,
                    assistant: Assistant) -> types.Tool | None:
        schema = await self._input_schema(request, assistant)
        if schema is None:  # as the reference: a graph without an input schema is no tool
            return None
        tool_schema, _ = simplified(schema)
        return types.Tool(
            name=name, title=assistant.name,
            description=assistant.description or f"Tool based on the {assistant.name} assistant",
            inputSchema=tool_schema, annotations=ANNOTATIONS)

    async def list_tools(self, request: Request, cursor: str | None) -> types.ListToolsResult:
        """One page of tools; `cursor`: where the page starts (nextCursor of the last)."""
        start = 0
        if cursor is not None:
            if not (cursor.isascii() and cursor.isdigit()):
                raise McpError(types.ErrorData(
                    code=types.INVALID_PARAMS,
                    message=f"invalid cursor {cursor!r}: pass the nextCursor of the previous "
                            "tools/list answer, or none for the first page"))
            start = int(cursor)
        named = await self._assistants(request)
        page = named[start:start + PAGE_SIZE]
        tools = [tool for name, row in page
                 if (tool := await self._tool(request, name, row)) is not None]
        more = start + PAGE_SIZE < len(named)
        return types.ListToolsResult(tools=tools,
                                     nextCursor=str(start + PAGE_SIZE) if more else None)

    # ------------------------------------------------------------ calling

    async def call_tool(self, request: Request, name: str, arguments: dict[str, Any] | None,
                        context: Any = None) -> types.CallToolResult:
        """Run the tool's assistant on `arguments` (its graph's input) as a stateless
        run, and answer its output. A cancel of this call (the task cancelled:
        `notifications/cancelled`, the session closed) interrupts the run."""
        found = dict(await self._assistants(request)).get(name)
        if found is None:
            raise McpError(types.ErrorData(code=types.INVALID_PARAMS,
                                           message=f"Unknown tool: {name}"))
        schema = await self._input_schema(request, found)
        if schema is None:
            raise McpError(types.ErrorData(code=types.INVALID_PARAMS,
                                           message=f"Unknown tool: {name}"))
        arguments = arguments or {}
        try:
            jsonschema.validate(arguments, _validation_schema(*simplified(schema)))
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "arguments"
            return _error(f"Input validation error: {where}: {exc.message}")
        try:
            body = RunCreate(assistant_id=found.assistant_id, input=arguments, context=context)
        except ValidationError as exc:
            return _error(f"Input validation error: {exc.errors()[0]['msg']}")
        svc: Runlane = request.app.state.runlane
        try:
            # Shielded: a cancel landing while the run is created still finds its id.
            with anyio.CancelScope(shield=True):
                run = (await admit_as_caller(request, body)).run
        except RunlaneError as exc:  # refused by an authorization handler, say
            return _error(f"{type(exc).__name__}: {exc}")
        try:
            value = await svc.run_result(run.thread_id, run.run_id)
        except RunlaneError as exc:  # the run is gone (its thread deleted meanwhile)
            return _error(f"{type(exc).__name__}: {exc}")
        except BaseException:
            if not self.closing:
                # Nobody waits for this run any more: stop it through the contract.
                with anyio.CancelScope(shield=True):
                    await svc.cancel_run(run.thread_id, run.run_id,
                                         action=CancelAction.INTERRUPT, wait=False,
                                         reason=CancelReason.USER)
            raise
        return call_result(value)


def call_result(value: Any) -> types.CallToolResult:
    """A finished run's output as a tool result: an errored run is an error result
    naming its error; otherwise the output as JSON text, and as structured content
    when it is an object."""
    if isinstance(value, dict) and "__error__" in value:
        error = value["__error__"] if isinstance(value["__error__"], dict) else {}
        kind, message = error.get("error") or "Error", error.get("message")
        return _error(f"{kind}: {message}" if message else str(kind))
    text = dumps(value).decode()
    structured = orjson.loads(text)
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structuredContent=structured if isinstance(structured, dict) else None)
