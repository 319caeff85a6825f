"""Thread routes: create, get, patch, delete, search, count, state and history."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.errors import InvalidUpdateError
from langgraph.types import StateUpdate
from starlette.responses import Response

from runlane.api.access import allowed
from runlane.api.chosen_ids import check_new_thread_id
from runlane.api.extract import extracted
from runlane.api.idempotency import idempotency_of
from runlane.api.models import (
    ThreadCount,
    ThreadCreate,
    ThreadHistory,
    ThreadPatch,
    ThreadPrune,
    ThreadSearch,
    ThreadStateCheckpoint,
    ThreadStateUpdate,
    ThreadTTL,
)
from runlane.api.responses import JSON, error, page, sse
from runlane.contract import ThreadStatus
from runlane.errors import BadRequest, NotFound
from runlane.executor.execution import thread_state
from runlane.graph_factories import ServedGraph
from runlane.owners import matches, owner_of
from runlane.records import Thread
from runlane.serde import JSONObject, to_jsonable, utcnow
from runlane.service import threads as thread_ops
from runlane.service.runs import Runlane
from runlane.service.thread_holds import between_runs
from runlane.service.thread_stream import THREAD_STREAM_MODES, follow_thread, parse_last_event_id
from runlane.wire import thread_body

router = APIRouter(tags=["threads"])


def service(request: Request) -> Runlane:
    return request.app.state.runlane


async def _thread(request: Request, thread_id: UUID, action: str = "read",
                  value: JSONObject | None = None) -> Thread:
    """The thread, if the caller may `action` it: its owner's (another owner's is
    NotFound, exactly like a missing one) and passing the authorization handler,
    which sees (and may change) `value`."""
    value = value if value is not None else {}
    value.setdefault("thread_id", thread_id)
    filters = await allowed(request, "threads", action, value)
    row = await service(request).store.get_thread(str(thread_id), owner=owner_of(request))
    if row is None or row.temporary or not matches(row.metadata, filters):
        raise NotFound(f"thread {thread_id} not found")
    return row


def _ttl(body: ThreadTTL | None) -> JSONObject | None:
    return None if body is None else body.model_dump()


def _ttl_changed(svc: Runlane, ttl: JSONObject | None, row: Thread | None = None) -> None:
    if ttl is not None:
        svc.thread_ttl_changed(None if row is None else row.expires_at)


@router.post("/threads")
async def create_thread(body: ThreadCreate, request: Request) -> Response:
    svc = service(request)
    # A retry with the same Idempotency-Key answers the thread the first one created.
    idempotency = idempotency_of(request, lambda: body.model_dump(mode="json"))
    now = utcnow()
    # The handler may add metadata (e.g. the owner's org): what it leaves is stored.
    value: JSONObject = {"thread_id": body.thread_id or uuid.uuid4(),
                         "metadata": body.metadata or {}, "if_exists": body.if_exists}
    await allowed(request, "threads", "create", value)
    if body.thread_id is not None:
        await check_new_thread_id(request, str(body.thread_id))
    # Without one of its own, a thread gets langgraph.json's checkpointer.ttl default.
    ttl = _ttl(body.ttl) or svc.default_thread_ttl
    graph = None
    if body.supersteps:
        graph_id = (body.metadata or {}).get("graph_id")
        graph = svc.graphs.get(graph_id) if isinstance(graph_id, str) else None
        if graph is None:
            return error(422, f"supersteps need metadata.graph_id naming a served graph "
                              f"(got {graph_id!r}); served: {sorted(svc.graphs)}")
    row = await svc.store.create_thread(
        {
            "thread_id": str(value["thread_id"]),
            "status": ThreadStatus.IDLE.value,
            "metadata": value.get("metadata") or {},
            "config": {},
            "values": None,
            "interrupts": {},
            "temporary": False,
            "ttl": ttl,
            "created_at": now,
            "updated_at": now,
        },
        body.if_exists,
        owner=owner_of(request),
        idempotency=svc.idempotency_key(idempotency, owner_of(request)),
    )
    if graph is not None and row.created_at == now:  # created here, not an existing one
        row = await _apply_supersteps(svc, graph, row, body, _user(request))
    _ttl_changed(svc, ttl, row)
    return JSON(thread_body(row))


async def _apply_supersteps(svc: Runlane, served: ServedGraph, row: Thread,
                            body: ThreadCreate, user: Any) -> Thread:
    """Replay the supersteps onto the new thread; a refused one removes the thread
    again (422), so a thread is created with all of its state or not at all."""
    thread_id = row.thread_id
    supersteps = [[StateUpdate(u.values, u.as_node) for u in step.updates]
                  for step in body.supersteps or []]
    async with served.open("threads.update", _state_config(thread_id), user=user) as graph:
        try:
            await graph.abulk_update_state(_state_config(thread_id), supersteps)
        except (ValueError, KeyError, TypeError, InvalidUpdateError) as exc:
            await svc.delete_thread(thread_id)
            raise BadRequest(f"cannot apply the supersteps: {exc}") from None
        values, interrupts, paused = await thread_state(graph, thread_id)
    status = ThreadStatus.INTERRUPTED if paused else ThreadStatus.IDLE
    await svc.store.set_thread_state_cache(thread_id, values, interrupts, status)
    return dataclasses.replace(row, values=values, interrupts=interrupts, status=status)


@router.post("/threads/search")
async def search_threads(body: ThreadSearch, request: Request) -> Response:
    filters = await allowed(request, "threads", "search", body.model_dump(exclude_none=True))
    rows = await service(request).store.search_threads(
        owner=owner_of(request),
        auth_filter=filters,
        metadata_filter=body.metadata,
        values_filter=body.values,
        status=body.status,
        ids=[str(i) for i in body.ids] if body.ids is not None else None,
        limit=body.limit + 1,
        offset=body.offset,
        sort_by=body.sort_by,
        sort_order=body.sort_order,
    )
    rows, headers = page(rows, body.limit, body.offset)
    bodies = [thread_body(r) for r in rows]
    if body.extract:
        for thread in bodies:
            thread["extracted"] = extracted(thread, body.extract)
    if body.select:
        keep = {*body.select, "extracted"}
        bodies = [{k: v for k, v in b.items() if k in keep} for b in bodies]
    return JSON(bodies, headers=headers)


@router.post("/threads/count")
async def count_threads(body: ThreadCount, request: Request) -> Response:
    filters = await allowed(request, "threads", "search", body.model_dump(exclude_none=True))
    return JSON(
        await service(request).store.count_threads(
            metadata_filter=body.metadata, values_filter=body.values, status=body.status,
            owner=owner_of(request), auth_filter=filters,
        )
    )


@router.post("/threads/prune")
async def prune_threads(body: ThreadPrune, request: Request) -> Response:
    svc, owner = service(request), owner_of(request)
    thread_ids = [str(i) for i in body.thread_ids]
    filters = await allowed(request, "threads", "delete",
                            {"thread_ids": thread_ids, "strategy": body.strategy})
    if filters:
        # The handler limits which threads the caller may delete: prune only those.
        rows = [await svc.store.get_thread(t, owner=owner) for t in thread_ids]
        thread_ids = [r.thread_id for r in rows
                      if r is not None and matches(r.metadata, filters)]
    pruned = await thread_ops.prune_threads(svc, thread_ids, body.strategy, owner=owner)
    return JSON({"pruned_count": pruned})


@router.get("/threads/{thread_id}")
async def get_thread(thread_id: UUID, request: Request) -> Response:
    return JSON(thread_body(await _thread(request, thread_id)))


@router.patch("/threads/{thread_id}")
async def patch_thread(thread_id: UUID, body: ThreadPatch, request: Request) -> Response:
    svc = service(request)
    ttl = _ttl(body.ttl)
    value: JSONObject = {"metadata": dict(body.metadata)}
    await _thread(request, thread_id, "update", value)
    row = await svc.store.patch_thread(str(thread_id), value["metadata"], ttl=ttl,
                                       owner=owner_of(request))
    if row is None:
        raise NotFound(f"thread {thread_id} not found")
    _ttl_changed(svc, ttl)
    if request.headers.get("prefer", "").replace(" ", "").lower() == "return=minimal":
        return Response(status_code=204)
    return JSON(thread_body(row))


@router.delete("/threads/{thread_id}", status_code=204)
async def delete_thread(thread_id: UUID, request: Request) -> Response:
    svc = service(request)
    await _thread(request, thread_id, "delete")
    await svc.delete_thread(str(thread_id), owner=owner_of(request))
    return Response(status_code=204)


@router.post("/threads/{thread_id}/copy")
async def copy_thread(thread_id: UUID, request: Request) -> Response:
    """A new thread with this one's metadata, values and checkpoints (no runs)."""
    svc = service(request)
    await _thread(request, thread_id)
    await allowed(request, "threads", "create", {"thread_id": None, "copied_from": str(thread_id)})
    row = await thread_ops.copy_thread(svc, str(thread_id), owner=owner_of(request))
    _ttl_changed(svc, row.ttl)
    return JSON(thread_body(row))


