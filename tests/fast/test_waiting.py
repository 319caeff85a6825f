"""The answer of wait and join (runlane.api.waiting), in process: a quick result is
an ordinary JSON response with its status; a slow one is 200 at once, newlines while
it goes on, then the body, and an error after the headers is said in the body."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runlane.api.responses import error_response
from runlane.api.waiting import wait_response
from runlane.errors import NotFound, RunlaneError

INTERVAL = 0.05


def _client(result: Callable[[], Any]) -> httpx.AsyncClient:
    async def endpoint(request: Request) -> Response:
        return await wait_response(request, result(), headers={"Content-Location": "/x"},
                                   interval=INTERVAL)

    async def answer(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RunlaneError)
        return error_response(exc)

    app = Starlette(routes=[Route("/wait", endpoint)],
                    exception_handlers={RunlaneError: answer})
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def _after(ticks: int, value: Any = None, error: Exception | None = None) -> Callable[[], Any]:
    """A result that takes `ticks` keep-alive intervals (a fraction more)."""
    async def result() -> Any:
        await asyncio.sleep(INTERVAL * (ticks + 0.5))
        if error is not None:
            raise error
        return value

    return result


async def test_a_quick_result_is_plain_json() -> None:
    async with _client(_after(0, {"n": 1})) as client:
        resp = await client.get("/wait")
    assert resp.status_code == 200 and resp.content == b'{"n":1}'
    assert resp.headers["content-length"] == "7" and resp.headers["content-location"] == "/x"


async def test_a_quick_error_keeps_its_status() -> None:
    async with _client(_after(0, error=NotFound("run r not found"))) as client:
        resp = await client.get("/wait")
    # Raised to the app's handler: answered as any other 404.
    assert resp.status_code == 404 and resp.json() == {"detail": "run r not found"}


async def test_a_slow_result_is_kept_alive() -> None:
    async with _client(_after(4, {"n": 2})) as client:
        resp = await client.get("/wait")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["content-location"] == "/x"
    newlines = len(resp.content) - len(resp.content.lstrip(b"\n"))
    assert newlines >= 3, resp.content
    assert resp.content.lstrip(b"\n") == b'{"n":2}'
    assert json.loads(resp.content) == {"n": 2}


async def test_an_error_after_the_headers_is_said_in_the_body() -> None:
    async with _client(_after(3, error=NotFound("run r not found"))) as client:
        resp = await client.get("/wait")
    assert resp.status_code == 200 and resp.content.startswith(b"\n")
    assert resp.json() == {"__error__": {"error": "NotFound", "message": "run r not found",
                                         "status_code": 404}}
    async with _client(_after(3, error=RuntimeError("store gone"))) as client:
        resp = await client.get("/wait")
    assert resp.json() == {"__error__": {"error": "RuntimeError", "message": "store gone"}}
