"""langgraph.json's `http.app`: the project's own Starlette/FastAPI app, served beside
runlane's routes as the reference server serves it.

- Its routes win over runlane's on the same path and method, except the probes and
  the API's docs (/ok, /ready, /metrics, /docs, /redoc, /openapi.json), which no
  project route shadows (the reference's "unshadowable" meta routes). A user route
  that matches the path but not the method does not take the request: runlane's
  route for that method answers, as Starlette's router does on the reference.
- Its middleware applies to every route, runlane's included (the reference installs
  it as the server's global middleware). With `http.middleware_order: "auth_first"`
  it runs after authentication instead, on each route.
- Its lifespan runs inside runlane's, once runlane's runtime has started; the state
  it yields reaches `request.state`, and what it sets on `app.state` is read back
  through `request.app.state` in its routes (they are served by the project's app
  object itself).
- Its routes are open unless `http.enable_custom_route_auth` puts them behind
  runlane's authentication (the API key, JWT or custom `auth` of the project).
- Its own exception handlers apply to its routes; runlane's errors keep their
  shape on runlane's routes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from runlane.api.mounting import route_path
from runlane.errors import ConfigError
from runlane.project_imports import import_location

# Runlane's routes no project route may shadow: probes, and the API's own docs.
UNSHADOWABLE = frozenset({"/ok", "/ready", "/metrics", "/docs", "/docs/oauth2-redirect",
                          "/redoc", "/openapi.json"})


@dataclasses.dataclass
class CustomApp:
    """The project's app, and the middleware runlane took from it to place itself."""

    app: Starlette
    spec: str
    middleware: list[Middleware]
    auth_first: bool

    def lifespan(self) -> AbstractAsyncContextManager[Any]:
        """The app's own lifespan (its `lifespan=`, or its startup/shutdown handlers),
        entered with the app itself, as Starlette would."""
        context: Callable[[Any], AbstractAsyncContextManager[Any]] = (
            self.app.router.lifespan_context)
        return context(self.app)

    def runlane_middleware(self) -> list[Middleware]:
        """What runlane's own app runs after authentication: the project's middleware
        with `auth_first`, nothing otherwise (it is then outside everything)."""
        return list(self.middleware) if self.auth_first else []


def load(spec: str, base: Path) -> Starlette:
    """Import "path/to/file.py:app" (relative to the langgraph.json's folder) or
    "package.module:app"; ConfigError with one line when that fails."""
    location, _, attribute = spec.rpartition(":")
    where = f"http.app {spec!r}"
    module = import_location(location, base, where, "runlane_http_app")
    if not hasattr(module, attribute):
        raise ConfigError(f"{where}: {location} has no attribute {attribute!r}")
    app = getattr(module, attribute)
    if not isinstance(app, Starlette):
        raise ConfigError(f"{where}: {attribute} is a {type(app).__name__}, not a Starlette "
                          "or FastAPI application (app = FastAPI() or Starlette(...))")
    return app


def prepare(app: Starlette, spec: str, auth: Middleware | None, auth_first: bool) -> CustomApp:
    """Take the app's middleware out of it (runlane places it: around everything, or
    after authentication with auth_first) and put runlane's authentication in front
    of its routes when `auth` is given (http.enable_custom_route_auth)."""
    middleware = list(app.user_middleware)
    inner = [auth] if auth is not None else []
    if auth_first:
        inner += middleware
    app.user_middleware = inner
    app.middleware_stack = None  # rebuilt with the above on its first request
    return CustomApp(app, spec, middleware, auth_first)


class Dispatch:
    """Routes each request to the project's app when one of its routes matches it
    fully (path and method), to runlane's app otherwise; lifespan events go to
    runlane's app, whose lifespan enters the project's."""

    def __init__(self, runlane: ASGIApp, custom: CustomApp, fixed: frozenset[str]) -> None:
        self.runlane = runlane
        self.custom = custom
        self.fixed = fixed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self._theirs(scope):
            await self.custom.app(scope, receive, send)
        else:
            await self.runlane(scope, receive, send)

    def _theirs(self, scope: Scope) -> bool:
        if route_path(scope) in self.fixed:
            return False
        return any(route.matches(scope)[0] == Match.FULL
                   for route in self.custom.app.router.routes)


def paths(routes: Iterable[Any]) -> set[str]:
    """The paths of `routes`, included routers opened (newer FastAPI wraps them)."""
    found: set[str] = set()
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            found |= paths(inner.routes)
        elif isinstance(getattr(route, "path", None), str):
            found.add(route.path)
    return found


def compose(runlane: ASGIApp, custom: CustomApp, fixed: frozenset[str]) -> ASGIApp:
    """The served app: the project's middleware (unless auth_first placed it after
    authentication) around the dispatch between its routes and runlane's."""
    app: ASGIApp = Dispatch(runlane, custom, fixed)
    if not custom.auth_first:
        for cls, args, kwargs in reversed(custom.middleware):
            app = cls(app, *args, **kwargs)
    return app
