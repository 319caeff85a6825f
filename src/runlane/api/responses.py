"""Response helpers: JSON via orjson, SSE framing, and the wire shape of each resource."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.responses import Response, StreamingResponse

from runlane.errors import RunlaneError
from runlane.observability import metrics
from runlane.serde import dumps

Row = dict[str, Any]


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


RUN_FIELDS = (
    "run_id", "thread_id", "assistant_id", "created_at", "updated_at", "status",
    "metadata", "multitask_strategy", "kwargs", "cancel_action", "cancel_reason",
    "stop_reason", "error",
)


def run_body(row: Row) -> Row:
    return {key: row.get(key) for key in RUN_FIELDS}


def thread_body(row: Row) -> Row:
    return {
        "thread_id": row["thread_id"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "metadata": row["metadata"],
        "status": row["status"],
        "config": row.get("config") or {},
        "values": row.get("values"),
        "interrupts": row.get("interrupts") or {},
    }


def assistant_body(row: Row) -> Row:
    return {
        "assistant_id": row["assistant_id"],
        "graph_id": row["graph_id"],
        "config": row["config"],
        "context": row["context"],
        "metadata": row["metadata"],
        "name": row["name"],
        "description": row.get("description"),
        "version": row["version"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def version_body(row: Row) -> Row:
    """One stored version of an assistant (AssistantVersion: no updated_at)."""
    return {
        "assistant_id": row["assistant_id"],
        "graph_id": row["graph_id"],
        "config": row["config"],
        "context": row["context"],
        "metadata": row["metadata"],
        "name": row["name"],
        "description": row.get("description"),
        "version": row["version"],
        "created_at": row["created_at"],
    }
