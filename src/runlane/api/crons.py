"""Cron routes: create (on a thread, or stateless), search, count, update, delete."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from starlette.responses import Response

from runlane.api.cron_models import CronCount, CronCreate, CronPatch, CronSearch, ThreadCronCreate
from runlane.api.responses import JSON
from runlane.crons import Crons, CronSpec, cron_body
from runlane.graphs import default_assistant_id
from runlane.owners import owner_of
from runlane.serde import utcnow

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


@router.post("/threads/{thread_id}/runs/crons")
async def create_thread_cron(thread_id: UUID, body: ThreadCronCreate, request: Request) -> Response:
    row = await crons(request).create(str(thread_id), _spec(body), owner=owner_of(request))
    return JSON(cron_body(row))


@router.post("/runs/crons")
async def create_cron(body: CronCreate, request: Request) -> Response:
    row = await crons(request).create(None, _spec(body), owner=owner_of(request))
    return JSON(cron_body(row))


def _assistant_filter(request: Request, assistant_id: str | None) -> str | None:
    """Search by graph id means its default assistant, as everywhere else."""
    if assistant_id is not None and assistant_id in request.app.state.runlane.graphs:
        return default_assistant_id(assistant_id)
    return assistant_id


@router.post("/runs/crons/search")
async def search_crons(body: CronSearch, request: Request) -> Response:
    rows = await crons(request).search(
        owner=owner_of(request),
        assistant_id=_assistant_filter(request, body.assistant_id),
        thread_id=str(body.thread_id) if body.thread_id else None,
        enabled=body.enabled, metadata=body.metadata, limit=body.limit, offset=body.offset,
        sort_by=body.sort_by, sort_order=body.sort_order,
    )
    bodies: list[dict[str, Any]] = [cron_body(r) for r in rows]
    if body.select:
        now = utcnow()
        bodies = [{k: (now if k == "now" else b.get(k)) for k in body.select} for b in bodies]
    return JSON(bodies)


@router.post("/runs/crons/count")
async def count_crons(body: CronCount, request: Request) -> Response:
    return JSON(await crons(request).count(
        owner=owner_of(request),
        assistant_id=_assistant_filter(request, body.assistant_id),
        thread_id=str(body.thread_id) if body.thread_id else None,
        metadata=body.metadata,
    ))


@router.patch("/runs/crons/{cron_id}")
async def update_cron(cron_id: UUID, body: CronPatch, request: Request) -> Response:
    row = await crons(request).update(str(cron_id), body.changes(), owner=owner_of(request))
    return JSON(cron_body(row))


@router.delete("/runs/crons/{cron_id}", status_code=204)
async def delete_cron(cron_id: UUID, request: Request) -> Response:
    await crons(request).delete(str(cron_id), owner=owner_of(request))
    return Response(status_code=204)