@router.get("/threads/{thread_id}/stream")
async def join_thread_stream(
    thread_id: UUID, request: Request,
    stream_mode: list[str] = Query(["run_modes"]),
    last_event_id: str | None = Header(None, alias="Last-Event-ID"),
) -> Response:
    """Every run on the thread as it happens (see runlane.service.thread_stream)."""
    svc = service(request)
    unknown = [m for m in stream_mode if m not in THREAD_STREAM_MODES]
    if unknown or not stream_mode:
        return error(422, f"stream_mode {unknown or stream_mode!r} is not a thread stream mode; "
                          f"accepted: {list(THREAD_STREAM_MODES)}")
    resume = parse_last_event_id(last_event_id)
    await _thread(request, thread_id)
    return sse(follow_thread(svc, str(thread_id), modes=set(stream_mode),
                             last_event_id=resume, owner=owner_of(request)))


# -------------------------------------------------------------------- state


def _graph(svc: Runlane, thread: Thread) -> ServedGraph | None:
    graph_id = (thread.metadata or {}).get("graph_id")
    return svc.graphs.get(graph_id) if graph_id else None


def _user(request: Request) -> Any:
    """The caller, for a graph factory's ServerRuntime (None with auth off)."""
    return getattr(request.state, "user", None)


def _checkpoint_ref(config: RunnableConfig | JSONObject | None) -> JSONObject | None:
    if not config:
        return None
    c = config.get("configurable", {})
    return {
        "thread_id": c.get("thread_id"),
        "checkpoint_ns": c.get("checkpoint_ns", ""),
        "checkpoint_id": c.get("checkpoint_id"),
        "checkpoint_map": c.get("checkpoint_map"),
    }


