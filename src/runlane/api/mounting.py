"""langgraph.json's `http.mount_prefix`, and the one way runlane reads a request's
path under it.

With a prefix ("/my-api"), every route is served under it (`/my-api/threads`, the
docs at `/my-api/docs`), and the probes and metrics are served at the root as well
(`/ok`, `/ready`, `/metrics`), so load balancers and scrapers need not know the
prefix, as on the reference server. Anything else outside the prefix is a 404 that
names it. Under the prefix a request's scope carries `root_path` = the prefix, as
Starlette's `Mount` sets it: routes match the rest of the path, and links FastAPI
builds (the docs' OpenAPI URL) include the prefix.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from runlane.api.responses import error

# Served at the root too, whatever the prefix.
ROOT_PATHS = frozenset({"/ok", "/ready", "/metrics"})


def route_path(scope: Scope) -> str:
    """The path a route matches: the request's path without the scope's root_path
    (the mount prefix), as Starlette's routing computes it."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root):] or "/"
    return path


class Prefixed:
    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)  # lifespan
            return
        path: str = scope["path"]
        root = scope.get("root_path", "") + self.prefix
        if path == root or path.startswith(root + "/"):
            await self.app({**scope, "root_path": root}, receive, send)
        elif path in ROOT_PATHS:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 4404})
        else:
            await error(404, f"no such route: {scope['method']} {path}; this server serves "
                             f"its API under {self.prefix} (http.mount_prefix), e.g. "
                             f"{self.prefix}/info")(scope, receive, send)
