"""The v2 streaming protocol's routes (langgraph_sdk `client.threads.stream()`,
@langchain/react's v2 useStream; docs/v2-streaming.md):

- POST /threads/{thread_id}/stream/events: the thread's event stream over SSE, the
  body's filter (`channels`, `namespaces`, `depth`) and cursor (`since`);
- POST /threads/{thread_id}/commands: one command, JSON in and out;
- WebSocket /threads/{thread_id}/stream/events: commands, and events for the
  socket's subscriptions (subscription.subscribe | unsubscribe | reconnect).

Thin: the stream is service/protocol_stream.py, the commands'
meaning service/protocol_commands.py; runs are created as POST /threads/{id}/runs
creates them (api/runs.py `_create`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, WebSocket
from pydantic import ValidationError
from starlette.responses import Response
from starlette.websockets import WebSocketDisconnect, WebSocketState

from runlane.api import runs as run_routes
from runlane.api.access import allowed
from runlane.api.auth.middleware import OPEN_PATHS
from runlane.api.models import RunCreate
from runlane.api.responses import JSON, sse
from runlane.errors import AuthError, NotFound, RunlaneError
from runlane.owners import Owner, matches, owner_of
from runlane.serde import JSONObject, dumps, loads
from runlane.service import protocol_commands as commands
from runlane.service.protocol_events import tree
from runlane.service.protocol_stream import (
    QUIET,
    SinceFromTheFuture,
    ThreadView,
    check_since,
    follow_protocol,
)
from runlane.service.protocol_wire import (
    RUN_SPAN,
    Filter,
    ProtocolInputError,
    envelope_error,
    envelope_success,
    parse_filter,
    parse_since,
)
from runlane.service.runs import Runlane
from runlane.streams.local import HEARTBEAT

log = logging.getLogger("runlane.api.protocol")
router = APIRouter(tags=["threads"])

STREAM_PATH = "/threads/{thread_id}/stream/events"
COMMANDS_PATH = "/threads/{thread_id}/commands"


def _svc(request: Request | WebSocket) -> Runlane:
    return request.app.state.runlane


def _bad(detail: str) -> JSON:
    return JSON({"detail": detail}, status_code=400)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return loads(raw)
    except ValueError:
        raise ProtocolInputError("the request body is not JSON") from None


async def _visible_thread(request: Request, thread_id: str, action: str) -> None:
    """The thread is the caller's (or does not exist yet: the protocol creates
    threads on first use); another owner's, or one the authorization handler filters
    out, is 404 as on every route."""
    filters = await allowed(request, "threads", action, {"thread_id": thread_id})
    store = _svc(request).store
    owner = owner_of(request)
    mine = await store.get_thread(thread_id, owner=owner)
    if mine is None:
        if owner is not None and await store.get_thread(thread_id) is not None:
            raise NotFound(f"thread {thread_id} not found")
        return
    if mine.temporary or not matches(mine.metadata, filters):
        raise NotFound(f"thread {thread_id} not found")


def _sse_frame(event: JSONObject | None) -> bytes:
    if event is QUIET:
        return HEARTBEAT
    if event.get("type") == "error":
        return b"event: error\ndata: %s\n\n" % dumps(event)
    return b"event: %s\ndata: %s\nid: %d\n\n" % (event["method"].encode(), dumps(event),
                                                  event["seq"])


@router.post(STREAM_PATH)
async def thread_events(thread_id: UUID, request: Request) -> Response:
    """The thread's v2 protocol event stream (SSE). Body: `channels` (required),
    `namespaces`, `depth`, `since` (the last `seq` received: resume after it)."""
    try:
        body = await _json_body(request)
        flt = parse_filter(body, "the event stream request")
        since = parse_since(body.get("since"), "the event stream request")
    except ProtocolInputError as exc:
        return _bad(str(exc))
    await _visible_thread(request, str(thread_id), "read")
    owner = owner_of(request)
    try:
        await check_since(_svc(request), str(thread_id), since, owner)
    except SinceFromTheFuture as exc:
        return _bad(str(exc))
    return sse(_sse_body(_svc(request), str(thread_id), flt, since, owner))


async def _sse_body(svc: Runlane, thread_id: str, flt: Filter, since: int | None,
                    owner: Owner) -> AsyncIterator[bytes]:
    async for event in follow_protocol(svc, thread_id, flt, since=since, owner=owner):
        yield _sse_frame(event)


# ------------------------------------------------------------------ commands


class _Commands:
    """Executes commands for one caller on one thread (a POST, or a socket)."""

    def __init__(self, request: Request, thread_id: str, view: ThreadView | None = None) -> None:
        self.request = request
        self.thread_id = thread_id
        self.view = view

    @property
    def applied_through_seq(self) -> int:
        # The seq of the last event this connection handed its client (a POST has
        # none: 0, as the reference answers).
        return self.view.last_seq if self.view is not None else 0

    async def run(self, command: commands.Command) -> JSONObject:
        method = command.method
        if method not in commands.COMMANDS:
            return envelope_error(command.id, "unknown_command", (
                f"unknown protocol command {method!r}; accepted: "
                f"{', '.join(commands.COMMANDS)}"))
        try:
            if method in ("run.start", "input.respond"):
                return await self._start(command)
            if method == "agent.getTree":
                return await self._tree(command)
        except ProtocolInputError as exc:
            return envelope_error(command.id, "invalid_argument", str(exc))
        except commands.NoSuchInterrupt as exc:
            return envelope_error(command.id, "no_such_interrupt", str(exc))
        except commands.NoInterruptedRun as exc:
            return envelope_error(command.id, "no_such_run", str(exc))
        except commands.NotSupported as exc:
            return envelope_error(command.id, "not_supported", str(exc))
        return envelope_error(command.id, "not_supported", (
            f"{method} is a WebSocket command (on {STREAM_PATH}); over HTTP each "
            "POST .../stream/events is one subscription"))

    async def _start(self, command: commands.Command) -> JSONObject:
        svc, owner = _svc(self.request), owner_of(self.request)
        if command.method == "run.start":
            plan = await commands.plan_run_start(svc, self.thread_id, command.params, owner)
        else:
            plan = await commands.plan_input_respond(svc, self.thread_id, command.params, owner)
        try:
            body = RunCreate.model_validate(plan.body())
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                                 for e in exc.errors())
            return envelope_error(command.id, "invalid_argument",
                                  f"{command.method}: {problems}")
        try:
            admission = await run_routes.create_as_caller(self.request, self.thread_id, body)
        except AuthError as exc:
            return envelope_error(command.id, "permission_denied", exc.detail)
        except RunlaneError as exc:
            # The reference answers a refused creation (reject strategy, a missing
            # assistant ...) as unknown_error with the reason.
            return envelope_error(command.id, "unknown_error", exc.detail)
        result: JSONObject = ({"run_id": admission.run.run_id}
                              if command.method == "run.start" else {})
        return envelope_success(command.id, result, self.applied_through_seq)

    async def _tree(self, command: commands.Command) -> JSONObject:
        if self.view is not None and self.view.events is not None:
            return envelope_success(command.id, {"tree": tree(self.view.events)},
                                    self.applied_through_seq)
        svc, owner = _svc(self.request), owner_of(self.request)
        latest = await svc.store.list_runs(self.thread_id, limit=1, offset=0, status=None,
                                           owner=owner)
        if not latest or latest[0].seq is None:
            return envelope_error(command.id, "no_such_run",
                                  f"thread {self.thread_id} has no run")
        view = ThreadView()
        flt = Filter(frozenset({"lifecycle"}))
        # The latest run's events as far as they go now: its log replays at once, a
        # live run is not waited for.
        stream = follow_protocol(svc, self.thread_id, flt,
                                 since=latest[0].seq * RUN_SPAN, owner=owner, view=view)
        with contextlib.suppress(TimeoutError, StopAsyncIteration):
            while True:
                await asyncio.wait_for(anext(stream), 0.25)
                if view.run_id != latest[0].run_id:
                    break
        await stream.aclose()  # type: ignore[attr-defined]
        return envelope_success(command.id, {"tree": tree(view.events)},
                                self.applied_through_seq)


@router.post(COMMANDS_PATH)
async def thread_command(thread_id: UUID, request: Request) -> Response:
    """One v2 protocol command (`run.start`, `input.respond`, `agent.getTree`): the
    protocol's success or error envelope."""
    try:
        command = commands.parse_command(await _json_body(request))
    except ProtocolInputError as exc:
        # The protocol's envelope, with runlane's `detail` beside it as on every 4xx.
        return JSON({**envelope_error(None, "invalid_argument", str(exc)), "detail": str(exc)},
                    status_code=400)
    await _visible_thread(request, str(thread_id), "read")
    return JSON(await _Commands(request, str(thread_id)).run(command))


