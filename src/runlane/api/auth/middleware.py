"""The ASGI middleware that authenticates every request but the open ones.

Open without credentials (they carry no one's threads, runs or assistants):
/ok and /ready (probes), /info (version and graph names; no run counts with auth
on), /docs, /redoc and /openapi.json (the API's shape is public). /metrics passes
here too, and its route asks for the operator's RUNLANE_METRICS_TOKEN instead of a
user's credentials (its figures count every owner's runs: api/system.py).
Everything else needs credentials: 401 with WWW-Authenticate when they are
missing or wrong. The caller's identity becomes `request.state.owner` (what
`runlane.owners.owner_of` reads) and the whole Identity `request.state.user`.
"""

from __future__ import annotations

import logging

from starlette.authentication import AuthCredentials
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runlane.api.auth.identity import Authenticator
from runlane.api.mounting import route_path
from runlane.api.responses import error, error_response
from runlane.errors import AuthError

log = logging.getLogger("runlane.auth")

OPEN_PATHS = frozenset({"/ok", "/ready", "/metrics", "/info", "/docs", "/docs/oauth2-redirect",
                        "/redoc", "/openapi.json"})


class AuthMiddleware:
    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or route_path(scope) in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        # A CORS preflight carries no credentials by design.
        if scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            user = await self.authenticator.authenticate(request)
        except AuthError as exc:
            # Outside the app's exception handler: answered here, the same way.
            if exc.status_code == 401:
                exc.headers.setdefault("WWW-Authenticate", self.authenticator.scheme)
            await error_response(exc)(scope, receive, send)
            return
        except Exception as exc:  # a custom handler's bug: say so, do not let anyone in
            log.exception("the authenticate handler failed on %s %s", scope["method"],
                          scope["path"])
            response = error(500, f"authentication failed inside the server's auth handler "
                                  f"({type(exc).__name__}); see the server log")
            await response(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["owner"] = user.identity
        state["user"] = user
        # What Starlette's AuthenticationMiddleware sets, as the reference's does: a
        # project route behind runlane's auth (http.enable_custom_route_auth) reads
        # `request.user.identity` and `request.auth.scopes`.
        scope["user"] = user
        scope["auth"] = AuthCredentials(list(user.permissions))
        # A handler that read the body consumed it: hand the buffered copy on.
        body = getattr(request, "_body", None)
        if body is not None:
            delivered = False

            async def replay() -> Message:
                nonlocal delivered
                if not delivered:
                    delivered = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
            return
        await self.app(scope, receive, send)
