"""Response helpers: JSON via orjson and SSE framing. The body of each resource is
built in runlane.wire, which the webhook sender uses too."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, TypeVar

from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from runlane.errors import RunlaneError
from runlane.observability import metrics
from runlane.serde import dumps


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def error(status_code: int, detail: str, **extra: Any) -> JSON:
    return JSON({"detail": detail, **extra}, status_code=status_code)


def error_response(exc: RunlaneError) -> JSON:
    """How every RunlaneError is answered (the app's one handler, and the middleware
    that runs outside it): its status, {"detail": ..., **body}, then its headers."""
    response = error(exc.status_code, exc.detail, **exc.body)
    response.headers.update(exc.headers)
    return response


T = TypeVar("T")


def page(rows: Sequence[T], limit: int, offset: int) -> tuple[list[T], dict[str, str]]:
    """A search's page from `limit + 1` rows read at `offset`, and the headers the
    reference server sends with it (the SDKs' response_format="object" reads them):
    with more rows to come, X-Pagination-Next (the next page's offset) and
    X-Pagination-Total one past it (the total is not counted: "at least this many");
    on the last page, X-Pagination-Total, exact."""
    if len(rows) > limit:
        return list(rows[:limit]), {"X-Pagination-Total": str(offset + limit + 1),
                                    "X-Pagination-Next": str(offset + limit)}
    return list(rows), {"X-Pagination-Total": str(offset + len(rows))}


# The scope key under which runlane's app keeps the `send` it was given (api/app.py),
# when no middleware of a project's runs inside it: an event stream's body chunks go
# there directly (see EventStream).
DIRECT_SEND = "runlane.direct_send"


class EventStream(StreamingResponse):
    """A server-sent event stream. Its start and its end go through every middleware
    (CORS adds its headers, the error handlers see that it started); its body chunks,
    one per token per stream under an agent's load, go straight to the `send` runlane's
    app was given, when it left one in the scope: runlane's own middlewares (CORS, the
    error handlers, the body limit, auth) pass them on unchanged, each an `await` more
    per chunk. Counted in `runlane_sse_streams` while its body is being served, from
    the moment it is first iterated."""

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        body = self._direct or send
        metrics.SSE_STREAMS.inc()
        try:
            async for chunk in self.body_iterator:
                await body({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            metrics.SSE_STREAMS.dec()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._direct: Send | None = scope.get(DIRECT_SEND)
        await super().__call__(scope, receive, send)


def sse(body: AsyncIterator[bytes], headers: Mapping[str, str] | None = None) -> EventStream:
    return EventStream(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no", **(headers or {})},
    )

