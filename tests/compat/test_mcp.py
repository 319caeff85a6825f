"""/mcp side by side with the reference: the official `mcp` client lists the assistants
as tools and calls them, on runlane and on `langgraph dev` (tests/test_mcp.py covers
runlane's own guarantees: cancellation, sessions, auth).

The markers name the MCP methods (`mcp.tools/list`, `mcp.tools/call`), which are no
langgraph_sdk methods (compat.sdk_surface.PROTOCOL_METHODS). Where runlane differs on
purpose (docs/differences.md, MCP), the test branches on `is_reference`: runlane's
text content is the output as JSON, with the same object as structured content; the
reference's is the output's Python repr, without structured content."""

from __future__ import annotations

import ast
import contextlib
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError

from compat.support import default_assistant


@contextlib.asynccontextmanager
async def session_on(url: str) -> AsyncIterator[ClientSession]:
    async with (httpx.AsyncClient(timeout=120) as http,
                streamable_http_client(f"{url}/mcp", http_client=http) as (read, write, _),
                ClientSession(read, write) as session):
        await session.initialize()
        yield session


def output_of(result: types.CallToolResult, is_reference: bool) -> object:
    assert len(result.content) == 1 and result.content[0].type == "text", result
    text = result.content[0].text
    if is_reference:
        return ast.literal_eval(text)  # the reference answers repr(output)
    assert result.structuredContent == json.loads(text)
    return json.loads(text)


@pytest.mark.compat("mcp", "mcp.tools/list", "assistants.get_schemas", "assistants.search")
async def test_mcp_tools_list(server, client):
    async with session_on(server.url) as session:
        listed = await session.list_tools()
    tools = {tool.name: tool for tool in listed.tools}
    # The default assistant of the corpus's graphs is a tool, named after its graph.
    # (Graphs whose state is a `typing.TypedDict`, as tests/graphs/graphs.py's, are
    # tools on runlane only: on Python 3.11 the reference has no input schema for them,
    # and skips them; runlane makes one, see service/graph_schemas.py.)
    for graph_id in ("lc_agent", "react_agent", "map_reduce", "commands"):
        assert graph_id in tools, sorted(tools)
    fan_out = tools["map_reduce"]
    assert fan_out.description == "Tool based on the map_reduce assistant"
    assert fan_out.title == "map_reduce"
    assistant = await default_assistant(client, "map_reduce")
    schemas = await client.assistants.get_schemas(assistant["assistant_id"])
    assert fan_out.inputSchema == {**schemas["input_schema"], "type": "object"}
    # A list of LangChain messages reads as the user's message, one string.
    messages = tools["lc_agent"].inputSchema["properties"]["messages"]
    assert messages["type"] == "string"
    assert messages["description"] == "The user message to send to the agent."


@pytest.mark.compat("mcp", "mcp.tools/call")
async def test_mcp_tools_call(server, is_reference):
    async with session_on(server.url) as session:
        echoed = await session.call_tool("echo", {"text": "hello"})
        assert echoed.isError is not True
        assert output_of(echoed, is_reference) == {"text": "hello", "echoed": ["hello"]}

        agent = await session.call_tool("lc_agent", {"messages": "What's the weather in Paris?"})
        assert agent.isError is not True
        answer = output_of(agent, is_reference)
        assert isinstance(answer, dict)
        assert "sunny, 21 °C in Paris" in answer["messages"][-1]["content"]

        failed = await session.call_tool("failing", {})
        assert failed.isError is True
        assert failed.content[0].type == "text" and failed.content[0].text.startswith(
            "ValueError")

        with pytest.raises(McpError) as unknown:
            await session.call_tool("no_such_tool", {})
        assert unknown.value.error.code == types.INVALID_PARAMS
        assert unknown.value.error.message == "Unknown tool: no_such_tool"
