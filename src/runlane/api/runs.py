"""Run routes: create, stream, wait, join, list, get, delete, cancel."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Header, Query, Request
from starlette.responses import Response

from runlane.api.access import allowed, caller_user, check_thread, has_handlers
from runlane.api.chosen_ids import check_new_thread_id
from runlane.api.idempotency import idempotency_of
from runlane.api.models import RunCreate, RunsCancelMany
from runlane.api.responses import JSON, error, sse
from runlane.api.waiting import wait_response
from runlane.contract import (
    STREAM_MODES,
    CancelAction,
    CancelOutcome,
    CancelReason,
    parse_bool,
)
from runlane.errors import NotFound
from runlane.http_config import HttpConfig, configurable_headers
from runlane.owners import matches, owner_of
from runlane.service.runs import Admission, CancelAnswer, Runlane, RunRequest
from runlane.wire import run_body

log = logging.getLogger("runlane.api")
# The fields `select` may name in GET /threads/{id}/runs: the SDK's RunSelectField,
# and runlane's own extra run fields.
RunSelectField = Literal["run_id", "thread_id", "assistant_id", "created_at", "updated_at",
                         "status", "metadata", "kwargs", "multitask_strategy",
                         "cancel_reason", "cancel_action", "stop_reason", "error"]
# The statuses GET /threads/{id}/runs may filter on.
StatusFilter = Literal["pending", "running", "success", "error", "timeout", "interrupted"]
router = APIRouter(tags=["runs"])


def service(request: Request) -> Runlane:
    return request.app.state.runlane


def _run_request(body: RunCreate) -> RunRequest:
    return RunRequest(
        assistant_id=body.assistant_id,
        input=body.input,
        command=body.command.model_dump(exclude_none=True) if body.command else None,
        config=body.config,
        context=body.context,
        metadata=body.metadata,
        stream_mode=body.modes(),
        stream_subgraphs=body.stream_subgraphs,
        interrupt_before=body.interrupt_before,
        interrupt_after=body.interrupt_after,
        checkpoint=body.checkpoint.model_dump(exclude_none=True) if body.checkpoint else None,
        checkpoint_id=str(body.checkpoint_id) if body.checkpoint_id else None,
        multitask_strategy=body.multitask_strategy,
        if_not_exists=body.if_not_exists,
        on_completion=body.on_completion,
        on_disconnect=body.on_disconnect,
        durability=body.durability,
        webhook=body.webhook,
        after_seconds=body.after_seconds,
        feedback_keys=body.feedback_keys,
        stream_resumable=body.stream_resumable,
    )


async def _create(request: Request, thread_id: str | None, body: RunCreate) -> Admission:
    """Create the run as the caller: on its own thread, after the `threads.create_run`
    handler (which may add metadata, or filter which threads it may run on). With an
    Idempotency-Key another request already used: the run that request created."""
    idempotency = idempotency_of(request, lambda: body.model_dump(mode="json"))
    run_request = await _authorized(request, thread_id, body)
    if thread_id is not None and body.if_not_exists == "create":
        await check_new_thread_id(request, thread_id, by_run=True)
    return await service(request).admit_run(thread_id, run_request, owner=owner_of(request),
                                            idempotency=idempotency)


async def create_as_caller(request: Request, thread_id: str, body: RunCreate) -> Admission:
    """A run on `thread_id` created exactly as POST /threads/{thread_id}/runs creates
    one, for the v2 protocol's run.start and input.respond (api/protocol.py)."""
    return await _create(request, thread_id, body)


async def admit_as_caller(request: Request, body: RunCreate) -> Admission:
    """A stateless run created as POST /runs/wait creates one (the caller's owner, the
    `threads.create_run` handler), for another protocol's call (MCP `tools/call`).
    Without an Idempotency-Key: such a header would cover the protocol's whole
    connection, not one call."""
    run_request = await _authorized(request, None, body)
    return await service(request).admit_run(None, run_request, owner=owner_of(request))