def state_body(snapshot: Any) -> JSONObject:
    checkpoint = _checkpoint_ref(snapshot.config)
    parent = _checkpoint_ref(snapshot.parent_config)
    tasks = []
    for task in snapshot.tasks:
        tasks.append(
            {
                "id": task.id,
                "name": task.name,
                "path": list(task.path) if getattr(task, "path", None) else [],
                "error": str(task.error) if task.error else None,
                "interrupts": to_jsonable(list(task.interrupts)),
                "checkpoint": _checkpoint_ref(task.state) if isinstance(task.state, dict) else None,
                "state": state_body(task.state) if task.state is not None
                and not isinstance(task.state, dict) else None,
                "result": to_jsonable(getattr(task, "result", None)),
            }
        )
    return {
        "values": to_jsonable(snapshot.values),
        "next": list(snapshot.next),
        "tasks": tasks,
        "metadata": to_jsonable(snapshot.metadata),
        "created_at": snapshot.created_at,
        "checkpoint": checkpoint,
        "parent_checkpoint": parent,
        "checkpoint_id": checkpoint and checkpoint["checkpoint_id"],
        "parent_checkpoint_id": parent and parent["checkpoint_id"],
        "interrupts": to_jsonable(list(getattr(snapshot, "interrupts", ()) or ())),
    }


def _empty_state(thread_id: str) -> JSONObject:
    return {
        "values": {}, "next": [], "tasks": [], "metadata": None, "created_at": None,
        "checkpoint": {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": None,
                       "checkpoint_map": None},
        "parent_checkpoint": None, "checkpoint_id": None, "parent_checkpoint_id": None,
        "interrupts": [],
    }


def _state_config(thread_id: str, checkpoint: JSONObject | None = None) -> RunnableConfig:
    configurable: JSONObject = {"thread_id": thread_id}
    if checkpoint:
        # A checkpoint named by its id alone is in the root namespace. langgraph's
        # SQLite checkpointer needs checkpoint_ns to write after such a checkpoint
        # (update_state's fork), PostgreSQL's does not: say it for both.
        configurable["checkpoint_ns"] = ""
        configurable.update({k: v for k, v in checkpoint.items()
                             if v is not None and k != "thread_id"})
    return {"configurable": configurable}


async def _get_state(request: Request, thread_id: UUID, checkpoint: JSONObject | None,
                     subgraphs: bool) -> Response:
    svc = service(request)
    thread = await _thread(request, thread_id)
    served = _graph(svc, thread)
    if served is None:
        return JSON(_empty_state(str(thread_id)))
    config = _state_config(str(thread_id), checkpoint)
    async with served.open("threads.read", config, user=_user(request)) as graph:
        snapshot = await graph.aget_state(config, subgraphs=subgraphs)
    if checkpoint and checkpoint.get("checkpoint_id") and snapshot.created_at is None:
        # langgraph answers an unknown checkpoint with an empty snapshot, not an error
        return error(404,
                     f"checkpoint {checkpoint['checkpoint_id']} not found on thread {thread_id}")
    if snapshot.config is None:
        return JSON(_empty_state(str(thread_id)))
    return JSON(state_body(snapshot))


