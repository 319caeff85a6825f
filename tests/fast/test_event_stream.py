"""responses.EventStream: an event stream's start and end go through the app's
middlewares (the `send` it is called with); its body chunks go to the `send` runlane's
app left in the scope (DIRECT_SEND), and through the middlewares when there is none
(a project's middleware runs inside the app: api/app.py leaves none)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from runlane.api.responses import DIRECT_SEND, sse


async def _frames() -> AsyncIterator[bytes]:
    for i in range(3):
        yield b"event: values\ndata: %d\n\n" % i


async def _serve(direct: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    through: list[dict[str, Any]] = []
    straight: list[dict[str, Any]] = []

    async def middlewares(message: dict[str, Any]) -> None:
        through.append(message)

    async def app_send(message: dict[str, Any]) -> None:
        straight.append(message)

    async def receive() -> dict[str, Any]:  # the client never leaves
        await asyncio.Event().wait()
        raise AssertionError

    scope: dict[str, Any] = {"type": "http", "asgi": {"spec_version": "2.3"}}
    if direct:
        scope[DIRECT_SEND] = app_send
    await sse(_frames())(scope, receive, middlewares)
    return through, straight


async def test_body_chunks_skip_the_middlewares_start_and_end_do_not() -> None:
    through, straight = await _serve(direct=True)
    assert [m["type"] for m in through] == ["http.response.start", "http.response.body"]
    assert through[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert [m["body"] for m in straight] == [b"event: values\ndata: %d\n\n" % i
                                             for i in range(3)]
    assert all(m["more_body"] for m in straight)


async def test_without_the_apps_send_everything_goes_through_the_middlewares() -> None:
    through, straight = await _serve(direct=False)
    assert not straight
    assert [m.get("body") for m in through] == [
        None, *(b"event: values\ndata: %d\n\n" % i for i in range(3)), b""]