async def _authorized(request: Request, thread_id: str | None, body: RunCreate) -> RunRequest:
    """The run request as the `threads.create_run` handler lets it through."""
    run_request = _run_request(body)
    # Who asks and under which request id: the run's graph sees both in its config
    # (langgraph_auth_user*, langgraph_request_id), as on the reference server.
    run_request.user = caller_user(request)
    run_request.request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
    run_request.start_time_ms = int(time.time() * 1000)
    http: HttpConfig = request.app.state.http
    # The request headers langgraph.json's http.configurable_headers lets through reach
    # the graph's config["configurable"], over the body's keys, as on the reference.
    run_request.headers = configurable_headers(request.headers.items(),
                                               http.configurable_headers)
    if run_request.webhook is not None and http.disables("webhooks"):
        # Accepted and never called, as the reference does under http.disable_webhooks.
        log.info("webhooks are disabled (http.disable_webhooks): run's webhook %s not "
                 "called", run_request.webhook)
        run_request.webhook = None
    if not has_handlers(request):
        return run_request
    value: dict[str, Any] = {
        "thread_id": thread_id, "assistant_id": body.assistant_id,
        "metadata": run_request.metadata or {}, "multitask_strategy": body.multitask_strategy,
        "if_not_exists": body.if_not_exists, "kwargs": body.model_dump(exclude_none=True),
    }
    if thread_id is not None:
        await check_thread_for_run(request, thread_id, value)
    else:
        await allowed(request, "threads", "create_run", value)
    run_request.metadata = value.get("metadata") or {}
    return run_request


async def check_thread_for_run(request: Request, thread_id: str, value: dict[str, Any]) -> None:
    """A run on an existing thread must pass the handler's filter on that thread; a
    thread about to be created (if_not_exists=create) has nothing to filter yet."""
    filters = await allowed(request, "threads", "create_run", value)
    if filters is None:
        return
    thread = await service(request).store.get_thread(thread_id, owner=owner_of(request))
    if thread is not None and not matches(thread.metadata, filters):
        raise NotFound(f"thread {thread_id} not found")


def _locations(thread_id: str, run_id: str, stateless: bool, tail: str) -> dict[str, str]:
    base = f"/runs/{run_id}" if stateless else f"/threads/{thread_id}/runs/{run_id}"
    return {"Location": f"/threads/{thread_id}/runs/{run_id}/{tail}", "Content-Location": base}


# ------------------------------------------------------------------ creating


@router.post("/threads/{thread_id}/runs")
async def create_run(thread_id: UUID, body: RunCreate, request: Request) -> Response:
    run = (await _create(request, str(thread_id), body)).run
    location = f"/threads/{thread_id}/runs/{run.run_id}"
    return JSON(run_body(run), headers={"Content-Location": location})


@router.post("/runs")
async def create_stateless_run(body: RunCreate, request: Request) -> Response:
    run = (await _create(request, None, body)).run
    return JSON(run_body(run), headers={"Content-Location": f"/runs/{run.run_id}"})


# How many runs one /runs/batch call may create.
MAX_BATCH = 1000


@router.post("/runs/batch")
async def create_stateless_batch(
    body: Annotated[list[RunCreate], Body(max_length=MAX_BATCH)], request: Request
) -> Response:
    """Many stateless background runs in one call, all or none: every item is
    validated (shape, then meaning: assistant, graph) before any is created, and
    they are admitted in one transaction. An invalid item answers its error (422 or
    404) naming the item's index (BatchItemError), and nothing is created. An
    Idempotency-Key covers the whole batch (the batch is one creation)."""
    idempotency = idempotency_of(
        request, lambda: [item.model_dump(mode="json") for item in body])
    runs = await service(request).create_stateless_batch(
        [await _authorized(request, None, item) for item in body], owner=owner_of(request),
        idempotency=idempotency)
    return JSON([run_body(run) for run in runs])


@router.post("/threads/{thread_id}/runs/stream")
async def stream_new_run(thread_id: UUID, body: RunCreate, request: Request) -> Response:
    return await _stream_new(request, str(thread_id), body)


@router.post("/runs/stream")
async def stream_new_stateless_run(body: RunCreate, request: Request) -> Response:
    return await _stream_new(request, None, body)


async def _stream_new(request: Request, thread_id: str | None, body: RunCreate) -> Response:
    svc = service(request)
    admission = await _create(request, thread_id, body)
    run = admission.run
    # A retry (Idempotency-Key) joins the original run's stream: from the start, or
    # after the Last-Event-ID it carries, as a join would.
    after = run_event_after(request.headers.get("Last-Event-ID")) if admission.replayed else 0
    frames = await svc.stream_run(run.thread_id, run.run_id, last_event_id=after,
                                  admitted=not admission.replayed)
    if body.on_disconnect == "cancel":
        frames = _cancel_on_disconnect(svc, run.thread_id, run.run_id, frames)
    return sse(frames, _locations(run.thread_id, run.run_id, thread_id is None, "stream"))


@router.post("/threads/{thread_id}/runs/wait")
async def wait_new_run(thread_id: UUID, body: RunCreate, request: Request) -> Response:
    return await _wait_new(request, str(thread_id), body)


@router.post("/runs/wait")
async def wait_new_stateless_run(body: RunCreate, request: Request) -> Response:
    return await _wait_new(request, None, body)


