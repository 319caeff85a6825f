"""Assistant routes: one default assistant per graph, plus created ones."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from runlane.api.models import (
    AssistantCount,
    AssistantCreate,
    AssistantPatch,
    AssistantSearch,
    AssistantSetLatest,
    AssistantVersions,
)
from runlane.api.responses import JSON, assistant_body, error, version_body
from runlane.assistant_ops import delete_assistant_cascade
from runlane.owners import owner_of
from runlane.serde import to_jsonable, utcnow
from runlane.service import BadRequest, Runlane
from runlane.store import NotFound

router = APIRouter(tags=["assistants"])


def service(request: Request) -> Runlane:
    return request.app.state.runlane


def _served(svc: Runlane, graph_id: str) -> None:
    if graph_id not in svc.graphs:
        raise BadRequest(f"graph {graph_id!r} is not served here; served: {sorted(svc.graphs)}")


def _selected(bodies: list[dict[str, Any]], select: list[str] | None) -> list[dict[str, Any]]:
    if not select:
        return bodies
    return [{k: v for k, v in b.items() if k in select} for b in bodies]


def _paged(bodies: list[dict[str, Any]], limit: int, offset: int) -> Response:
    """The page, and (as the SDK's response_format="object" reads it) the next
    page's offset in X-Pagination-Next when there is one: one extra row was read."""
    headers = {}
    if len(bodies) > limit:
        bodies = bodies[:limit]
        headers["X-Pagination-Next"] = str(offset + limit)
    return JSON(bodies, headers=headers)


@router.post("/assistants")
async def create_assistant(body: AssistantCreate, request: Request) -> Response:
    svc = service(request)
    _served(svc, body.graph_id)
    now = utcnow()
    row = await svc.store.insert_assistant(
        {
            "assistant_id": str(body.assistant_id or uuid.uuid4()),
            "graph_id": body.graph_id,
            "name": body.name or "Untitled",
            "description": body.description,
            "config": body.config or {},
            "context": body.context or {},
            "metadata": body.metadata or {},
            "version": 1,
            "created_at": now,
            "updated_at": now,
        },
        body.if_exists,
        owner=owner_of(request),
    )
    return JSON(assistant_body(row))


@router.post("/assistants/search")
async def search_assistants(body: AssistantSearch, request: Request) -> Response:
    rows = await service(request).store.search_assistants(
        graph_id=body.graph_id, name=body.name, metadata_filter=body.metadata,
        limit=body.limit + 1, offset=body.offset, sort_by=body.sort_by,
        sort_order=body.sort_order, owner=owner_of(request),
    )
    return _paged(_selected([assistant_body(r) for r in rows], body.select), body.limit,
                  body.offset)


@router.post("/assistants/count")
async def count_assistants(body: AssistantCount, request: Request) -> Response:
    return JSON(await service(request).store.count_assistants(
        graph_id=body.graph_id, name=body.name, metadata_filter=body.metadata,
        owner=owner_of(request)))


@router.get("/assistants/{assistant_id}")
async def get_assistant(assistant_id: str, request: Request) -> Response:
    return JSON(assistant_body(
        await service(request).resolve_assistant(assistant_id, owner=owner_of(request))))


@router.patch("/assistants/{assistant_id}")
async def patch_assistant(assistant_id: str, body: AssistantPatch, request: Request) -> Response:
    """A new version from the current one with the fields sent (metadata merged key by
    key), made current."""
    svc = service(request)
    owner = owner_of(request)
    current = await svc.resolve_assistant(assistant_id, owner=owner)
    if body.graph_id is not None:
        _served(svc, body.graph_id)
    values = body.model_dump(exclude_none=True)
    row = await svc.store.update_assistant(current["assistant_id"], values, owner=owner)
    if row is None:
        raise NotFound(f"assistant {assistant_id} not found")
    return JSON(assistant_body(row))


@router.delete("/assistants/{assistant_id}", status_code=204)
async def delete_assistant(
    assistant_id: str, request: Request, delete_threads: str = Query("false")
) -> Response:
    """Delete the assistant with its versions, crons and runs (its active runs are
    interrupted first, and end before it goes); with delete_threads=true also the
    threads whose metadata names it, with their runs and checkpoints."""
    svc = service(request)
    owner = owner_of(request)
    cascade = _boolean("delete_threads", delete_threads)
    current = await svc.resolve_assistant(assistant_id, owner=owner)
    if current["metadata"].get("created_by") == "system":
        return error(409, f"assistant {assistant_id} is the default assistant of graph "
                          f"{current['graph_id']!r} and cannot be deleted")
    await delete_assistant_cascade(svc, current["assistant_id"], owner=owner,
                                   delete_threads=cascade)
    return Response(status_code=204)


@router.post("/assistants/{assistant_id}/versions")
async def list_versions(assistant_id: str, body: AssistantVersions, request: Request) -> Response:
    svc = service(request)
    owner = owner_of(request)
    current = await svc.resolve_assistant(assistant_id, owner=owner)
    rows = await svc.store.list_assistant_versions(
        current["assistant_id"], metadata_filter=body.metadata, limit=body.limit,
        offset=body.offset, owner=owner)
    return JSON([version_body(r) for r in rows])


@router.post("/assistants/{assistant_id}/latest")
async def set_latest_version(
    assistant_id: str, body: AssistantSetLatest, request: Request
) -> Response:
    svc = service(request)
    owner = owner_of(request)
    current = await svc.resolve_assistant(assistant_id, owner=owner)
    row = await svc.store.set_latest_assistant_version(
        current["assistant_id"], body.version, owner=owner)
    return JSON(assistant_body(row))


def _boolean(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise BadRequest(f"{name} must be true or false, got {value!r}")


@router.get("/assistants/{assistant_id}/graph")
async def get_assistant_graph(
    assistant_id: str, request: Request, xray: str = Query("false")
) -> Response:
    svc = service(request)
    assistant = await svc.resolve_assistant(assistant_id)
    graph = svc.graphs[assistant["graph_id"]]
    depth: Any = False
    if xray.lower() in ("true", "1"):
        depth = True
    elif xray.isascii() and xray.isdigit():  # "³".isdigit() is True, int("³") fails
        depth = int(xray)
    elif xray.lower() not in ("false", "0"):
        return error(422, f"xray must be a boolean or a depth, got {xray!r}")
    drawable = await graph.aget_graph(xray=depth)
    return JSON(drawable.to_json())


@router.get("/assistants/{assistant_id}/schemas")
async def get_assistant_schemas(assistant_id: str, request: Request) -> Response:
    svc = service(request)
    assistant = await svc.resolve_assistant(assistant_id)
    graph = svc.graphs[assistant["graph_id"]]

    def schema(getter: Any) -> Any:
        try:
            return to_jsonable(getter().model_json_schema())
        except Exception:
            return None

    def context_schema() -> Any:
        getter = getattr(graph, "get_context_jsonschema", None)
        try:
            return to_jsonable(getter()) if getter else None
        except Exception:
            return None

    return JSON({
        "graph_id": assistant["graph_id"],
        "input_schema": schema(graph.get_input_schema),
        "output_schema": schema(graph.get_output_schema),
        "state_schema": schema(graph.get_input_schema),
        # langgraph 1.x has no get_config_schema; inside the getter, a missing method is None
        "config_schema": schema(lambda: graph.config_schema()),
        "context_schema": context_schema(),
    })


@router.get("/assistants/{assistant_id}/subgraphs")
async def get_assistant_subgraphs(assistant_id: str, request: Request) -> Response:
    svc = service(request)
    assistant = await svc.resolve_assistant(assistant_id)
    graph = svc.graphs[assistant["graph_id"]]
    return JSON({ns: {"graph_id": ns} async for ns, _ in graph.aget_subgraphs()})
