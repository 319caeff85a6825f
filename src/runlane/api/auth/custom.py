"""A langgraph_sdk `Auth` object named by langgraph.json (`"auth": {"path":
"./auth.py:auth"}`), used as the LangGraph server uses it.

`@auth.authenticate` declares what it wants by parameter name (request, headers,
authorization, method, path, path_params, query_params, body, scope) and returns
an identity string, a dict with `identity` (and `permissions`, `display_name`...),
or a user object with an `identity` attribute; it raises
`Auth.exceptions.HTTPException` to refuse. Authorization handlers (`@auth.on...`)
are run by authorization.py.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from langgraph_sdk import Auth
from langgraph_sdk.auth.exceptions import HTTPException as AuthHTTPException
from starlette.requests import Request
from starlette.routing import Match

from runlane.api.auth.identity import Identity, bearer_token, permissions_of
from runlane.errors import AuthError, CustomAuthError
from runlane.project_imports import import_location

log = logging.getLogger("runlane.auth")

PARAMETERS = {"request", "scope", "headers", "authorization", "method", "path",
              "path_params", "query_params", "body"}


def load_auth(config_dir: Path, spec: Any) -> Auth:
    """The `Auth` instance langgraph.json's `auth.path` names ("./file.py:attr" or
    "module:attr"), imported the way graphs are."""
    path = spec.get("path") if isinstance(spec, dict) else None
    if not isinstance(path, str) or ":" not in path:
        raise CustomAuthError(f"langgraph.json 'auth' must be {{\"path\": \"./auth.py:auth\"}}, "
                              f"got {spec!r}")
    location, _, attribute = path.rpartition(":")
    module = import_location(location, config_dir, f"auth {path}", "runlane_auth",
                             CustomAuthError)
    auth = getattr(module, attribute, None)
    if not isinstance(auth, Auth):
        raise CustomAuthError(f"auth {path}: {attribute!r} is {type(auth).__name__}, not a "
                              "langgraph_sdk.Auth instance")
    if auth._authenticate_handler is None:
        raise CustomAuthError(f"auth {path}: the Auth object has no @auth.authenticate "
                              "handler, so no request could be authenticated")
    wanted = set(inspect.signature(auth._authenticate_handler).parameters)
    unknown = wanted - PARAMETERS
    if unknown:
        raise CustomAuthError(f"auth {path}: the authenticate handler asks for {sorted(unknown)}; "
                              f"it may take: {sorted(PARAMETERS)}")
    return auth


class CustomAuth:
    scheme = "Bearer"

    def __init__(self, auth: Auth) -> None:
        self.auth = auth
        handler = auth._authenticate_handler
        assert handler is not None  # load_auth refuses an Auth without one
        # Any callable: a plain function's result is taken as it is (see authenticate),
        # though the SDK's type admits only coroutine functions.
        self._handler: Callable[..., Any] = handler
        self._wanted = list(inspect.signature(self._handler).parameters)

    async def authenticate(self, request: Request) -> Identity:
        arguments = {name: await self._argument(name, request) for name in self._wanted}
        try:
            result = self._handler(**arguments)
            if inspect.isawaitable(result):
                result = await result
        except AuthHTTPException as exc:
            headers = dict(exc.headers or {})
            if exc.status_code == 401:
                headers.setdefault("WWW-Authenticate", self.scheme)
            raise AuthError(str(exc.detail), status_code=exc.status_code,
                            headers=headers) from None
        return identity_from(result)

    @staticmethod
    async def _argument(name: str, request: Request) -> Any:
        if name == "request":
            return request
        if name == "scope":
            return request.scope
        if name == "headers":
            return dict(request.scope.get("headers", []))
        if name == "authorization":
            return request.headers.get("authorization")
        if name == "method":
            return request.method
        if name == "path":
            return request.url.path
        if name == "query_params":
            return dict(request.query_params)
        if name == "body":
            return await request.body()
        if name == "path_params":
            return _path_params(request)
        raise AssertionError(name)  # load_auth refused anything else


def _path_params(request: Request) -> dict[str, str]:
    """The route's path parameters (authentication runs before routing)."""
    app = request.scope.get("app")
    for route in _flat(getattr(app, "routes", [])):
        match, child = route.matches(request.scope)
        if match is Match.FULL:
            return {k: str(v) for k, v in child.get("path_params", {}).items()}
    return {}


def _flat(routes: list[Any]) -> Iterator[Any]:
    """Routes, with included routers opened (newer FastAPI wraps them)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        yield from _flat(inner.routes) if inner is not None else [route]


def identity_from(result: Any) -> Identity:
    """What an authenticate handler returned, as an Identity."""
    if isinstance(result, str) and result:
        return Identity(result)
    if isinstance(result, dict):
        identity = result.get("identity")
        if isinstance(identity, str) and identity:
            extra = {k: v for k, v in result.items()
                     if k not in ("identity", "permissions", "display_name")}
            return Identity(identity, permissions_of(result.get("permissions")),
                            result.get("display_name"), extra)
    identity = getattr(result, "identity", None)
    if isinstance(identity, str) and identity:
        return Identity(identity, permissions_of(getattr(result, "permissions", ())),
                        getattr(result, "display_name", None))
    raise TypeError(f"the authenticate handler returned {type(result).__name__}; it must "
                    "return an identity string, a dict with 'identity', or a user object")


__all__ = ["CustomAuth", "bearer_token", "load_auth"]