async def _wait_new(request: Request, thread_id: str | None, body: RunCreate) -> Response:
    svc = service(request)
    run = (await _create(request, thread_id, body)).run  # a retry waits for the original
    on_gone = None
    if body.on_disconnect == "cancel":
        async def on_gone() -> None:
            await svc.cancel_run(run.thread_id, run.run_id, action=CancelAction.INTERRUPT,
                                 wait=False, reason=CancelReason.DISCONNECT)
    return await wait_response(
        request, svc.run_result(run.thread_id, run.run_id),
        headers=_locations(run.thread_id, run.run_id, thread_id is None, "join"),
        interval=_keepalive(request), on_gone=on_gone)


def _keepalive(request: Request) -> float:
    return float(request.app.state.settings.wait_keepalive)


def _cancel_on_disconnect(
    svc: Runlane, thread_id: str, run_id: str, frames: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    async def guarded() -> AsyncIterator[bytes]:
        finished = False
        try:
            async for chunk in frames:
                yield chunk
            finished = True
        finally:
            if not finished:
                # The client went away: cancel through the same contract as a user.
                asyncio.get_running_loop().create_task(
                    svc.cancel_run(thread_id, run_id, action=CancelAction.INTERRUPT,
                                   wait=False, reason=CancelReason.DISCONNECT)
                )

    return guarded()


# ------------------------------------------------------------------- reading


@router.get("/threads/{thread_id}/runs")
async def list_runs(
    thread_id: UUID,
    request: Request,
    limit: int = Query(10, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=2**63 - 1),
    status: StatusFilter | None = Query(None),
    select: list[RunSelectField] | None = Query(None),
) -> Response:
    svc = service(request)
    owner = owner_of(request)
    await check_thread(request, str(thread_id), "read", {"thread_id": thread_id})
    if await svc.store.get_thread(str(thread_id), owner=owner) is None:
        return error(404, f"thread {thread_id} not found")
    rows = await svc.store.list_runs(str(thread_id), limit=limit, offset=offset, status=status,
                                     owner=owner)
    bodies = [run_body(r) for r in rows]
    if select:
        bodies = [{k: b.get(k) for k in select} for b in bodies]
    return JSON(bodies)


@router.get("/threads/{thread_id}/runs/{run_id}")
async def get_run(thread_id: UUID, run_id: UUID, request: Request) -> Response:
    await check_thread(request, str(thread_id), "read", {"thread_id": thread_id, "run_id": run_id})
    return JSON(run_body(await service(request).get_run(str(thread_id), str(run_id),
                                                        owner=owner_of(request))))


@router.delete("/threads/{thread_id}/runs/{run_id}", status_code=204)
async def delete_run(thread_id: UUID, run_id: UUID, request: Request) -> Response:
    await check_thread(request, str(thread_id), "delete",
                       {"thread_id": thread_id, "run_id": run_id})
    await service(request).delete_run(str(thread_id), str(run_id), owner=owner_of(request))
    return Response(status_code=204)


@router.get("/threads/{thread_id}/runs/{run_id}/join")
async def join_run(thread_id: UUID, run_id: UUID, request: Request) -> Response:
    svc = service(request)
    owner = owner_of(request)
    await check_thread(request, str(thread_id), "read", {"thread_id": thread_id, "run_id": run_id})
    if await svc.store.get_run(str(thread_id), str(run_id), owner=owner) is None and (
        await svc.store.get_tombstone(str(thread_id), str(run_id), owner=owner)
    ) is None:
        return error(404, f"run {run_id} not found on thread {thread_id}")
    return await wait_response(
        request, svc.run_result(str(thread_id), str(run_id), owner=owner),
        headers=_locations(str(thread_id), str(run_id), False, "join"),
        interval=_keepalive(request))


@router.get("/threads/{thread_id}/runs/{run_id}/stream")
async def join_stream(
    thread_id: UUID,
    run_id: UUID,
    request: Request,
    stream_mode: list[str] | None = Query(None),
    cancel_on_disconnect: str = Query("false"),
    last_event_id: str | None = Header(None, alias="Last-Event-ID"),
) -> Response:
    svc = service(request)
    try:
        cancel = parse_bool(cancel_on_disconnect)
    except ValueError as exc:
        return error(422, f"cancel_on_disconnect: {exc}")
    after = run_event_after(last_event_id)
    # The SDK's join_stream() without a stream_mode sends `?stream_mode=` (empty): all.
    stream_mode = [m for m in stream_mode or [] if m]
    bad = [m for m in stream_mode if m not in STREAM_MODES]
    if bad:
        return error(422, f"unknown stream_mode {bad}; accepted: {sorted(STREAM_MODES)}")
    owner = owner_of(request)
    await check_thread(request, str(thread_id), "read", {"thread_id": thread_id, "run_id": run_id})
    run = await svc.store.get_run(str(thread_id), str(run_id), owner=owner)
    if run is None:
        return error(404, f"run {run_id} not found on thread {thread_id}")
    frames = await svc.stream_run(str(thread_id), str(run_id), last_event_id=after,
                                  stream_mode=stream_mode or None, owner=owner)
    if cancel:
        frames = _cancel_on_disconnect(svc, str(thread_id), str(run_id), frames)
    return sse(frames, _locations(str(thread_id), str(run_id), False, "stream"))


def run_event_after(last_event_id: str | None) -> int:
    """The event a run stream resumes after: runlane's ids are 1, 2, 3 ... An id it
    did not issue (the JS SDK's "-1", another server's "1733456789012-0", anything
    else) replays from the first event, as the reference replays: losing events is
    worse than seeing some twice."""
    value = (last_event_id or "").strip()
    if value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return 0


# ------------------------------------------------------------------- cancel

_UNKNOWN_ACTION = "action: unknown action {!r}; accepted: 'interrupt', 'rollback'"


@router.post("/threads/{thread_id}/runs/{run_id}/cancel")
async def cancel_run(
    thread_id: str,
    run_id: str,
    request: Request,
    wait: str = Query("false"),
    action: str = Query("interrupt"),
) -> Response:
    """The run contract's cancel: parse, ask the authorization handler, then one call
    to the service, whose answer (outcome, status code, run) becomes the response."""
    svc = service(request)
    problems = _validate_ids(thread_id=thread_id, run_id=run_id)
    try:
        wait_flag = parse_bool(wait)
    except ValueError as exc:
        problems.append(f"wait: {exc}")
        wait_flag = False
    try:
        cancel_action = CancelAction(action)
    except ValueError:
        problems.append(_UNKNOWN_ACTION.format(action))
        cancel_action = CancelAction.INTERRUPT
    if problems:
        svc.refuse_cancel(problems)
    filters = await allowed(request, "threads", "update",
                            {"thread_id": thread_id, "run_id": run_id, "action": action})
    answer = await svc.cancel_run(thread_id, run_id, action=cancel_action, wait=wait_flag,
                                  owner=owner_of(request), auth_filter=filters)
    return _cancel_response(answer, thread_id, run_id)


def _cancel_response(answer: CancelAnswer, thread_id: str, run_id: str) -> Response:
    """A cancel's outcome as the contract answers it, with the status the service
    computed: 404, 409 with the finished run, or the run and its cancel_outcome."""
    if answer.outcome is CancelOutcome.NOT_FOUND:
        return error(answer.status_code, f"run {run_id} not found on thread {thread_id}")
    assert answer.run is not None  # every other outcome found the run (or its tombstone)
    if answer.outcome is CancelOutcome.TOO_LATE:
        status = answer.run.status.value
        return error(answer.status_code,
                     f"run {run_id} already finished with status {status!r}; nothing to cancel",
                     status=status, run=run_body(answer.run))
    return JSON({**run_body(answer.run), "cancel_outcome": answer.outcome.value},
                status_code=answer.status_code)


def _validate_ids(**ids: str) -> list[str]:
    problems = []
    for name, value in ids.items():
        try:
            UUID(value)
        except ValueError:
            problems.append(f"{name}: {value!r} is not a UUID")
    return problems


@router.post("/runs/cancel", status_code=204)
async def cancel_many(
    body: RunsCancelMany, request: Request, action: str = Query("interrupt")
) -> Response:
    try:
        cancel_action = CancelAction(action)
    except ValueError:
        return error(422, _UNKNOWN_ACTION.format(action))
    if body.run_ids is not None and body.thread_id is None:
        return error(422, "run_ids requires thread_id")
    if body.run_ids is None and body.status is None and body.thread_id is None:
        return error(422, "give thread_id (with optional run_ids) or status")
    if body.run_ids is not None and body.status is not None:
        return error(422, "give either run_ids or status, not both")
    filters = await allowed(request, "threads", "update", {
        "thread_id": body.thread_id, "run_ids": body.run_ids, "status": body.status,
        "action": action})
    if body.thread_id is None and filters is not None:
        # Bulk cancel by status across threads: which threads a handler's filter
        # admits is not something this route can check run by run yet.
        return error(422, "cancelling by status across threads is not supported with "
                          "authorization filters; give thread_id")
    await service(request).cancel_many(
        thread_id=str(body.thread_id) if body.thread_id else None,
        run_ids=[str(r) for r in body.run_ids] if body.run_ids is not None else None,
        status=None if body.status in (None, "all") else body.status,
        action=cancel_action,
        owner=owner_of(request),
        auth_filter=filters,
    )
    return Response(status_code=204)
