"""Response helpers: JSON via orjson and SSE framing. The body of each resource is
built in runlane.wire, which the webhook sender uses too."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.responses import Response, StreamingResponse

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


def sse(
    body: AsyncIterator[bytes], headers: Mapping[str, str] | None = None
) -> StreamingResponse:
    return StreamingResponse(
        metrics.tracked_stream(body),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no", **(headers or {})},
    )

