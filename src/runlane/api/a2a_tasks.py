"""A2A tasks ARE runs: the a2a-sdk request handler whose every answer comes from the
run record in runlane's store (no task store of its own), so `tasks/get` answers the
same on every worker and after a restart, and `tasks/cancel` is the run contract's
cancel, in A2A's terms:

- a `pending` or `running` run (a cancel recorded by this request or an earlier
  one): the task, `canceled`, once the run is `interrupted`;
- an `interrupted` run: the task, `canceled`;
- a `success`, `error` or `timeout` run: TaskNotCancelableError naming the task's state;
- no such run, another owner's, another assistant's, an id runlane never issued:
  TaskNotFoundError.

Runs are created, cancelled, awaited and streamed through the same service calls and
authorization checks as the REST routes (api/runs.py), so every rule of the run
contract holds here too.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import orjson
from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event
from a2a.server.request_handlers.request_handler import RequestHandler
from a2a.types import (
    ContentTypeNotSupportedError,
    DeleteTaskPushNotificationConfigParams,
    GetTaskPushNotificationConfigParams,
    InternalError,
    InvalidParamsError,
    InvalidRequestError,
    ListTaskPushNotificationConfigParams,
    Message,
    MessageSendParams,
    PushNotificationNotSupportedError,
    Task,
    TaskArtifactUpdateEvent,
    TaskIdParams,
    TaskNotCancelableError,
    TaskNotFoundError,
    TaskPushNotificationConfig,
    TaskQueryParams,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
    UnsupportedOperationError,
)
from a2a.utils.errors import ServerError
from starlette.requests import Request

from runlane.api import a2a_wire as wire
from runlane.api.access import allowed, check_thread
from runlane.api.models import RunCreate
from runlane.api.runs import _create as create_as_caller
from runlane.contract import CancelAction, CancelOutcome, RunStatus, ThreadStatus
from runlane.errors import NotFound, RunlaneError
from runlane.owners import owner_of
from runlane.records import Assistant, Run
from runlane.service.runs import Runlane

# The run's events a message/stream turns into task updates.
STREAM_MODES = ["values", "messages-tuple"]


def _request(context: ServerCallContext | None) -> Request:
    assert context is not None  # the app's context builder always gives one
    request: Request = context.state["request"]
    return request


def _svc(request: Request) -> Runlane:
    svc: Runlane = request.app.state.runlane
    return svc


def _not_found(task_id: str) -> ServerError:
    return ServerError(TaskNotFoundError(message=f"task {task_id!r} not found"))


def _refused(exc: RunlaneError) -> ServerError:
    """What runlane refused (a 4xx of the REST API: not found, a conflict, an
    authorization handler's refusal) as a JSON-RPC error with the same words; an
    unavailable database as an internal error that says so."""
    if exc.status_code >= 500:
        return ServerError(InternalError(message=exc.detail))
    if exc.status_code in (401, 403):
        return ServerError(InvalidRequestError(message=exc.detail))
    return ServerError(InvalidParamsError(message=exc.detail))


@contextlib.contextmanager
def _as_jsonrpc() -> Iterator[None]:
    """Every RunlaneError a method meets becomes its JSON-RPC error (the SDK would
    answer anything but a ServerError as an internal error)."""
    try:
        yield
    except RunlaneError as exc:
        raise _refused(exc) from None


class RunTasks(RequestHandler):
    """One instance serves every assistant: the assistant, the caller and the service
    come with each call (the request in `context.state`)."""

    async def _assistant(self, request: Request) -> Assistant:
        """The endpoint's assistant, which its route resolved (and the caller may read)."""
        assistant: Assistant = request.state.a2a_assistant
        return assistant

    async def _run(self, request: Request, task_id: str, action: str) -> tuple[Run, wire.TaskRef]:
        """The run a task id names, if the caller may `action` its thread and it is a
        run of this endpoint's assistant; else TaskNotFoundError."""
        assistant = await self._assistant(request)  # an unknown agent first, for any id
        ref = wire.parse_task_id(task_id)
        if ref is None:
            raise _not_found(task_id)
        try:
            await check_thread(request, ref.thread_id, action,
                               {"thread_id": ref.thread_id, "run_id": ref.run_id})
            run = await _svc(request).get_run(ref.thread_id, ref.run_id,
                                              owner=owner_of(request))
        except NotFound:
            raise _not_found(task_id) from None
        if run.assistant_id != assistant.assistant_id:
            raise _not_found(task_id)
        return run, ref

    async def _waits_for_input(self, request: Request, run: Run) -> bool:
        """Whether a `success` run left its thread paused at an interrupt(), and is
        still the thread's last run (a later run answered or replaced the pause)."""
        if run.status is not RunStatus.SUCCESS:
            return False
        store = _svc(request).store
        thread = await store.get_thread(run.thread_id, owner=owner_of(request))
        if thread is None or thread.status is not ThreadStatus.INTERRUPTED:
            return False
        latest = await store.list_runs(run.thread_id, limit=1, offset=0, status=None,
                                       owner=owner_of(request))
        return bool(latest) and latest[0].run_id == run.run_id

    async def _task(self, request: Request, run: Run, *,
                    history: list[Message] | None = None) -> Task:
        """The task a run is now; a finished run's answer (or what a paused one asks
        for) as its artifact, when the thread still holds it (the run is its last)."""
        waits = await self._waits_for_input(request, run)
        state = wire.task_state(run, waits_for_input=waits)
        artifacts = None
        if state in (TaskState.completed, TaskState.input_required):
            thread = await _svc(request).store.get_thread(run.thread_id,
                                                          owner=owner_of(request))
            latest = await _svc(request).store.list_runs(
                run.thread_id, limit=1, offset=0, status=None, owner=owner_of(request))
            if thread is not None and latest and latest[0].run_id == run.run_id:
                if waits:
                    interrupts = [i for group in (thread.interrupts or {}).values()
                                  for i in group]
                    artifacts = [wire.interrupt_artifact(interrupts)]
                else:
                    artifacts = [wire.response_artifact(thread.values, run.assistant_id)]
        return wire.task_of(run, state, artifacts=artifacts, history=history)

    # ------------------------------------------------------------------ reading

    async def on_get_task(self, params: TaskQueryParams,
                          context: ServerCallContext | None = None) -> Task | None:
        request = _request(context)
        with _as_jsonrpc():
            run, _ = await self._run(request, params.id, "read")
            return await self._task(request, run)

    # ------------------------------------------------------------------- cancel

    async def on_cancel_task(self, params: TaskIdParams,
                             context: ServerCallContext | None = None) -> Task | None:
        """The run contract's cancel (action=interrupt, wait=true): one compare-and-set,
        repeated cancels answer the same cancelled task and stop the run once, and the
        answer is the run's final stored status."""
        request = _request(context)
        with _as_jsonrpc():
            _, ref = await self._run(request, params.id, "read")
            filters = await allowed(request, "threads", "update",
                                    {"thread_id": ref.thread_id, "run_id": ref.run_id,
                                     "action": CancelAction.INTERRUPT.value})
            answer = await _svc(request).cancel_run(
                ref.thread_id, ref.run_id, action=CancelAction.INTERRUPT, wait=True,
                owner=owner_of(request), auth_filter=filters)
            if answer.outcome is CancelOutcome.NOT_FOUND or answer.run is None:
                raise _not_found(params.id)
            final = answer.run
            if answer.outcome is CancelOutcome.TOO_LATE:
                state = wire.task_state(final, waits_for_input=await self._waits_for_input(
                    request, final))
                raise ServerError(TaskNotCancelableError(
                    message=f"task {params.id!r} is already {state.value} (its run ended "
                            f"{final.status.value!r}); nothing to cancel"))
            return await self._task(request, final)

    # ------------------------------------------------------------------ sending

    async def _start(self, request: Request, params: MessageSendParams,
                     stream_mode: list[str]) -> tuple[Run, Message]:
        """Create the run a message asks for: on its context's thread (created if new),
        or resuming the input-required task it names."""
        message = params.message
        assistant = await self._assistant(request)
        command = None
        thread_id = message.context_id
        if message.task_id is not None:
            run, ref = await self._run(request, message.task_id, "read")
            if thread_id is not None and thread_id != ref.thread_id:
                raise _not_found(message.task_id)
            if wire.task_state(run, waits_for_input=await self._waits_for_input(
                    request, run)) is not TaskState.input_required:
                raise ServerError(UnsupportedOperationError(
                    message=f"task {message.task_id!r} is not waiting for input; send the "
                            "message without taskId (same contextId) to start a new task"))
            thread_id = ref.thread_id
            command = {"resume": wire.resume_value(message)}
        elif thread_id is not None:
            try:
                thread_id = str(uuid.UUID(thread_id))
            except ValueError:
                raise ServerError(InvalidParamsError(
                    message=f"contextId {thread_id!r} is not one runlane issued: contexts "
                            "are thread ids (UUIDs); omit it to start a new one")) from None
        else:
            thread_id = str(uuid.uuid4())
        graph_input = None
        if command is None:
            try:
                graph_input = wire.graph_input(message)
            except ValueError as exc:
                raise ServerError(ContentTypeNotSupportedError(message=str(exc))) from None
        body = RunCreate.model_validate({
            "assistant_id": assistant.assistant_id, "input": graph_input,
            "command": command, "if_not_exists": "create", "stream_mode": stream_mode,
            "metadata": {"a2a": {"message_id": message.message_id}},
        })
        run = (await create_as_caller(request, thread_id, body)).run
        ref = wire.TaskRef(run.thread_id, run.run_id)
        sent = message.model_copy(update={"task_id": ref.task_id, "context_id": run.thread_id})
        return run, sent

    async def on_message_send(self, params: MessageSendParams,
                              context: ServerCallContext | None = None) -> Task | Message:
        """Create the run; with `blocking` (the default) answer once it is terminal,
        else at once with the task as it stands."""
        request = _request(context)
        with _as_jsonrpc():
            run, sent = await self._start(request, params, ["values"])
            svc = _svc(request)
            if params.configuration is None or params.configuration.blocking is not False:
                final = await svc.await_terminal(run.thread_id, run.run_id)
                run = final or run
            return await self._task(request, run, history=[sent])

    async def on_message_send_stream(
        self, params: MessageSendParams, context: ServerCallContext | None = None,
    ) -> AsyncGenerator[Event]:
        """The task (submitted), `working`, the agent's words as they stream (working
        updates carrying a message each), then the answer as an artifact and the final
        state: the run's stored status once it is terminal."""
        request = _request(context)
        with _as_jsonrpc():
            run, sent = await self._start(request, params, STREAM_MODES)
            ref = wire.TaskRef(run.thread_id, run.run_id)
            svc = _svc(request)
            yield wire.task_of(run, TaskState.submitted, history=[sent])
            yield TaskStatusUpdateEvent(task_id=ref.task_id, context_id=ref.thread_id,
                                        status=TaskStatus(state=TaskState.working), final=False)
            frames = await svc.stream_run(run.thread_id, run.run_id, owner=owner_of(request))
            async for event, data in _sse_events(frames):
                text = _token_text(event, data)
                if text:
                    yield TaskStatusUpdateEvent(
                        task_id=ref.task_id, context_id=ref.thread_id, final=False,
                        status=TaskStatus(state=TaskState.working,
                                          message=wire.agent_message(text, ref)))
            final = await svc.await_terminal(run.thread_id, run.run_id) or run
            task = await self._task(request, final)
            for artifact in task.artifacts or []:
                yield TaskArtifactUpdateEvent(task_id=ref.task_id, context_id=ref.thread_id,
                                              artifact=artifact, append=False, last_chunk=True)
            yield TaskStatusUpdateEvent(task_id=ref.task_id, context_id=ref.thread_id,
                                        status=task.status, final=True,
                                        metadata={"run_status": final.status.value})

    # ----------------------------------------------- what runlane does not offer

    async def on_resubscribe_to_task(
        self, params: TaskIdParams, context: ServerCallContext | None = None,
    ) -> AsyncGenerator[Event]:
        raise ServerError(UnsupportedOperationError(
            message="tasks/resubscribe is not supported; poll tasks/get"))
        yield  # an async generator, as the interface declares  # pragma: no cover

    async def on_set_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext | None = None,
    ) -> TaskPushNotificationConfig:
        raise ServerError(PushNotificationNotSupportedError())

    async def on_get_task_push_notification_config(
        self, params: TaskIdParams | GetTaskPushNotificationConfigParams,
        context: ServerCallContext | None = None,
    ) -> TaskPushNotificationConfig:
        raise ServerError(PushNotificationNotSupportedError())

    async def on_list_task_push_notification_config(
        self, params: ListTaskPushNotificationConfigParams,
        context: ServerCallContext | None = None,
    ) -> list[TaskPushNotificationConfig]:
        raise ServerError(PushNotificationNotSupportedError())

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigParams,
        context: ServerCallContext | None = None,
    ) -> None:
        raise ServerError(PushNotificationNotSupportedError())


async def _sse_events(frames: Any) -> AsyncGenerator[tuple[str, Any]]:
    """(event, data) of a run's SSE frames, however the bytes arrive chunked."""
    buffer = b""
    async for chunk in frames:
        buffer += chunk
        while b"\n\n" in buffer:
            frame, buffer = buffer.split(b"\n\n", 1)
            event, data = "", b""
            for line in frame.split(b"\n"):
                if line.startswith(b"event: "):
                    event = line[7:].decode()
                elif line.startswith(b"data: "):
                    data = line[6:]
            if event and data:
                try:
                    yield event, orjson.loads(data)
                except orjson.JSONDecodeError:
                    continue  # not an event of the run's graph: nothing to relay


def _token_text(event: str, data: Any) -> str:
    """The text of an AI message chunk from a `messages` (messages-tuple) event."""
    if event.split("|")[0] != "messages" or not isinstance(data, list) or not data:
        return ""
    chunk = data[0]
    if not isinstance(chunk, dict) or chunk.get("type") not in ("AIMessageChunk", "ai"):
        return ""
    return wire.text_of(chunk.get("content"))

