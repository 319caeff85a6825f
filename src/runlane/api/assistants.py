"""Assistant routes: one default assistant per graph, plus created ones."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import APIRouter, Query, Request
from langgraph.pregel import Pregel
from starlette.responses import Response

from runlane import run_context
from runlane.api.access import allowed
from runlane.api.chosen_ids import check_new_assistant_id
from runlane.api.models import (
    AssistantCount,
    AssistantCreate,
    AssistantPatch,
    AssistantSearch,
    AssistantSetLatest,
    AssistantVersions,
)
from runlane.api.responses import JSON, error, page
from runlane.errors import BadRequest, Denied, NotFound
from runlane.graph_factories import ServedGraph
from runlane.owners import matches, owner_of, writable
from runlane.records import Assistant
from runlane.serde import to_jsonable, utcnow
from runlane.service.assistants import delete_assistant_cascade
from runlane.service.graph_schemas import graph_schemas
from runlane.service.runs import Runlane
from runlane.wire import assistant_body, version_body

router = APIRouter(tags=["assistants"])


def service(request: Request) -> Runlane:
    return request.app.state.runlane


def _served(svc: Runlane, graph_id: str) -> None:
    if graph_id not in svc.graphs:
        raise BadRequest(f"graph {graph_id!r} is not served here; served: {sorted(svc.graphs)}")


def _selected(bodies: list[dict[str, Any]],
              select: Sequence[str] | None) -> list[dict[str, Any]]:
    if not select:
        return bodies
    return [{k: v for k, v in b.items() if k in select} for b in bodies]


async def _assistant(request: Request, assistant_id: str, action: str = "read",
                     value: dict[str, Any] | None = None) -> Assistant:
    """The assistant, if the caller may `action` it. Another owner's is NotFound,
    like a missing one. Shared assistants (the default one of each graph, and any
    created with auth off) every caller may read, and none may change: 403, which
    tells nothing new, since the caller can read them."""
    value = value if value is not None else {}
    value.setdefault("assistant_id", assistant_id)
    filters = await allowed(request, "assistants", action, value)
    owner = owner_of(request)
    row = await service(request).resolve_assistant(assistant_id, owner=owner)
    if not matches(row.metadata, filters):
        raise NotFound(f"assistant {assistant_id} not found")
    if action in ("update", "delete") and not writable(row.owner, owner):
        raise Denied(f"assistant {assistant_id} is shared by every user of this server (the "
                     "default assistant of a graph, or created with auth off); it cannot be "
                     "changed or deleted: create an assistant of your own instead")
    return row


@router.post("/assistants")
async def create_assistant(body: AssistantCreate, request: Request) -> Response:
    svc = service(request)
    _served(svc, body.graph_id)
    now = utcnow()
    # Stored mirrored, configurable <-> context, as the reference keeps them.
    config, context = run_context.for_assistant(body.config, body.context)
    # The handler may add metadata: what it leaves in `value` is stored.
    value: dict[str, Any] = {
        "assistant_id": body.assistant_id or uuid.uuid4(), "graph_id": body.graph_id,
        "config": config, "context": context,
        "metadata": body.metadata or {}, "if_exists": body.if_exists, "name": body.name,
    }
    await allowed(request, "assistants", "create", value)
    if body.assistant_id is not None:
        await check_new_assistant_id(request, str(body.assistant_id))
    row = await svc.store.insert_assistant(
        {
            "assistant_id": str(value["assistant_id"]),
            "graph_id": body.graph_id,
            "name": body.name or "Untitled",
            "description": body.description,
            "config": config,
            "context": context,
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
        limit=body.limit + 1, offset=body.offset, sort_by=body.sort_by,
        sort_order=body.sort_order,
    )
    rows, headers = page(rows, body.limit, body.offset)
    return JSON(_selected([assistant_body(r) for r in rows], body.select), headers=headers)


@router.post("/assistants/count")
async def count_assistants(body: AssistantCount, request: Request) -> Response:
    filters = await allowed(request, "assistants", "search", body.model_dump(exclude_none=True))
    return JSON(await service(request).store.count_assistants(
        graph_id=body.graph_id, name=body.name, metadata_filter=body.metadata,
        owner=owner_of(request), auth_filter=filters))


@router.get("/assistants/{assistant_id}")
async def get_assistant(assistant_id: str, request: Request) -> Response:
    return JSON(assistant_body(await _assistant(request, assistant_id)))


@router.patch("/assistants/{assistant_id}")
async def patch_assistant(assistant_id: str, body: AssistantPatch, request: Request) -> Response:
    """A new version from the current one with the fields sent (metadata merged key by
    key), made current."""
    svc = service(request)
    values = body.model_dump(exclude_none=True)
    current = await _assistant(request, assistant_id, "update", values)
    if body.graph_id is not None:
        _served(svc, body.graph_id)
    values.pop("assistant_id", None)
    config, context = run_context.for_assistant_patch(values.pop("config", None),
                                                      values.pop("context", None))
    if config is not None:
        values["config"] = config
    if context is not None:
        values["context"] = context
    row = await svc.store.update_assistant(current.assistant_id, values,
                                           owner=owner_of(request))
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
    cascade = _boolean("delete_threads", delete_threads)
    current = await _assistant(request, assistant_id, "delete")
    if current.metadata.get("created_by") == "system":
        return error(409, f"assistant {assistant_id} is the default assistant of graph "
                          f"{current.graph_id!r} and cannot be deleted")
    await delete_assistant_cascade(svc, current.assistant_id, owner=owner_of(request),
                                   delete_threads=cascade)
    return Response(status_code=204)


@router.post("/assistants/{assistant_id}/versions")
async def list_versions(assistant_id: str, body: AssistantVersions, request: Request) -> Response:
    svc = service(request)
    owner = owner_of(request)
    current = await _assistant(request, assistant_id)
    rows = await svc.store.list_assistant_versions(
        current.assistant_id, metadata_filter=body.metadata, limit=body.limit,
        offset=body.offset, owner=owner)
    return JSON([version_body(r) for r in rows])


@router.post("/assistants/{assistant_id}/latest")
async def set_latest_version(
    assistant_id: str, body: AssistantSetLatest, request: Request
) -> Response:
    svc = service(request)
    owner = owner_of(request)
    current = await _assistant(request, assistant_id, "update", {"version": body.version})
    row = await svc.store.set_latest_assistant_version(
        current.assistant_id, body.version, owner=owner)
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
    assistant = await _assistant(request, assistant_id)
    served = svc.graphs[assistant.graph_id]
    depth: Any = False
    if xray.lower() in ("true", "1"):
        depth = True
    elif xray.isascii() and xray.isdigit():  # "³".isdigit() is True, int("³") fails
        depth = int(xray)
    elif xray.lower() not in ("false", "0"):
        return error(422, f"xray must be a boolean or a depth, got {xray!r}")
    async with _open(request, served, assistant) as graph:
        drawable = await graph.aget_graph(xray=depth)
    return JSON(drawable.to_json())


def _open(request: Request, served: ServedGraph,
          assistant: Assistant) -> AbstractAsyncContextManager[Pregel]:
    """The assistant's graph for introspection (a factory is called with the
    assistant's config and a read runtime: access `assistants.read`)."""
    config = {**assistant.config,
              "configurable": {**(assistant.config.get("configurable") or {}),
                               "assistant_id": assistant.assistant_id,
                               "graph_id": assistant.graph_id}}
    return served.open("assistants.read", config,
                       user=getattr(request.state, "user", None))


