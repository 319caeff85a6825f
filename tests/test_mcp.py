"""/mcp end to end: the official `mcp` client (ClientSession over streamable HTTP)
against a real `runlane serve`, on SQLite and on a 3-worker PostgreSQL cluster (the MCP
client talks to one worker: a session lives in the worker that opened it; the runs it
starts may execute on any). Every assistant is a tool; a call is a stateless run; a
`notifications/cancelled` interrupts the run; auth applies as on every route."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError

from auth_support import secured_server
from conftest import BACKENDS, GRAPHS_CONFIG

GRAPH_IDS = sorted(json.loads(GRAPHS_CONFIG.read_text())["graphs"])
JSON_RPC = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@contextlib.asynccontextmanager
async def mcp_session(url: str, headers: dict[str, str] | None = None
                      ) -> AsyncIterator[ClientSession]:
    async with (httpx.AsyncClient(headers=headers or {}, timeout=120) as http,
                streamable_http_client(f"{url}/mcp", http_client=http) as (read, write, _),
                ClientSession(read, write) as session):
        await session.initialize()
        yield session


async def all_tools(session: ClientSession) -> list[types.Tool]:
    tools: list[types.Tool] = []
    cursor = None
    while True:
        page = await session.list_tools(params=types.PaginatedRequestParams(cursor=cursor))
        tools.extend(page.tools)
        cursor = page.nextCursor
        if cursor is None:
            return tools


def text_of(result: types.CallToolResult) -> str:
    assert len(result.content) == 1 and result.content[0].type == "text", result
    return result.content[0].text


async def cancel_request(session: ClientSession, request_id: int) -> None:
    await session.send_notification(types.ClientNotification(types.CancelledNotification(
        params=types.CancelledNotificationParams(requestId=request_id, reason="test"))))


async def started_run(sdk: Any, log: str) -> tuple[str, str]:
    """(thread_id, run_id) of the `memory` run that recorded itself under `log`, once
    it is running (the graph writes its ids to the store, then sleeps)."""
    for _ in range(600):
        items = (await sdk.store.search_items(("cron_log", log)))["items"]
        if items:
            thread_id, run_id = items[0]["value"]["thread_id"], items[0]["key"]
            assert (await sdk.runs.get(thread_id, run_id))["status"] == "running"
            return thread_id, run_id
        await asyncio.sleep(0.1)
    raise AssertionError("the tool call's run never started")


async def ends_interrupted(sdk: Any, server: Any, thread_id: str, run_id: str) -> None:
    """The run ended `interrupted` by a user cancel: its status while its temporary
    thread lasts, and the log line of its last transition (the thread of a stateless
    run goes with it, so the log is what stays)."""
    for _ in range(600):
        try:
            status = (await sdk.runs.get(thread_id, run_id))["status"]
        except NotFoundError:
            status = None  # over, and its thread deleted
        if status not in ("pending", "running"):
            assert status in (None, "interrupted"), status
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"run {run_id} still active after its call was cancelled")
    for _ in range(100):  # the log line is written just after the status commit
        if re.search(rf"run {run_id} running -> interrupted \(.*interrupt by user\)",
                     server.log()):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no `running -> interrupted` line for run {run_id} in the log")


# ------------------------------------------------------------------ tools/list


async def test_every_assistant_is_a_tool(server) -> None:
    sdk = get_client(url=server.url, timeout=60)
    async with mcp_session(server.url) as session:
        init_tools = await all_tools(session)
        by_name = {tool.name: tool for tool in init_tools}
        # One per default assistant (named after its graph), none twice.
        assert len(by_name) == len(init_tools)
        assert set(GRAPH_IDS) <= set(by_name), sorted(set(GRAPH_IDS) - set(by_name))
        echo = by_name["echo"]
        assert echo.title == "echo"
        assert echo.description == "Tool based on the echo assistant"
        schemas = await sdk.assistants.get_schemas("echo")
        assert echo.inputSchema == {**schemas["input_schema"], "type": "object"}
        assert echo.annotations is not None and echo.annotations.readOnlyHint is False
        # An agent's messages read as the user's message (one string), without the
        # LangChain message definitions.
        for agent in ("react_agent", "lc_agent", "chat"):
            schema = by_name[agent].inputSchema
            assert schema["properties"]["messages"]["type"] == "string", schema
            assert "HumanMessage" not in json.dumps(schema) and "BaseMessage" not in json.dumps(
                schema)

        # A created assistant: its name made a tool name, its own description.
        name = f"Weather helper {uuid.uuid4().hex[:8]}!"
        created = await sdk.assistants.create("react_agent", name=name,
                                              description="Tells the weather.")
        try:
            tools = {tool.name: tool for tool in await all_tools(session)}
            tool = tools[name.replace(" ", "_").removesuffix("!")]
            assert tool.title == name and tool.description == "Tells the weather."
            assert tool.inputSchema == by_name["react_agent"].inputSchema
        finally:
            await sdk.assistants.delete(created["assistant_id"])
        tools = {tool.name for tool in await all_tools(session)}
        assert name.replace(" ", "_").removesuffix("!") not in tools


async def test_tools_list_pages(server) -> None:
    """More than a page of assistants (100 a page): every one listed once, in pages
    joined by nextCursor; a cursor runlane did not issue is an invalid-params error."""
    sdk = get_client(url=server.url, timeout=60)
    tag = uuid.uuid4().hex[:8]
    created = [await sdk.assistants.create("echo", name=f"page_{tag}_{i}") for i in range(110)]
    try:
        async with mcp_session(server.url) as session:
            first = await session.list_tools()
            assert len(first.tools) == 100 and first.nextCursor is not None
            names = [tool.name for tool in await all_tools(session)]
            assert len(names) == len(set(names))
            assert {f"page_{tag}_{i}" for i in range(110)} <= set(names)
            with pytest.raises(McpError) as bad:
                await session.list_tools(params=types.PaginatedRequestParams(cursor="bogus"))
            assert bad.value.error.code == types.INVALID_PARAMS
            assert "cursor" in bad.value.error.message
    finally:
        await asyncio.gather(*(sdk.assistants.delete(a["assistant_id"]) for a in created))


# ------------------------------------------------------------------ tools/call


async def test_call_a_toy_graph(server) -> None:
    async with mcp_session(server.url) as session:
        result = await session.call_tool("echo", {"text": "hello"})
    assert result.isError is False
    assert json.loads(text_of(result)) == {"text": "hello", "echoed": ["hello"]}
    assert result.structuredContent == {"text": "hello", "echoed": ["hello"]}


async def test_call_a_react_agent(server) -> None:
    """The prebuilt ReAct agent on the fake model: it calls its weather tool, then
    answers from the result; the tool result is the run's final state."""
    async with mcp_session(server.url) as session:
        result = await session.call_tool("react_agent",
                                         {"messages": "What's the weather in Paris?"})
    assert result.isError is False, text_of(result)
    messages = result.structuredContent["messages"]
    assert [m["type"] for m in messages] == ["human", "ai", "tool", "ai"]
    assert messages[0]["content"] == "What's the weather in Paris?"
    assert messages[1]["tool_calls"][0]["name"] == "get_weather"
    assert messages[2]["content"] == "sunny, 21 °C in Paris"
    assert "sunny, 21 °C in Paris" in messages[3]["content"]
    assert json.loads(text_of(result)) == result.structuredContent


