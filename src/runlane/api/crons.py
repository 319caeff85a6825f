"""Cron routes: create (on a thread, or stateless), search, count, update, delete.

Each is the caller's (`owner_of`: another owner's cron or thread is a missing one)
and passes the custom auth's handlers as the LangGraph server runs them:
`crons.create` (may add metadata), `crons.search` (search and count; a filter on the
crons' metadata), `crons.update` and `crons.delete` (a filter the cron must pass,
else 404). A cron creates runs later on its owner's behalf, as the user who created
it (`caller_user`, kept with the cron), so creating one is also creating runs: it
passes `threads.create_run` as a run would (on a thread cron's thread, the handler's
filter too).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from starlette.responses import Response

from runlane.api.access import allowed, caller_user, check_thread, has_handlers
from runlane.api.cron_models import CronCount, CronCreate, CronPatch, CronSearch, ThreadCronCreate
from runlane.api.responses import JSON, page
from runlane.graphs import default_assistant_id
from runlane.owners import owner_of
from runlane.serde import utcnow
from runlane.service.crons import RUN_FIELDS, Crons, CronSpec
from runlane.wire import cron_body

router = APIRouter(tags=["crons"])


def crons(request: Request) -> Crons:
    return request.app.state.runtime.crons


def _spec(body: ThreadCronCreate) -> CronSpec:
    payload = body.run_fields()
    payload["multitask_strategy"] = body.multitask_strategy
    return CronSpec(
        assistant_id=body.assistant_id,
        schedule=body.schedule,
        payload=payload,
        metadata=body.metadata or {},
        end_time=body.end_time,
        enabled=True if body.enabled is None else body.enabled,
        timezone=body.timezone,
        on_run_completed=getattr(body, "on_run_completed", None),
    )


async def _authorized(request: Request, thread_id: str | None, spec: CronSpec) -> CronSpec:
    """The cron as the `crons.create` and `threads.create_run` handlers let it
    through; metadata they add is kept (the cron's, and its runs')."""
    if not has_handlers(request):
        return spec
    value: dict[str, Any] = {
        "payload": spec.payload, "schedule": spec.schedule, "cron_id": None,
        "thread_id": thread_id, "user_id": owner_of(request), "end_time": spec.end_time,
        "metadata": spec.metadata,
    }
    await allowed(request, "crons", "create", value)
    spec.metadata = value.get("metadata") or {}
    run_value: dict[str, Any] = {
        "thread_id": thread_id, "assistant_id": spec.assistant_id,
        "metadata": dict(spec.payload.get("metadata") or {}),
        "multitask_strategy": spec.payload.get("multitask_strategy"),
        "if_not_exists": "reject", "kwargs": spec.payload,
    }
    if thread_id is not None:
        await check_thread(request, thread_id, "create_run", run_value)
    else:
        await allowed(request, "threads", "create_run", run_value)
    if run_value.get("metadata"):
        spec.payload["metadata"] = run_value["metadata"]
    return spec


@router.post("/threads/{thread_id}/runs/crons")
async def create_thread_cron(thread_id: UUID, body: ThreadCronCreate, request: Request) -> Response:
    spec = await _authorized(request, str(thread_id), _spec(body))
    row = await crons(request).create(str(thread_id), spec, owner=owner_of(request),
                                      user=caller_user(request))
    return JSON(cron_body(row))


@router.post("/runs/crons")
async def create_cron(body: CronCreate, request: Request) -> Response:
    spec = await _authorized(request, None, _spec(body))
    row = await crons(request).create(None, spec, owner=owner_of(request),
                                      user=caller_user(request))
    return JSON(cron_body(row))


def _assistant_filter(request: Request, assistant_id: str | None) -> str | None:
    """Search by graph id means its default assistant, as everywhere else."""
    if assistant_id is not None and assistant_id in request.app.state.runlane.graphs:
        return default_assistant_id(assistant_id)
    return assistant_id


@router.post("/runs/crons/search")
async def search_crons(body: CronSearch, request: Request) -> Response:
    filters = await allowed(request, "crons", "search", body.model_dump(exclude_none=True))
    rows = await crons(request).search(
        owner=owner_of(request), auth_filter=filters,
        assistant_id=_assistant_filter(request, body.assistant_id),
        thread_id=str(body.thread_id) if body.thread_id else None,
        enabled=body.enabled, metadata=body.metadata, limit=body.limit + 1,
        offset=body.offset, sort_by=body.sort_by, sort_order=body.sort_order,
    )
    rows, headers = page(rows, body.limit, body.offset)
    bodies: list[dict[str, Any]] = [cron_body(r) for r in rows]
    if body.select:
        now = utcnow()
        bodies = [{k: (now if k == "now" else b.get(k)) for k in body.select} for b in bodies]
    return JSON(bodies, headers=headers)


@router.post("/runs/crons/count")
async def count_crons(body: CronCount, request: Request) -> Response:
    # Counting is searching (as for threads and assistants): the same handler.
    filters = await allowed(request, "crons", "search", body.model_dump(exclude_none=True))
    return JSON(await crons(request).count(
        owner=owner_of(request), auth_filter=filters,
        assistant_id=_assistant_filter(request, body.assistant_id),
        thread_id=str(body.thread_id) if body.thread_id else None,
        metadata=body.metadata,
    ))


@router.patch("/runs/crons/{cron_id}")
async def update_cron(cron_id: UUID, body: CronPatch, request: Request) -> Response:
    changes = body.changes()
    value: dict[str, Any] = {
        "cron_id": cron_id, "schedule": changes.get("schedule"),
        "payload": {k: v for k, v in changes.items() if k in RUN_FIELDS},
        **{k: changes[k] for k in ("metadata", "end_time", "enabled") if k in changes},
    }
    filters = await allowed(request, "crons", "update", value)
    if "metadata" in changes:  # the handler may add to what is stored, as on threads
        changes["metadata"] = value.get("metadata") or {}
    row = await crons(request).update(str(cron_id), changes, owner=owner_of(request),
                                      auth_filter=filters)
    return JSON(cron_body(row))


@router.delete("/runs/crons/{cron_id}", status_code=204)
async def delete_cron(cron_id: UUID, request: Request) -> Response:
    filters = await allowed(request, "crons", "delete", {"cron_id": cron_id})
    await crons(request).delete(str(cron_id), owner=owner_of(request), auth_filter=filters)
    return Response(status_code=204)