@router.get("/assistants/{assistant_id}/schemas")
async def get_assistant_schemas(assistant_id: str, request: Request) -> Response:
    svc = service(request)
    assistant = await _assistant(request, assistant_id)
    async with _open(request, svc.graphs[assistant.graph_id], assistant) as graph:
        schemas = graph_schemas(graph)
    return JSON({"graph_id": assistant.graph_id, **to_jsonable(schemas)})


@router.get("/assistants/{assistant_id}/subgraphs")
async def get_assistant_subgraphs(
    assistant_id: str, request: Request, recurse: str = Query("false")
) -> Response:
    return await _subgraphs(request, assistant_id, None, recurse)


@router.get("/assistants/{assistant_id}/subgraphs/{namespace}")
async def get_assistant_subgraphs_at(
    assistant_id: str, namespace: str, request: Request, recurse: str = Query("false")
) -> Response:
    return await _subgraphs(request, assistant_id, namespace, recurse)


async def _subgraphs(request: Request, assistant_id: str, namespace: str | None,
                     recurse: str) -> Response:
    """The graph's subgraphs by namespace (`parent|child` when recursing), each with
    its schemas. The SDK types each entry as a GraphSchema, whose graph_id is
    required: a subgraph has no id of its own in langgraph.json, so it is its
    namespace."""
    svc = service(request)
    deep = _boolean("recurse", recurse)
    assistant = await _assistant(request, assistant_id)
    async with _open(request, svc.graphs[assistant.graph_id], assistant) as graph:
        found = {
            ns: {"graph_id": ns, **to_jsonable(graph_schemas(subgraph))}
            async for ns, subgraph in graph.aget_subgraphs(namespace=namespace, recurse=deep)
        }
        # langgraph yields nothing for an unknown namespace: say so rather than {}
        known = ([ns async for ns, _ in graph.aget_subgraphs(recurse=True)]
                 if namespace is not None and not found else [])
    if namespace is not None and not found:
        raise NotFound(f"subgraph {namespace!r} not found in graph {assistant.graph_id!r} "
                       f"(its subgraphs: {known}; a nested one, 'parent|child', needs "
                       "recurse=true)")
    return JSON(found)