async def test_call_with_context_and_messages_list(server) -> None:
    """`context` (the reference's extension of tools/call) is the run's context, and a
    list of messages is accepted where the schema advertises one string."""
    async with mcp_session(server.url) as session:
        result = await session.call_tool("lc_agent", {
            "messages": [{"role": "user", "content": "what are your instructions?"}]})
        assert result.isError is False, text_of(result)
        answer = result.structuredContent["messages"][-1]["content"]
        assert "My instructions are:" in answer
        request = types.ClientRequest(types.CallToolRequest(params=types.CallToolRequestParams(
            name="lc_agent", arguments={"messages": "what are your instructions?"},
            context={"system_prompt": "Be brief, {user_name}.", "user_name": "Ada"})))
        result = await session.send_request(request, types.CallToolResult)
    assert result.isError is False, text_of(result)
    assert "Be brief, Ada." in result.structuredContent["messages"][-1]["content"]


async def test_call_errors(server) -> None:
    async with mcp_session(server.url) as session:
        with pytest.raises(McpError) as unknown:
            await session.call_tool("no_such_tool", {})
        assert unknown.value.error.code == types.INVALID_PARAMS
        assert unknown.value.error.message == "Unknown tool: no_such_tool"

        bad = await session.call_tool("sleepy", {"steps": "many"})
        assert bad.isError is True
        assert text_of(bad) == "Input validation error: steps: 'many' is not of type 'integer'"
        missing = await session.call_tool("react_agent", {})
        assert missing.isError is True and "'messages' is a required property" in text_of(
            missing)
        bad_context = await session.send_request(types.ClientRequest(types.CallToolRequest(
            params=types.CallToolRequestParams(name="echo", arguments={}, context=[1]))),
            types.CallToolResult)
        assert bad_context.isError is True and "Input validation error" in text_of(bad_context)

        # A run that fails: an error result naming the graph's error.
        failed = await session.call_tool("failing", {})
        assert failed.isError is True
        assert text_of(failed) == "ValueError: boom: this graph always fails"
        raised = await session.call_tool("raising_agent", {"messages": "hi"})
        assert raised.isError is True
        assert text_of(raised) == "ValueError: the weather service is down"
        # The session is still fine afterwards.
        assert (await session.call_tool("echo", {"text": "ok"})).isError is False


