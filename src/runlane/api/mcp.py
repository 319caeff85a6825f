"""`/mcp`: the Model Context Protocol over streamable HTTP (docs/mcp.md), served by the
official `mcp` SDK's low-level server; the tools are runlane.api.mcp_tools.

Sessions, and why two session managers. The reference server is stateless (every
POST stands alone), which works behind any load balancer and with any number of
workers, but then a `notifications/cancelled` arrives in a request of its own that
cannot reach the call it cancels. So:
- an `initialize` opens a session (the SDK's stateful manager; `Mcp-Session-Id`);
  the session's requests are served by it, and a `notifications/cancelled` for one
  of them cancels the call's task, which interrupts the run (mcp_tools.call_tool).
  Closing the session (DELETE) mid-call does the same.
- every other request (no session id, or one this worker does not hold: another
  worker's session, or one from before a restart) is served statelessly, as the
  reference serves it: it works, but cannot be cancelled from another request.
A session belongs to the caller that opened it: another caller naming it gets 404,
as for a session that does not exist (the SDK compares the principal it is given).

Answers are `application/json` (no SSE), as the reference's. GET (a standalone SSE
stream for server-initiated messages, which runlane never sends) is a 405, as there.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from mcp import types
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.lowlevel import Server
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER, StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from runlane import __version__
from runlane.api.mcp_tools import AssistantTools
from runlane.api.responses import error

log = logging.getLogger("runlane.mcp")

PATH = "/mcp"
METHODS = ("GET", "POST", "DELETE")


class McpEndpoint:
    """The ASGI app answering /mcp; `running()` belongs in the app's lifespan."""

    def __init__(self, max_body_bytes: int) -> None:
        self.tools = AssistantTools()
        self.server: Server[Any, Any] = Server("runlane", version=__version__)
        self.server.request_handlers[types.ListToolsRequest] = self._list_tools
        self.server.request_handlers[types.CallToolRequest] = self._call_tool
        self.sessions = StreamableHTTPSessionManager(
            self.server, json_response=True, max_request_body_size=max_body_bytes)
        self.stateless = StreamableHTTPSessionManager(
            self.server, json_response=True, stateless=True,
            max_request_body_size=max_body_bytes)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with self.sessions.run(), self.stateless.run():
            try:
                yield
            finally:
                # Before the managers cancel the calls still running.
                self.tools.closing = True

    # ------------------------------------------------------------ handlers

    def _request(self) -> Request:
        """The HTTP request that carried the message being handled (its caller)."""
        request = self.server.request_context.request
        assert isinstance(request, Request)  # the streamable HTTP transport sets it
        return request

    async def _list_tools(self, req: types.ListToolsRequest) -> types.ServerResult:
        cursor = req.params.cursor if req.params is not None else None
        return types.ServerResult(await self.tools.list_tools(self._request(), cursor))

    async def _call_tool(self, req: types.CallToolRequest) -> types.ServerResult:
        # `context`: the reference's extension of tools/call (the run's context).
        context = (req.params.model_extra or {}).get("context")
        return types.ServerResult(await self.tools.call_tool(
            self._request(), req.params.name, req.params.arguments, context))

    # ------------------------------------------------------------ routing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in ("POST", "DELETE"):
            response = error(405, f"method not allowed: {scope['method']} /mcp; allowed: POST, "
                                  "DELETE (runlane sends no server-initiated MCP messages, so "
                                  "there is no SSE stream to open)")
            response.headers["Allow"] = "POST, DELETE"
            await response(scope, receive, send)
            return
        _bind_caller(scope)
        session_id = _header(scope, MCP_SESSION_ID_HEADER.lower().encode())
        transport = self.sessions._server_instances.get(session_id or "")
        if transport is not None:
            await self.sessions.handle_request(scope, receive, _ended_session(transport, send))
            return
        if session_id is None and scope["method"] == "POST":
            body, receive = await _buffered(receive)
            if _is_initialize(body):
                await self.sessions.handle_request(scope, receive, send)
                return
        await self.stateless.handle_request(scope, receive, send)


def _ended_session(transport: StreamableHTTPServerTransport, send: Send) -> Send:
    """`send` for a request of an open session. A call still running when its session
    is closed (DELETE) is cancelled, and the SDK then answers its request 500; it is
    answered what a request of an ended session gets instead, 404 (the SDK client
    reads that as "session terminated", where a 500 crashes it)."""
    replaced = False

    async def guarded(message: Message) -> None:
        nonlocal replaced
        if (message["type"] == "http.response.start" and message["status"] == 500
                and transport.is_terminated):
            replaced = True
            body = orjson.dumps({"jsonrpc": "2.0", "id": "server-error", "error": {
                "code": types.INVALID_REQUEST,
                "message": "Session terminated: the call was cancelled with its session"}})
            await send({"type": "http.response.start", "status": 404, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        if not replaced:
            await send(message)

    return guarded


def _bind_caller(scope: Scope) -> None:
    """Tell the SDK who calls (runlane's auth put the owner in the scope's state), so
    it keeps each session to the caller that opened it. Auth off: no one, as the SDK
    expects then."""
    owner = scope.get("state", {}).get("owner")
    if owner is not None:
        scope["user"] = AuthenticatedUser(
            AccessToken(token="", client_id=owner, scopes=[], subject=owner))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The request body (BodyLimit has bounded it already), and a `receive` that hands
    it on."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def _is_initialize(body: bytes) -> bool:
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(message, dict) and message.get("method") == "initialize"
