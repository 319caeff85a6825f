"""Assistant routes: one default assistant per graph, plus created ones."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from runlane.api.access import allowed
from runlane.api.models import AssistantCount, AssistantCreate, AssistantPatch, AssistantSearch
from runlane.api.responses import JSON, assistant_body, error
from runlane.auth.authorization import Denied, matches
from runlane.owners import owner_of, writable
from runlane.serde import to_jsonable, utcnow
from runlane.service import BadRequest, Runlane
from runlane.store import NotFound

router = APIRouter(tags=["assistants"])


def service(request: Request) -> Runlane:
    return request.app.state.runlane


async def _assistant(request: Request, assistant_id: str, action: str = "read",
                     value: dict[str, Any] | None = None) -> dict[str, Any]:
    """The assistant, if the caller may `action` it. Another owner's is NotFound,
    like a missing one. Shared assistants (the default one of each graph, and any
    created with auth off) every caller may read, and none may change: 403, which
    tells nothing new, since the caller can read them."""
    value = value if value is not None else {}
    value.setdefault("assistant_id", assistant_id)
    filters = await allowed(request, "assistants", action, value)
    owner = owner_of(request)
    row = await service(request).resolve_assistant(assistant_id, owner=owner)
    if not matches(row.get("metadata"), filters):
        raise NotFound(f"assistant {assistant_id} not found")
    if action in ("update", "delete") and not writable(row.get("owner"), owner):
        raise Denied(f"assistant {assistant_id} is shared by every user of this server (the "
                     "default assistant of a graph, or created with auth off); it cannot be "
                     "changed or deleted: create an assistant of your own instead")
    return row


@router.post("/assistants")
async def create_assistant(body: AssistantCreate, request: Request) -> Response:
    svc = service(request)
    if body.graph_id not in svc.graphs:
        raise BadRequest(f"graph {body.graph_id!r} is not served here; served: {sorted(svc.graphs)}")
    now = utcnow()
    # The handler may add metadata: what it leaves in `value` is stored.
    value: dict[str, Any] = {
        "assistant_id": body.assistant_id or uuid.uuid4(), "graph_id": body.graph_id,
        "config": body.config or {}, "context": body.context or {},
        "metadata": body.metadata or {}, "if_exists": body.if_exists, "name": body.name,
    }
    await allowed(request, "assistants", "create", value)
    row = await svc.store.insert_assistant(
        {
            "assistant_id": str(value["assistant_id"]),
            "graph_id": body.graph_id,
            "name": body.name or "Untitled",
            "description": body.description,
            "config": body.config or {},
            "context": body.context or {},
            "metadata": value.get("metadata") or {},
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
    filters = await allowed(request, "assistants", "search", body.model_dump(exclude_none=True))
    rows = await service(request).store.search_assistants(
        owner=owner_of(request), auth_filter=filters,
        graph_id=body.graph_id, name=body.name, metadata_filter=body.metadata,
        limit=body.limit, offset=body.offset, sort_by=body.sort_by, sort_order=body.sort_order,
    )
    bodies = [assistant_body(r) for r in rows]
    if body.select:
        bodies = [{k: v for k, v in b.items() if k in body.select} for b in bodies]
    return JSON(bodies)


@router.post("/assistants/count")
async def count_assistants(body: AssistantCount, request: Request) -> Response:
    filters = await allowed(request, "assistants", "search", body.model_dump(exclude_none=True))
    return JSON(await service(request).store.count_assistants(
        graph_id=body.graph_id, metadata_filter=body.metadata, owner=owner_of(request),
        auth_filter=filters))


@router.get("/assistants/{assistant_id}")
async def get_assistant(assistant_id: str, request: Request) -> Response:
    return JSON(assistant_body(await _assistant(request, assistant_id)))


@router.patch("/assistants/{assistant_id}")
async def patch_assistant(assistant_id: str, body: AssistantPatch, request: Request) -> Response:
    svc = service(request)
    values = body.model_dump(exclude_none=True)
    current = await _assistant(request, assistant_id, "update", values)
    if body.graph_id is not None and body.graph_id not in svc.graphs:
        raise BadRequest(f"graph {body.graph_id!r} is not served here; served: {sorted(svc.graphs)}")
    values.pop("assistant_id", None)
    if "metadata" in values:
        values["metadata"] = {**current["metadata"], **values["metadata"]}
    row = await svc.store.update_assistant(current["assistant_id"], values,
                                           owner=owner_of(request))
    if row is None:
        raise NotFound(f"assistant {assistant_id} not found")
    return JSON(assistant_body(row))


@router.delete("/assistants/{assistant_id}", status_code=204)
async def delete_assistant(assistant_id: str, request: Request) -> Response:
    svc = service(request)
    current = await _assistant(request, assistant_id, "delete")
    if current["metadata"].get("created_by") == "system":
        return error(409, f"assistant {assistant_id} is the default assistant of graph "
                          f"{current['graph_id']!r} and cannot be deleted")
    await svc.store.delete_assistant(current["assistant_id"], owner=owner_of(request))
    return Response(status_code=204)


@router.get("/assistants/{assistant_id}/graph")
async def get_assistant_graph(
    assistant_id: str, request: Request, xray: str = Query("false")
) -> Response:
    svc = service(request)
    assistant = await _assistant(request, assistant_id)
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
    assistant = await _assistant(request, assistant_id)
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
    assistant = await _assistant(request, assistant_id)
    graph = svc.graphs[assistant["graph_id"]]
    return JSON({ns: {"graph_id": ns} async for ns, _ in graph.aget_subgraphs()})


@router.post("/assistants/{assistant_id}/versions")
async def list_versions(assistant_id: str, request: Request) -> Response:
    row = await _assistant(request, assistant_id)
    return JSON([assistant_body(row)])