def test_plain_http(server) -> None:
    """Without the SDK: a JSON-RPC POST with no session (as to the reference) is
    answered; what is not MCP is a 4xx, never a 500."""
    with httpx.Client(base_url=server.url, timeout=60) as http:
        listed = http.post("/mcp", headers=JSON_RPC, json={
            "jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {}})
        assert listed.status_code == 200, listed.text
        assert listed.headers["content-type"].startswith("application/json")
        assert "mcp-session-id" not in listed.headers
        assert listed.json()["id"] == 7
        assert {t["name"] for t in listed.json()["result"]["tools"]} >= set(GRAPH_IDS)
        called = http.post("/mcp", headers=JSON_RPC, json={
            "jsonrpc": "2.0", "id": 8, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "x"}}})
        assert called.json()["result"]["structuredContent"] == {"text": "x", "echoed": ["x"]}
        unknown = http.post("/mcp", headers=JSON_RPC, json={
            "jsonrpc": "2.0", "id": 9, "method": "no/such/method"})
        # The SDK reads a method it does not know as a request it cannot parse
        # (-32602); the reference answers -32601. A JSON-RPC error either way.
        assert unknown.status_code == 200 and unknown.json()["id"] == 9
        assert unknown.json()["error"]["code"] in (types.METHOD_NOT_FOUND, types.INVALID_PARAMS)

        for body in (b"{not json", b"[]", b'{"jsonrpc": "1.0"}'):
            answer = http.post("/mcp", headers=JSON_RPC, content=body)
            assert 400 <= answer.status_code < 500, (body, answer.status_code, answer.text)
        no_accept = http.post("/mcp", headers={"Content-Type": "application/json"}, json={
            "jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert no_accept.status_code == 406, no_accept.text
        get = http.get("/mcp")
        assert get.status_code == 405 and get.headers["allow"] == "POST, DELETE"
        # A browser client can read its session id.
        opened = http.post("/mcp", headers={**JSON_RPC, "Origin": "http://localhost:3000"},
                           json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                               "protocolVersion": types.LATEST_PROTOCOL_VERSION,
                               "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        assert opened.status_code == 200 and opened.headers["mcp-session-id"]
        assert "mcp-session-id" in opened.headers["access-control-expose-headers"].lower()
        stale = http.post("/mcp", headers={**JSON_RPC, "Mcp-Session-Id": "0" * 32}, json={
            "jsonrpc": "2.0", "id": 3, "method": "tools/list"})
        # A session this worker does not hold (another worker's, or from before a
        # restart): served statelessly, as the reference serves every request.
        assert stale.status_code == 200 and "result" in stale.json()


# ------------------------------------------------------------------ cancellation


async def test_cancelled_call_interrupts_its_run(server) -> None:
    """notifications/cancelled for a long call: the call answers the cancellation, and
    its run ends `interrupted` (a user cancel, through the run contract), never left
    running."""
    sdk = get_client(url=server.url, timeout=60)
    log = uuid.uuid4().hex
    async with mcp_session(server.url) as session:
        # The id ClientSession gives its next request (it has no public accessor).
        request_id = session._request_id
        call = asyncio.ensure_future(session.call_tool("memory", {"log": log, "delay": 120}))
        thread_id, run_id = await started_run(sdk, log)
        await cancel_request(session, request_id)
        with pytest.raises(McpError) as cancelled:
            await asyncio.wait_for(call, 60)
        assert "cancelled" in cancelled.value.error.message.lower()
        await ends_interrupted(sdk, server, thread_id, run_id)
        # The session goes on: a call after the cancelled one works.
        assert (await session.call_tool("echo", {"text": "after"})).isError is False


async def test_cancel_races_the_call(server) -> None:
    """Cancels sent at random moments of many concurrent calls (before the run is
    created, while it runs, after it ended): every call answers, and no run is left
    active."""
    import random

    sdk = get_client(url=server.url, timeout=60)
    logs = [uuid.uuid4().hex for _ in range(8)]
    async with mcp_session(server.url) as session:
        calls = []
        for log in logs:
            request_id = session._request_id
            delay = random.choice([0.05, 0.3, 30.0])
            calls.append((request_id, asyncio.ensure_future(
                session.call_tool("memory", {"log": log, "delay": delay}))))

        async def cancel_later(request_id: int) -> None:
            await asyncio.sleep(random.uniform(0, 1.0))
            await cancel_request(session, request_id)

        await asyncio.gather(*(cancel_later(rid) for rid, _ in calls))
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(call for _, call in calls), return_exceptions=True), 120)
        for outcome in outcomes:
            assert isinstance(outcome, types.CallToolResult | McpError), outcome
    for log in logs:
        items = (await sdk.store.search_items(("cron_log", log)))["items"]
        if not items:
            continue  # cancelled before its graph ran (or before the run was made)
        thread_id, run_id = items[0]["value"]["thread_id"], items[0]["key"]
        for _ in range(600):
            try:
                status = (await sdk.runs.get(thread_id, run_id))["status"]
            except NotFoundError:
                break
            if status not in ("pending", "running"):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"run {run_id} left active")


