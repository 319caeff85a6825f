"""The answer of `wait` and `join`: the run's final values as JSON, kept alive while
the run goes on.

A run that ends within one keep-alive interval is answered as any JSON response (its
errors keep their status codes). A longer one is answered as the reference server
answers every wait: 200 with `Content-Type: application/json` at once, then a
newline every interval (leading whitespace, which every JSON parser skips), then
the body, so a proxy's idle timeout (nginx: 60 s) never cuts a long agent run's
wait. Once the headers are out, an error can only be said in the body: as a
failed run says it, `{"__error__": {"error": <type>, "message": ...}}`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from runlane.api.responses import JSON
from runlane.errors import RunlaneError
from runlane.serde import dumps

log = logging.getLogger("runlane.api")

KEEPALIVE = b"\n"
# How often a client that asked to cancel on disconnect is checked for, before the
# response starts (afterwards, the keep-alive writes find out).
DISCONNECT_POLL = 0.5


async def wait_response(
    request: Request,
    result: Awaitable[Any],
    *,
    headers: Mapping[str, str],
    interval: float,
    on_gone: Callable[[], Coroutine[Any, Any, None]] | None = None,
) -> Response:
    """`result`: the run's final values, once it is over. `on_gone`: what to do when
    the client goes away before then (cancel the run), None: nothing."""
    task = asyncio.ensure_future(result)
    try:
        settled = await _settled_within(task, interval, request, on_gone)
    except BaseException:
        task.cancel()
        raise
    if settled:
        return JSON(task.result(), headers=dict(headers))  # its error: the usual answer
    return StreamingResponse(_kept_alive(task, interval, on_gone, request),
                             media_type="application/json", headers=dict(headers))


async def _settled_within(task: asyncio.Future[Any], interval: float, request: Request,
                          on_gone: Callable[[], Coroutine[Any, Any, None]] | None) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + interval
    while (left := deadline - loop.time()) > 0:
        step = min(left, DISCONNECT_POLL) if on_gone is not None else left
        done, _ = await asyncio.wait({task}, timeout=step)
        if done:
            return True
        if on_gone is not None and await request.is_disconnected():
            await on_gone()
            on_gone = None  # asked once; the run's end is still awaited, as before
    return task.done()


async def _kept_alive(task: asyncio.Future[Any], interval: float,
                      on_gone: Callable[[], Coroutine[Any, Any, None]] | None,
                      request: Request) -> AsyncIterator[bytes]:
    finished = False
    try:
        while not task.done():
            yield KEEPALIVE
            await asyncio.wait({task}, timeout=interval)
        finished = True
        yield dumps(_outcome(task, request))
    finally:
        if not finished:
            # The client went away (the write failed, or the response was cancelled).
            task.cancel()
            if on_gone is not None:
                asyncio.get_running_loop().create_task(on_gone())
        else:
            with contextlib.suppress(BaseException):
                task.result()  # retrieved, so asyncio does not log it as unhandled


def _outcome(task: asyncio.Future[Any], request: Request) -> Any:
    try:
        return task.result()
    except RunlaneError as exc:
        if exc.log_as is not None:
            log.error("%s on %s %s: %s", exc.log_as, request.method, request.url.path, exc)
        return {"__error__": {"error": type(exc).__name__, "message": exc.detail,
                              "status_code": exc.status_code}}
    except Exception as exc:  # said in the body: the status is already sent
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return {"__error__": {"error": type(exc).__name__, "message": str(exc)}}
