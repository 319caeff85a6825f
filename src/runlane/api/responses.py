"""Response helpers: JSON via orjson and SSE framing. The body of each resource is
built in runlane.wire, which the webhook sender uses too."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, TypeVar

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


def sse(
    body: AsyncIterator[bytes], headers: Mapping[str, str] | None = None
) -> StreamingResponse:
    return StreamingResponse(
        metrics.tracked_stream(body),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no", **(headers or {})},
    )

