"""The ASGI application: wires store, checkpointer, executor and service, and answers
every RunlaneError (runlane.errors) through one handler."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runlane import __version__
from runlane.api import a2a, assistants, crons, custom_app, protocol, runs, store, system, threads
from runlane.api.access_log import AccessLog
from runlane.api.auth.identity import Authenticator
from runlane.api.auth.middleware import AuthMiddleware
from runlane.api.chosen_ids import check_policy
from runlane.api.cors import cors
from runlane.api.mcp import METHODS as MCP_METHODS
from runlane.api.mcp import PATH as MCP_PATH
from runlane.api.mcp import McpEndpoint
from runlane.api.mounting import Prefixed, route_path
from runlane.api.responses import DIRECT_SEND, JSON, error, error_response
from runlane.assembly import Runtime
from runlane.errors import BadBody, RunlaneError
from runlane.graph_factories import ServedGraph
from runlane.http_config import CorsConfig, HttpConfig
from runlane.settings import Settings
from runlane.store_config import StoreConfig, ThreadTTLConfig
from runlane.webhook_policy import WebhookConfig, override

log = logging.getLogger("runlane")


class BodyLimit:
    """413 for request bodies over the limit, whether or not Content-Length is sent;
    422 for a body that is not valid JSON (see `_json_body`).

    Bodies are read up front (they are bounded by the limit) so an oversized one is
    refused before any route sees it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._too_large(scope, send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body:
            try:
                body = _json_body(scope, body)
            except BadBody as bad:
                answer = (_jsonrpc_parse_error(bad) if scope["path"].startswith(JSONRPC_PREFIX)
                          else error_response(bad))
                await answer(scope, receive=_disconnected, send=send)
                return
            # Labelled as what it now is, whatever the client's label (FastAPI would
            # not parse JSON labelled text/plain).
            scope = {**scope, "headers": [
                (k, v) for k, v in scope.get("headers", [])
                if k not in (b"content-length", b"content-type")
            ] + [(b"content-length", str(len(body)).encode()),
                 (b"content-type", b"application/json")]}
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        response = error(413, f"request body larger than {self.max_bytes} bytes, the most "
                              "this server accepts (RUNLANE_MAX_BODY_BYTES)")
        await response(scope, receive=_disconnected, send=send)


# JSON-RPC endpoints (A2A): a body that is not JSON is a JSON-RPC parse error, which
# JSON-RPC answers with HTTP 200 and the error in the body.
JSONRPC_PREFIX = "/a2a/"


def _jsonrpc_parse_error(bad: BadBody) -> Response:
    return JSON({"jsonrpc": "2.0", "id": None,
                 "error": {"code": -32700, "message": f"Parse error: {bad.detail}"}})


# Request JSON may nest this deep; responses wrap it a few levels more (a thread's
# history wraps a run's input in about five) and must stay under orjson's 254.
MAX_JSON_DEPTH = 128
_DEPTH_PROBE = 254 - MAX_JSON_DEPTH


def _json_body(scope: Scope, body: bytes) -> bytes:
    """The body as runlane reads it: JSON that orjson parses and can write back (so
    the store can always save it), re-encoded. Anything else is refused with a
    reason, never half-read: FastAPI alone would answer 400 without a reason for
    bytes that are not UTF-8, and accept NaN or integers too big to store.

    The body is read as JSON whatever its Content-Type, as the reference server
    reads it: a web app's passthrough route forwards JSON labelled
    `text/plain;charset=UTF-8` (what fetch() sends for a string body)."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadBody(f"the request body is not valid JSON ({exc}){_label_note(scope)}; send "
                      "a JSON object, encoded as UTF-8", status_code=422) from None
    probe: Any = value
    for _ in range(_DEPTH_PROBE):  # orjson refuses to write more than 254 levels
        probe = [probe]
    try:
        wrapped = orjson.dumps(probe)
    except orjson.JSONEncodeError:
        raise BadBody(f"the request body nests JSON deeper than {MAX_JSON_DEPTH} levels",
                      status_code=422) from None
    # orjson writes no whitespace: the body is the probe's encoding without its
    # brackets, which spares encoding it a second time.
    return wrapped[_DEPTH_PROBE:-_DEPTH_PROBE]


def _label_note(scope: Scope) -> str:
    """For a body labelled as another format (a form, XML ...): why it was read as
    JSON, since the label says it is not."""
    content_type = ""
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            content_type = value.decode("latin-1")
    media = content_type.split(";")[0].strip().lower()
    if not media or media == "application/json" or media.endswith("+json") or (
            media.startswith("text/")):
        return ""
    return (f"; it was labelled Content-Type {content_type!r}, but request bodies are "
            "read as JSON whatever their label")


# Routes whose body is a JSON array rather than an object.
ARRAY_BODY_PATHS = frozenset({"/runs/batch"})


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


async def _disconnected() -> Message:  # pragma: no cover - JSON responses never read
    return {"type": "http.disconnect"}


class _CorsApp(FastAPI):
    """CORS outside everything, the server-error handler included, so a browser can
    read every answer: 401s from auth, 413/422 from BodyLimit, 404s and 500s
    (`add_middleware` would place it inside the 500 handler). None: CORS is applied
    further out (`served_app`, around a project's app or a mount prefix)."""

    cors_config: CorsConfig | None = CorsConfig()
    # Whether event streams may send their body chunks past the app's middlewares
    # (responses.EventStream): not when a project's middleware runs inside it.
    direct_sse = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.direct_sse and scope["type"] == "http":
            scope[DIRECT_SEND] = send
        await super().__call__(scope, receive, send)

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return stack if self.cors_config is None else cors(stack, self.cors_config)


# The routers, in matching order, each with the `http.disable_<group>` flag of
# langgraph.json that removes it (the reference's route groups: its runs group holds
# the crons). The probes (/ok, /ready) are always served. An API added later joins
# here with its group (http.disable_ui has no routes to remove:
# runlane serves no generative UI bundles).
ROUTERS: tuple[tuple[str, APIRouter], ...] = (
    ("runs", runs.router), ("threads", threads.router), ("assistants", assistants.router),
    ("runs", crons.router), ("store", store.router), ("meta", system.router),
    # The v2 streaming protocol (docs/v2-streaming.md): off with
    # http.disable_event_streaming, and with disable_runs (run.start creates runs), as
    # the reference groups it.
    ("event_streaming", protocol.router),
    # A2A: every assistant is an agent at /a2a/{assistant_id} (docs/a2a.md).
    ("a2a", a2a.router))


# Over the complexity ceiling: its exception handlers are closures in it.
def create_app(settings: Settings, graphs: dict[str, ServedGraph],  # noqa: C901
               auth: tuple[Authenticator | None, Any] | None = None,
               cors_config: CorsConfig | None = None,
               webhooks: WebhookConfig | None = None, http: HttpConfig | None = None,
               custom: custom_app.CustomApp | None = None,
               persistence: tuple[StoreConfig, ThreadTTLConfig | None] | None = None,
               ) -> _CorsApp:
    """`graphs` are loaded before the app starts, so a bad config fails at once.
    `auth`: (authenticator, langgraph_sdk Auth or None) from auth.setup; None: no auth.
    `cors_config`: langgraph.json's `http.cors`; None: the defaults (any origin).
    `webhooks`: the webhook policy and signing (langgraph.json `webhooks` with the
    RUNLANE_WEBHOOK_* settings applied); None: the defaults. `http`: the rest of
    langgraph.json's `http` (route groups, headers for runs); `custom`: the project's
    own app (http.app), whose lifespan runs inside runlane's (see `served_app`).
    `persistence`: langgraph.json's `store` (its embeddings loaded: graphs.load_all)
    and `checkpointer.ttl`; None: neither."""
    authenticator, handlers = auth or (None, None)
    http = http or HttpConfig(cors=cors_config or CorsConfig())
    # /mcp (docs/mcp.md): the assistants as MCP tools. None: not served (http.disable_mcp).
    mcp_endpoint: McpEndpoint | None = (
        None if http.disables("mcp") else McpEndpoint(settings.max_body_bytes))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        runtime = Runtime(settings, graphs, webhooks, *(persistence or ()))
        try:
            app.state.runlane = await runtime.start()
            app.state.runtime = runtime
            # Inside the runtime: MCP calls still running at shutdown end before it stops.
            async with (mcp_endpoint.running() if mcp_endpoint is not None
                        else contextlib.nullcontext()):
                if custom is None:
                    yield
                else:
                    # After runlane's start, so the project's start-up may already use
                    # the API; the state it yields reaches every request's `request.state`.
                    async with custom.lifespan() as state:
                        yield state
        finally:
            await runtime.stop()

    meta = not http.disables("meta")
    app = _CorsApp(title="runlane", version=__version__, lifespan=lifespan,
                   docs_url="/docs" if meta else None, redoc_url="/redoc" if meta else None,
                   openapi_url="/openapi.json" if meta else None)
    app.cors_config = cors_config or CorsConfig()
    # Authorization handlers (@auth.on...) the routes consult; None without custom auth.
    app.state.auth_handlers = handlers
    app.state.settings = settings
    # With auth on, the open routes answer nothing that counts other owners' objects
    # (/info leaves out active_runs; /metrics needs its own token: api/system.py).
    app.state.auth_on = authenticator is not None
    # WebSockets pass the auth middleware (HTTP only): their route authenticates.
    app.state.authenticator = authenticator
    check_policy(settings.chosen_ids)
    system.check_metrics_token(settings.metrics_token)
    app.state.http = http
    # Routes are matched in order, one at a time: the run routes, hit on every run,
    # come first.
    for group, router in ROUTERS:
        if not http.disables(group) and not (group == "event_streaming"
                                             and http.disables("runs")):
            app.include_router(router)
    app.include_router(system.probes)
    if mcp_endpoint is not None:
        # An ASGI app as the route's endpoint: the SDK answers every method itself.
        app.router.routes.append(Route(MCP_PATH, mcp_endpoint, methods=list(MCP_METHODS),
                                       include_in_schema=False))

    @app.exception_handler(RunlaneError)
    async def _runlane_error(request: Request, exc: RunlaneError) -> Response:
        if exc.log_as is not None:
            log.error("%s on %s %s: %s", exc.log_as, request.method, request.url.path, exc)
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for item in exc.errors():
            msg = item.get("msg")
            if tuple(item.get("loc", ())) == ("body",) and item.get("type") == "too_long":
                msg = f"the request body holds too many items ({msg})"
            elif tuple(item.get("loc", ())) == ("body",) and item.get("type") == "list_type":
                msg = (f"the request body must be a JSON array of runs, not "
                       f"{_json_kind(item.get('input'))}")
            elif (tuple(item.get("loc", ())) == ("body",) and item.get("type") == "missing"
                  and route_path(request.scope) in ARRAY_BODY_PATHS):
                msg = "a JSON array of runs is required as the request body"
            elif tuple(item.get("loc", ())) == ("body",) and item.get("type") == "value_error":
                # A rule across fields (a model validator): its own words.
                msg = str(msg).removeprefix("Value error, ")
            elif tuple(item.get("loc", ())) == ("body",):  # the body as a whole
                msg = ("a JSON object is required as the request body" if item.get("type") ==
                       "missing" else f"the request body must be a JSON object, not "
                       f"{_json_kind(item.get('input'))}")
            problems.append({"loc": list(item.get("loc", ())), "msg": msg,
                             "type": item.get("type")})
        summary = "; ".join(
            f"{'.'.join(str(p) for p in p_['loc'])}: {p_['msg']}" for p_ in problems
        )
        return JSON({"detail": f"invalid request: {summary}", "errors": problems}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = str(exc.detail)
        headers = dict(exc.headers or {})
        where = f"{request.method} {request.url.path}"
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such route: {where} (see /docs for the routes served)"
        elif exc.status_code == 405:
            # Starlette names the methods of one route only; a path has one route per
            # method. The OpenAPI document has them all.
            allowed = sorted({
                method.upper()
                for template, item in request.app.openapi().get("paths", {}).items()
                if re.fullmatch(re.sub(r"\{[^/}]+\}", "[^/]+", template),
                                route_path(request.scope))
                for method in item
            })
            headers["Allow"] = ", ".join(allowed)
            detail = f"method not allowed: {where}; allowed: {', '.join(allowed)}"
        return JSON({"detail": detail}, status_code=exc.status_code, headers=headers or None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return error(500, f"internal error: {type(exc).__name__}")

    # Outermost first. Auth inside BodyLimit: a handler that reads the body gets the
    # buffered, checked one. A project's middleware with http.middleware_order
    # "auth_first" runs after auth (otherwise it is outside everything: served_app).
    app.user_middleware = [
        Middleware(BodyLimit, max_bytes=settings.max_body_bytes),
        *([Middleware(AuthMiddleware, authenticator=authenticator)] if authenticator else []),
        *(custom.runlane_middleware() if custom is not None else []),
    ]
    app.direct_sse = custom is None or not custom.runlane_middleware()
    return app


def served_app(settings: Settings, graphs: dict[str, ServedGraph],
               auth: tuple[Authenticator | None, Any] | None, http: HttpConfig,
               webhooks: WebhookConfig | None, project_dir: Path,
               persistence: tuple[StoreConfig, ThreadTTLConfig | None] | None = None,
               ) -> ASGIApp:
    """What `runlane serve` serves for a project: runlane's app, with langgraph.json's
    `http` applied around it: the project's own app (http.app, runlane.api.custom_app),
    the access log (http.logging_headers), the mount prefix (runlane.api.mounting), and
    CORS outside all of them, so a browser can read every answer."""
    authenticator = (auth or (None, None))[0]
    custom = None
    if http.app is not None:
        if http.enable_custom_route_auth and authenticator is None:
            log.warning("http.enable_custom_route_auth is set but no auth is configured: "
                        "the routes of %s are open", http.app)
        guard = (Middleware(AuthMiddleware, authenticator=authenticator)
                 if http.enable_custom_route_auth and authenticator is not None else None)
        custom = custom_app.prepare(custom_app.load(http.app, project_dir), http.app, guard,
                                    http.middleware_order == "auth_first")
    app = create_app(settings, graphs, auth, http.cors, webhooks, http, custom, persistence)
    served: ASGIApp = app
    if custom is None and http.logging_headers is None and http.mount_prefix is None:
        return served
    app.cors_config = None  # applied outside, below
    if custom is not None:
        fixed = custom_app.paths(app.routes) & custom_app.UNSHADOWABLE
        if http.disables("meta"):
            fixed.discard("/ok")  # as on the reference: a project may answer /ok itself
        served = custom_app.compose(app, custom, frozenset(fixed))
    if http.mount_prefix is not None:
        served = Prefixed(served, http.mount_prefix)
    if http.logging_headers is not None:
        served = AccessLog(served, http.logging_headers)
    return cors(served, http.cors)


def create_app_from_env() -> ASGIApp:
    """The app of one worker process started by `runlane serve --workers N`."""
    from runlane.graphs import load_all, read_config

    logging.captureWarnings(True)  # uvicorn applied runlane's logging config here
    from runlane.api.auth.setup import build_authenticator

    settings = Settings.from_env()
    project = read_config(settings.config)
    webhooks = override(project.webhooks, **settings.webhook_overrides())
    graphs = {gid: loaded.graph for gid, loaded in load_all(project).items()}
    return served_app(settings, graphs,
                      build_authenticator(settings, project.path, project.auth),
                      project.http, webhooks, project.path.parent,
                      (project.store, project.thread_ttl))
