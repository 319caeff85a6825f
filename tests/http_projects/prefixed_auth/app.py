"""A project's own Starlette app, behind runlane's auth (http.enable_custom_route_auth)."""

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


class Stamp(BaseHTTPMiddleware):
    async def dispatch(self, request, call_next):
        response = await call_next(request)
        response.headers["x-project-middleware"] = "stamped"
        return response


async def me(request: Request) -> JSONResponse:
    return JSONResponse({"identity": request.user.identity,
                         "permissions": list(request.auth.scopes)})


app = Starlette(routes=[Route("/me", me)], middleware=[Middleware(Stamp)])