# ------------------------------------------------------------------ WebSocket


async def _authenticate(websocket: WebSocket) -> bool:
    """WebSockets pass the auth middleware (HTTP only): the same authenticator runs
    here on the handshake's headers; refused, the handshake is closed (403)."""
    authenticator = getattr(websocket.app.state, "authenticator", None)
    if authenticator is None or websocket.scope.get("path") in OPEN_PATHS:
        return True

    async def no_body() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    request = Request({**websocket.scope, "type": "http", "method": "GET"}, no_body)
    try:
        user = await authenticator.authenticate(request)
    except Exception as exc:  # noqa: BLE001 - refused, whatever the authenticator raised
        log.info("WebSocket %s refused: %s", websocket.url.path, exc)
        await websocket.close(code=1008, reason="not authenticated")
        return False
    websocket.scope.setdefault("state", {})
    websocket.state.owner = user.identity
    websocket.state.user = user
    return True


class _Socket:
    """One WebSocket: its commands and its subscriptions, each a follower of the
    thread's stream that sends what passes its filter."""

    def __init__(self, websocket: WebSocket, thread_id: str) -> None:
        self.websocket = websocket
        self.thread_id = thread_id
        self.request = Request({**websocket.scope, "type": "http", "method": "POST"})
        self.view = ThreadView()
        self.commands = _Commands(self.request, thread_id, self.view)
        self.subscriptions: dict[str, asyncio.Task[None]] = {}
        self.send_lock = asyncio.Lock()

    async def send(self, message: JSONObject) -> None:
        async with self.send_lock:
            await self.websocket.send_text(dumps(message).decode())

    async def handle(self, raw: str) -> None:
        try:
            command = commands.parse_command(loads(raw))
        except (ValueError, ProtocolInputError) as exc:
            message = str(exc) if isinstance(exc, ProtocolInputError) else \
                "protocol commands must be valid JSON"
            await self.send(envelope_error(None, "invalid_argument", message))
            return
        if command.method.startswith("subscription."):
            await self.send(await self._subscription(command))
        else:
            await self.send(await self.commands.run(command))

    async def _subscription(self, command: commands.Command) -> JSONObject:
        params = command.params
        if command.method == "subscription.unsubscribe":
            wanted = params.get("subscription_id")
            task = self.subscriptions.pop(wanted, None) if isinstance(wanted, str) else None
            if task is None:
                return envelope_error(command.id, "no_such_subscription",
                                      f"no subscription {wanted!r} on this connection")
            task.cancel()
            return envelope_success(command.id, {}, self.view.last_seq)
        try:
            flt = parse_filter(params, command.method)
            since = parse_since(params.get("since"), command.method)
            if command.method == "subscription.reconnect" and since is None:
                raise ProtocolInputError("subscription.reconnect requires `since`, the seq of "
                                         "the last event received")
            owner = owner_of(self.request)
            await check_since(_svc(self.request), self.thread_id, since, owner)
        except (ProtocolInputError, SinceFromTheFuture) as exc:
            return envelope_error(command.id, "invalid_argument", str(exc))
        given = params.get("subscription_id")
        sub_id = given if command.method == "subscription.reconnect" and isinstance(
            given, str) and given else str(uuid.uuid4())
        old = self.subscriptions.pop(sub_id, None)
        if old is not None:
            old.cancel()
        self.subscriptions[sub_id] = asyncio.create_task(self._follow(flt, since, owner))
        # No `replayed_events` (optional in the protocol): the reference sends the
        # replayed events before this answer and counts them; here the subscription's
        # follower replays them after it, so no count is known yet (it used to say 0
        # whatever followed: see docs/compatibility.md).
        return envelope_success(command.id, {"subscription_id": sub_id},
                                self.view.last_seq)

    async def _follow(self, flt: Filter, since: int | None, owner: Owner) -> None:
        view = self.view
        try:
            async for event in follow_protocol(_svc(self.request), self.thread_id, flt,
                                               since=since, owner=owner, view=view):
                if event is not QUIET:
                    await self.send(event)
        except Exception:
            if self.websocket.application_state == WebSocketState.DISCONNECTED or \
                    self.websocket.client_state == WebSocketState.DISCONNECTED:
                return  # the socket went away (a send failed): its reader ends it
            log.exception("v2 protocol subscription on thread %s failed", self.thread_id)
            with contextlib.suppress(Exception):
                await self.websocket.close(code=1011, reason="subscription failed")

    async def close(self) -> None:
        tasks = list(self.subscriptions.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


@router.websocket(STREAM_PATH)
async def thread_socket(websocket: WebSocket, thread_id: UUID) -> None:
    if not await _authenticate(websocket):
        return
    socket = _Socket(websocket, str(thread_id))
    try:
        await _visible_thread(socket.request, str(thread_id), "read")
    except NotFound as exc:
        await websocket.close(code=1008, reason=exc.detail[:120])
        return
    await websocket.accept()
    started = time.monotonic()
    try:
        while True:
            raw = await websocket.receive_text()
            await socket.handle(raw)
    except WebSocketDisconnect:
        pass
    except Exception:
        log.exception("v2 protocol WebSocket on thread %s failed after %.1fs", thread_id,
                      time.monotonic() - started)
        if websocket.application_state != WebSocketState.DISCONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close(code=1011)
    finally:
        await socket.close()