@router.get("/threads/{thread_id}/state")
async def get_state(thread_id: UUID, request: Request, subgraphs: bool = Query(False)) -> Response:
    return await _get_state(request, thread_id, None, subgraphs)


@router.get("/threads/{thread_id}/state/{checkpoint_id}")
async def get_state_at(
    thread_id: UUID, checkpoint_id: UUID, request: Request, subgraphs: bool = Query(False)
) -> Response:
    return await _get_state(request, thread_id, {"checkpoint_id": str(checkpoint_id)}, subgraphs)


@router.post("/threads/{thread_id}/state/checkpoint")
async def get_state_checkpoint(
    thread_id: UUID, body: ThreadStateCheckpoint, request: Request
) -> Response:
    return await _get_state(
        request, thread_id, body.checkpoint.model_dump(exclude_none=True), body.subgraphs
    )


@router.post("/threads/{thread_id}/state")
async def update_state(thread_id: UUID, body: ThreadStateUpdate, request: Request) -> Response:
    svc = service(request)
    thread = await _thread(request, thread_id, "update")
    served = _graph(svc, thread)
    if served is None:
        # 400, as the reference answers it (it is the request, not a state, at fault).
        return error(400, f"thread {thread_id} has no graph yet: no run was made on it and its "
                          "metadata names no graph_id; run it once, or set metadata.graph_id "
                          "to a served graph, before updating its state")
    checkpoint = body.checkpoint.model_dump(exclude_none=True) if body.checkpoint else {}
    if body.checkpoint_id:
        checkpoint["checkpoint_id"] = str(body.checkpoint_id)

    async def change() -> Response:
        # A served graph's checkpointer is runlane's saver (the type also allows a bool).
        saver = served.checkpointer
        if checkpoint.get("checkpoint_id") and isinstance(saver, BaseCheckpointSaver) and (
            await saver.aget_tuple(_state_config(str(thread_id), checkpoint))
        ) is None:
            # langgraph would fork from nothing: the thread's state would be lost
            return error(404, f"checkpoint {checkpoint['checkpoint_id']} not found on thread "
                              f"{thread_id}")
        async with served.open("threads.update", _state_config(str(thread_id), checkpoint),
                               user=_user(request)) as graph:
            try:
                config = await graph.aupdate_state(
                    _state_config(str(thread_id), checkpoint), body.values,
                    as_node=body.as_node
                )
            except (ValueError, KeyError, TypeError, InvalidUpdateError) as exc:
                return error(422, f"cannot update the state: {exc}")
            values, interrupts, paused = await thread_state(graph, str(thread_id))
        await svc.store.set_thread_state_cache(
            str(thread_id), values, interrupts,
            ThreadStatus.INTERRUPTED if paused else ThreadStatus.IDLE,
        )
        return JSON({"checkpoint": _checkpoint_ref(config)})

    # Only between runs: the thread is held while its checkpoints change, so no run
    # starts on it meanwhile (409 if one is active; see docs/run-contract.md).
    return await between_runs(svc.store, str(thread_id), change, owner=owner_of(request),
                              wake=svc.executor.wake)


async def _history(request: Request, thread_id: UUID, body: ThreadHistory) -> Response:
    svc = service(request)
    thread = await _thread(request, thread_id)
    served = _graph(svc, thread)
    if served is None:
        return JSON([])
    checkpoint = body.checkpoint.model_dump(exclude_none=True) if body.checkpoint else None
    before: RunnableConfig | None = None
    if isinstance(body.before, UUID):
        before = _state_config(str(thread_id), {"checkpoint_id": str(body.before)})
    elif body.before is not None:
        before = _state_config(str(thread_id), body.before.model_dump(exclude_none=True))
    states = []
    config = _state_config(str(thread_id), checkpoint)
    async with served.open("threads.read", config, user=_user(request)) as graph:
        async for snapshot in graph.aget_state_history(
            config, filter=body.metadata, before=before, limit=body.limit,
        ):
            states.append(state_body(snapshot))
    return JSON(states)


@router.post("/threads/{thread_id}/history")
async def post_history(thread_id: UUID, body: ThreadHistory, request: Request) -> Response:
    return await _history(request, thread_id, body)


@router.get("/threads/{thread_id}/history")
async def get_history(
    thread_id: UUID, request: Request, limit: int = Query(10, ge=1, le=1000),
    before: UUID | None = Query(None),
) -> Response:
    return await _history(request, thread_id, ThreadHistory(limit=limit, before=before))