async def test_closing_the_session_interrupts_its_call(server) -> None:
    """The client closes its session (DELETE) while a call runs: nobody waits for the
    run any more, and it is interrupted."""
    sdk = get_client(url=server.url, timeout=60)
    log = uuid.uuid4().hex
    started: list[tuple[str, str]] = []
    try:
        async with mcp_session(server.url) as session:
            call = asyncio.ensure_future(
                session.call_tool("memory", {"log": log, "delay": 120}))
            started.append(await started_run(sdk, log))
            call.cancel()
    except* anyio.ClosedResourceError:
        # The mcp client's own teardown race: the server answers the call still in
        # flight with 404 "Session terminated" once the session is closed, and the
        # client's writer may then hand that answer to its read stream after the
        # session closed it. What is under test is the server's side: the run below.
        pass
    thread_id, run_id = started[0]
    await ends_interrupted(sdk, server, thread_id, run_id)


async def test_call_of_a_closed_session_is_answered_404(server) -> None:
    """Plain HTTP: a session closed (DELETE) while one of its calls runs. The call's
    request is answered 404, what a request of an ended session gets (never a 500,
    which the SDK client cannot take), and its run is interrupted."""
    sdk = get_client(url=server.url, timeout=60)
    log = uuid.uuid4().hex
    async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
        opened = await http.post("/mcp", headers=JSON_RPC, json={
            "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": types.LATEST_PROTOCOL_VERSION, "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"}}})
        session = {**JSON_RPC, "Mcp-Session-Id": opened.headers["mcp-session-id"],
                   "Mcp-Protocol-Version": types.LATEST_PROTOCOL_VERSION}
        await http.post("/mcp", headers=session, json={
            "jsonrpc": "2.0", "method": "notifications/initialized"})
        call = asyncio.ensure_future(http.post("/mcp", headers=session, json={
            "jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "memory", "arguments": {"log": log, "delay": 120}}}))
        thread_id, run_id = await started_run(sdk, log)
        assert (await http.delete("/mcp", headers=session)).status_code == 200
        answer = await asyncio.wait_for(call, 60)
        assert answer.status_code == 404, answer.text
        assert "Session terminated" in answer.json()["error"]["message"]
    await ends_interrupted(sdk, server, thread_id, run_id)


# ------------------------------------------------------------------ auth


@pytest.mark.parametrize("backend", BACKENDS)
async def test_mcp_behind_auth(backend: str) -> None:
    with secured_server("api-key", backend) as secured:
        with secured.http(None) as anonymous:
            refused = anonymous.post("/mcp", headers=JSON_RPC, json={
                "jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            assert refused.status_code == 401, refused.text
            assert "www-authenticate" in refused.headers

        alice, bob = secured.sdk("alice"), secured.sdk("bob")
        mine = await alice.assistants.create("echo", name="alice_notes",
                                             description="Alice's own notes")
        async with mcp_session(secured.url, secured.headers_for("alice")) as session:
            names = {tool.name for tool in await all_tools(session)}
            assert "alice_notes" in names and "echo" in names
            result = await session.call_tool("alice_notes", {"text": "mine"})
            assert result.structuredContent == {"text": "mine", "echoed": ["mine"]}
        async with mcp_session(secured.url, secured.headers_for("bob")) as session:
            names = {tool.name for tool in await all_tools(session)}
            assert "alice_notes" not in names and "echo" in names
            with pytest.raises(McpError) as unknown:
                await session.call_tool("alice_notes", {"text": "hers"})
            assert unknown.value.error.message == "Unknown tool: alice_notes"
            assert (await session.call_tool("echo", {"text": "bob"})).isError is False
        assert mine["assistant_id"] not in {
            a["assistant_id"] for a in await bob.assistants.search(limit=1000)}

        # A session is its opener's: bob naming alice's session gets 404, as for a
        # session that does not exist. (Both talk to one worker: the one holding it.)
        async with (httpx.AsyncClient(base_url=secured.url, timeout=60,
                                      headers=secured.headers_for("alice")) as as_alice,
                    httpx.AsyncClient(base_url=secured.url, timeout=60,
                                      headers=secured.headers_for("bob")) as as_bob):
            opened = await as_alice.post("/mcp", headers=JSON_RPC, json={
                "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                    "protocolVersion": types.LATEST_PROTOCOL_VERSION, "capabilities": {},
                    "clientInfo": {"name": "test", "version": "1"}}})
            session_id = opened.headers["mcp-session-id"]
            hijack = await as_bob.post(
                "/mcp", headers={**JSON_RPC, "Mcp-Session-Id": session_id},
                json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
            assert hijack.status_code == 404, hijack.text
            own = await as_alice.post(
                "/mcp", headers={**JSON_RPC, "Mcp-Session-Id": session_id},
                json={"jsonrpc": "2.0", "id": 3, "method": "tools/list"})
            assert own.status_code == 200, own.text
            assert "alice_notes" in {t["name"] for t in own.json()["result"]["tools"]}
