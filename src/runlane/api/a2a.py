"""A2A: every assistant is an agent at `/a2a/{assistant_id}` (JSON-RPC: message/send,
message/stream, tasks/get, tasks/cancel), with its card at
`/a2a/{assistant_id}/.well-known/agent-card.json`.

The official a2a-sdk parses and validates each JSON-RPC request and answers its
errors (parse error, invalid request, unknown method, invalid params: JSON-RPC
errors with HTTP 200, never a 500); `a2a_tasks.RunTasks` answers the methods from
runlane's runs. See docs/a2a.md.
"""

from __future__ import annotations

import logging

from a2a.server.apps.jsonrpc.jsonrpc_app import CallContextBuilder
from a2a.server.apps.jsonrpc.starlette_app import A2AStarletteApplication
from a2a.server.context import ServerCallContext
from a2a.types import AgentCapabilities, AgentCard, UnsupportedOperationError
from a2a.utils.errors import ServerError
from fastapi import APIRouter, Request
from starlette.responses import Response

from runlane import __version__
from runlane.api import a2a_wire
from runlane.api.a2a_tasks import RunTasks
from runlane.api.assistants import _assistant
from runlane.api.responses import JSON

router = APIRouter(tags=["a2a"])


class _RequestContext(CallContextBuilder):
    """The handler's context: the HTTP request itself, from which it reads the
    assistant (path), the caller (auth middleware) and the service (app state)."""

    def build(self, request: Request) -> ServerCallContext:
        return ServerCallContext(state={"request": request})


# The SDK dispatches with one card; the JSON-RPC handler reads only its capabilities
# from it (streaming on). Each assistant's own card is built per request below.
_DISPATCH_CARD = AgentCard(
    name="runlane", description="A2A endpoint of a runlane assistant", url="/a2a",
    version=__version__, capabilities=AgentCapabilities(streaming=True),
    default_input_modes=a2a_wire.INPUT_MODES, default_output_modes=a2a_wire.OUTPUT_MODES,
    skills=[],
)
_jsonrpc = A2AStarletteApplication(
    agent_card=_DISPATCH_CARD, http_handler=RunTasks(), context_builder=_RequestContext(),
    # runlane's BodyLimit already bounds every body (RUNLANE_MAX_BODY_BYTES).
    max_content_length=None,
)


class _ClientErrorsWithoutTraceback(logging.Filter):
    """The SDK logs a request that is not valid JSON-RPC, or that asks for an operation
    the agent does not support, with a traceback, as if the server had failed; it is
    the client's mistake (answered -32600/-32602/-32004), and the SDK logs that answer
    on a line of its own, which stays."""

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Failed to validate"):
            return False
        # A method runlane's agents do not offer (push notification configs): the SDK
        # logs the answer it sends (-32004) as an unhandled exception with a traceback.
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, ServerError)
                    and isinstance(exc.error, UnsupportedOperationError))


logging.getLogger("a2a.server.apps.jsonrpc.jsonrpc_app").addFilter(
    _ClientErrorsWithoutTraceback())


@router.post("/a2a/{assistant_id}")
async def a2a_rpc(assistant_id: str, request: Request) -> Response:
    """One A2A JSON-RPC request to the assistant (an assistant id, or a graph id for
    its default assistant). An agent that does not exist (or that the caller may not
    read) is a 404, like its card: there is no agent at that URL."""
    request.state.a2a_assistant = await _assistant(request, assistant_id)
    if not await request.body():
        # (the SDK would print the decoding error's traceback)
        return JSON({"jsonrpc": "2.0", "id": None, "error": {
            "code": -32700, "message": "Parse error: the request body is empty; send a "
                                       "JSON-RPC 2.0 request object"}})
    # The SDK's entry point for a JSON-RPC POST (what its own route mounts).
    return await _jsonrpc._handle_requests(request)


async def _card(request: Request, assistant_id: str) -> Response:
    assistant = await _assistant(request, assistant_id)
    card = a2a_wire.agent_card(assistant, str(request.base_url))
    return JSON(card.model_dump(mode="json", exclude_none=True))


@router.get("/a2a/{assistant_id}")
async def a2a_agent_card_at_endpoint(assistant_id: str, request: Request) -> Response:
    """The agent card (a GET of the agent's own URL, as the reference answers it)."""
    return await _card(request, assistant_id)


@router.get("/a2a/{assistant_id}/.well-known/agent-card.json")
async def a2a_agent_card(assistant_id: str, request: Request) -> Response:
    return await _card(request, assistant_id)


@router.get("/a2a/{assistant_id}/.well-known/agent.json")
async def a2a_agent_card_previous_path(assistant_id: str, request: Request) -> Response:
    """The card's path before A2A 0.3 (older clients still ask for it)."""
    return await _card(request, assistant_id)
