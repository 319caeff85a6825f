"""Running one run's graph: astream (or astream_events) with the run's config,
publishing every chunk into the run's event log, and noting what the stream showed
(`RunProgress`) so that settling it can spare reading the state back."""

from __future__ import annotations

import logging
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langgraph.pregel import Pregel
from langgraph.types import Command

from runlane import run_context
from runlane.errors import RunFenced
from runlane.executor.debug_mode import debug_event
from runlane.executor.messages_mode import MessageAccumulator
from runlane.graph_factories import ServedGraph
from runlane.records import Run
from runlane.serde import JSONObject, to_jsonable
from runlane.store import Store
from runlane.store.checkpoints import CheckpointBackend, RestorePoint
from runlane.store.items import ItemStore
from runlane.streams.local import RunEventLog

log = logging.getLogger("runlane.executor")

# langgraph marks its protocol stream (astream_events version "v3") experimental with a
# warning per run: the v2 protocol's runs use it on purpose, as the reference does.
warnings.filterwarnings("ignore", message="The v3 streaming protocol on Pregel is experimental")


# The langgraph stream mode behind each stream mode a client may ask for (the names
# and their SSE events: contract.STREAM_MODES).
LANGGRAPH_MODES: dict[str, str] = {
    "values": "values",
    "updates": "updates",
    "custom": "custom",
    "debug": "debug",
    "tasks": "tasks",
    "checkpoints": "checkpoints",
    "messages-tuple": "messages",
    "messages": "messages",
    "events": "events",
}


class RunProgress:
    """What the executor learned from a run's own stream."""

    __slots__ = ("graph", "last_values", "restore", "saw_interrupt", "saw_values")

    def __init__(self) -> None:
        # The graph the run executed (a factory's is made for the run): settling
        # reads the thread's state with it.
        self.graph: Pregel | None = None
        self.restore: RestorePoint | None = None
        self.last_values: Any = None
        self.saw_values = False
        self.saw_interrupt = False

    def saw(self, values: Any) -> None:
        if isinstance(values, dict) and "__interrupt__" in values:
            self.saw_interrupt = True
        else:
            self.last_values = values  # converted once, when the run ends
            self.saw_values = True

    def knows_final_state(self, run: Run, graph: Pregel | None) -> bool:
        """True when the last streamed values are the thread's final state and the
        graph did not pause (no interrupt(), no interrupt_before/after anywhere)."""
        kwargs = run.kwargs
        return (
            graph is not None
            and self.saw_values
            and not self.saw_interrupt
            and not kwargs.get("interrupt_before")
            and not kwargs.get("interrupt_after")
            and not graph.interrupt_before_nodes
            and not graph.interrupt_after_nodes
            and _streams_whole_state(graph)
        )


def _streams_whole_state(graph: Pregel) -> bool:
    """Whether the streamed values (limited to the output schema) are the whole state:
    if the output schema leaves keys out, the thread's values are read back instead."""

    def names(channels: str | Sequence[str]) -> set[str]:
        return {channels} if isinstance(channels, str) else set(channels)

    return names(graph.output_channels) == names(graph.stream_channels_asis)


class GraphRunner:
    """Executes runs' graphs (as the graph task the supervisor waits for)."""

    def __init__(self, *, graphs: dict[str, ServedGraph], checkpoints: CheckpointBackend,
                 item_store: ItemStore, store: Store, worker_id: str) -> None:
        self.graphs = graphs
        self.checkpoints = checkpoints
        # Restore points are kept in the store (store/restore_points.py), fenced by
        # this worker's id.
        self.store = store
        self.worker_id = worker_id
        # The store items graphs see: a run made on behalf of an owner gets the
        # owner's view of them.
        self.item_store = item_store
        # A compiled graph's context schema, computed once (a factory's graph may
        # differ from run to run: asked each time).
        self._context_schemas: dict[str, Any] = {}

    async def execute(self, run: Run, event_log: RunEventLog, progress: RunProgress) -> None:
        served = self.graphs.get(run.graph_id)
        if served is None:
            raise LookupError(f"graph {run.graph_id!r} is not served by this server")
        config = build_config(run)
        configurable = config["configurable"]
        given = bool(configurable.pop("__context_provided__", False))
        user = configurable.get("langgraph_auth_user")
        if isinstance(user, Mapping):
            user = configurable["langgraph_auth_user"] = run_context.RunUser(user)
        context = run.kwargs.get("context") or {}
        # The run's nodes see only its owner's store items (see owner_scope).
        store = self.item_store.for_owner(run.owner) if run.owner is not None else None
        async with served.open("threads.create_run", config, user=user, context=context,
                               store=store) as graph:
            progress.graph = graph
            if context:
                context = run_context.for_schema(
                    context, self._context_schema(served, graph), configurable, given)
            await self._stream(run, graph, config, context, event_log, progress,
                               served.stream_transformers)

    def _context_schema(self, served: ServedGraph, graph: Pregel) -> Any:
        if not served.is_factory and served.graph_id in self._context_schemas:
            return self._context_schemas[served.graph_id]
        try:
            schema = graph.get_context_jsonschema()
        except Exception as exc:  # noqa: BLE001 - as the reference: unreadable, no filter
            log.debug("graph %s: no context schema (%s); context not filtered",
                      served.graph_id, exc)
            schema = None
        if not served.is_factory:
            self._context_schemas[served.graph_id] = schema
        return schema

    async def _stream(self, run: Run, graph: Pregel, config: JSONObject, context: JSONObject,
                      event_log: RunEventLog, progress: RunProgress,
                      user_transformers: Callable[[], Any] | None = None) -> None:
        kwargs = run.kwargs
        modes: list[str] = kwargs.get("stream_mode") or ["values"]
        subgraphs = bool(kwargs.get("stream_subgraphs"))
        command = kwargs.get("command")
        graph_input: Any = Command(**command) if command else kwargs.get("input")
        if graph_input is None or command:
            # Resuming or continuing: the graph writes onto a checkpoint that predates
            # this run. Remember its pending writes so a rollback can restore them,
            # durably and before the graph can write: a rollback completed by another
            # worker, or after a restart, restores from the store's copy.
            restore = progress.restore = await self.checkpoints.restore_point(
                run.thread_id, config["configurable"].get("checkpoint_id")
            )
            if not await self.store.keep_restore_point(run.run_id, run.thread_id,
                                                       self.worker_id, restore.to_json()):
                raise RunFenced(f"run {run.run_id} is no longer running on this worker: "
                                "its graph does not start")
        options = _graph_options(kwargs)
        # Always a dict, {} when none was given: langgraph makes a dataclass or
        # pydantic context schema's instance of it (its defaults), as the reference.
        options["context"] = context
        lg_modes = list(dict.fromkeys(LANGGRAPH_MODES[m] for m in modes if m != "events"))
        # `messages` alone sends whole messages (messages_mode); with `messages-tuple`
        # also asked for, the tuples win, as on the reference.
        whole = (MessageAccumulator()
                 if "messages" in modes and "messages-tuple" not in modes else None)
        if config["configurable"].get(run_context.PROTOCOL_V2_MARKER):
            await _stream_protocol(graph, graph_input, config, options, event_log, progress,
                                   _run_transformers(run.graph_id, user_transformers))
            return
        if "events" in modes:
            await self._stream_events(graph, graph_input, config, lg_modes, subgraphs,
                                      options, event_log, whole)
            return
        # "values" is always streamed: its last root chunk is the final state, which
        # spares reading the state back from the checkpointer when the run ends.
        publish_values = "values" in lg_modes
        if not publish_values:
            lg_modes.append("values")
        # Modes and options are the run's validated kwargs, plain strings and a dict:
        # langgraph's overloads want literals, so none matches (the call is right).
        # output_keys: the graph's output schema, as on the reference, so `values` and
        # `updates` leave out private state (e.g. a middleware's own keys).
        async for chunk in graph.astream(  # type: ignore[call-overload]
            graph_input, config, stream_mode=lg_modes, subgraphs=subgraphs,
            output_keys=graph.output_channels, **options
        ):
            if subgraphs:
                namespace, mode, data = chunk
            else:
                namespace, (mode, data) = (), chunk
            if mode == "values" and not publish_values:
                # Streamed for the final state only: not the client's, at any depth.
                if not namespace:
                    progress.saw(data)
                continue
            if mode == "values" and not namespace:
                progress.saw(data)
            _publish(event_log, mode, namespace, data, whole)

    async def _stream_events(
        self, graph: Pregel, graph_input: Any, config: JSONObject, lg_modes: list[str],
        subgraphs: bool, options: JSONObject, event_log: RunEventLog,
        whole: MessageAccumulator | None,
    ) -> None:
        root_id: str | None = None
        # As for astream above: no overload matches the run's plain kwargs.
        async for event in graph.astream_events(  # type: ignore[call-overload]
            graph_input, config, version="v2", stream_mode=lg_modes or ["values"],
            subgraphs=subgraphs, **options,
        ):
            if root_id is None:
                root_id = event.get("run_id")
            if "langsmith:hidden" in (event.get("tags") or ()):
                continue  # hidden from traces, and from clients (as on the reference)
            if event.get("event") == "on_chain_stream" and event.get("run_id") == root_id:
                # The graph's own stream chunks are the other modes' events, not
                # `events`: the reference forwards them only as those modes.
                chunk = event["data"].get("chunk")
                if not lg_modes:
                    continue
                if subgraphs and isinstance(chunk, tuple) and len(chunk) == 3:
                    _publish(event_log, chunk[1], chunk[0], chunk[2], whole)
                elif isinstance(chunk, tuple) and len(chunk) == 2:
                    _publish(event_log, chunk[0], (), chunk[1], whole)
                continue
            event_log.publish("events", event)


async def _stream_protocol(graph: Pregel, graph_input: Any, config: JSONObject,
                           options: JSONObject, event_log: RunEventLog,
                           progress: RunProgress, user: list[Any]) -> None:
    """A run started by the v2 protocol (POST /threads/{id}/commands `run.start`):
    langgraph's own protocol events (astream_events version "v3": messages as content
    blocks, lifecycle of subgraphs, tools ...), as the reference runs them. Each is
    published as `<method>|<namespace...>` with its `params` as data; the thread's
    protocol stream (service/protocol_stream.py) turns them into the wire's events."""
    # langgraph streams the modes its transformers ask for: values, messages and
    # lifecycle by default (and the graph's own stream_transformers). Custom events a
    # node writes (get_stream_writer) are asked for too, so they reach the `custom`
    # channel (the reference leaves them out: docs/differences.md), unless the graph
    # compiled its own or the module's `stream_transformers` brings one: langgraph
    # refuses two transformers projecting `custom`. The user's come after runlane's.
    # Imported here: only a langgraph with the v3 stream has it (run.start checks).
    from langgraph.stream.transformers import CustomTransformer

    own = getattr(graph, "stream_transformers", ())
    has_custom = any(_is_custom(t, CustomTransformer) for t in (*own, *user))
    extra: list[Any] = [] if has_custom else [CustomTransformer]
    # The run's options are plain strings and a dict: no overload matches them.
    stream = await graph.astream_events(  # type: ignore[call-overload]
        graph_input, config, version="v3", transformers=[*extra, *user], **options)
    async with stream:
        async for event in stream:
            method = event.get("method")
            params = event.get("params")
            if not isinstance(method, str) or not isinstance(params, dict):
                continue
            namespace = tuple(params.get("namespace") or ())
            data = params.get("data")
            if method == "messages":
                # (event, metadata) pairs; only the content-block events are the
                # protocol's (a whole message, as a subgraph's output, is not).
                if isinstance(data, (tuple, list)) and len(data) == 2:
                    data = data[0]
                if not (isinstance(data, dict) and isinstance(data.get("event"), str)):
                    continue
                params = {**params, "data": data}
            elif method == "values" and not namespace:
                interrupts = params.get("interrupts")
                progress.saw({"__interrupt__": interrupts} if interrupts else data)
            name = method if not namespace else f"{method}|{'|'.join(namespace)}"
            event_log.publish(name, params)


def _is_custom(item: Any, custom: type) -> bool:
    """Whether a transformer (a class or an instance as given) projects `custom`."""
    return isinstance(item, custom) or (isinstance(item, type) and issubclass(item, custom))


def _run_transformers(graph_id: str, make: Callable[[], Any] | None) -> list[Any]:
    """One v2 run's transformers from the graph module's `stream_transformers` (called
    per run: transformers hold state, a run's must not be another's), as factories
    `(scope) -> StreamTransformer`. An instance is wrapped to give itself for every
    scope (one channel for the whole run, subgraphs included), as the reference does.
    When the callable raises, or gives something that is not such a list, the run
    streams with the built-in transformers only, and the log says why."""
    if make is None:
        return []
    from langgraph.stream._types import StreamTransformer

    try:
        produced = make()
    except Exception as exc:  # noqa: BLE001 - the user's code: the run goes on without it
        # A warning with the error, not a traceback: the graph's module is at fault.
        log.warning("graph %s: stream_transformers() raised %r; the run streams with the "
                    "built-in transformers only", graph_id, exc)
        return []
    if not isinstance(produced, list | tuple):
        log.warning("graph %s: stream_transformers() returned a %s, not a list; the run "
                    "streams with the built-in transformers only", graph_id,
                    type(produced).__name__)
        return []
    factories: list[Any] = []
    for item in produced:
        if isinstance(item, StreamTransformer):
            factories.append(_same(item))
        elif callable(item):
            factories.append(item)
        else:
            log.warning("graph %s: stream_transformers() gave a %s, not a StreamTransformer "
                        "or a factory of one; the run streams with the built-in "
                        "transformers only", graph_id, type(item).__name__)
            return []
    return factories


def _same(instance: Any) -> Callable[[tuple[str, ...]], Any]:
    return lambda scope: instance


async def read_thread_state(served: ServedGraph | None, thread_id: str,
                            graph: Pregel | None = None) -> tuple[Any, JSONObject, bool]:
    """thread_state with `graph` when known, else with the served graph (a factory's
    made for reading, as the reference reads state: access `threads.read`)."""
    if graph is not None or served is None:
        return await thread_state(graph, thread_id)
    try:
        async with served.open("threads.read",
                               {"configurable": {"thread_id": thread_id}}) as made:
            return await thread_state(made, thread_id)
    except Exception:
        log.exception("making graph %s to read thread %s failed", served.graph_id, thread_id)
        return None, {}, False


async def thread_state(graph: Pregel | None, thread_id: str) -> tuple[Any, JSONObject, bool]:
    """(values, interrupts by task id, paused) of the thread's latest checkpoint."""
    if graph is None:
        return None, {}, False
    try:
        state = await graph.aget_state({"configurable": {"thread_id": thread_id}})
    except Exception:
        log.exception("reading the state of thread %s failed", thread_id)
        return None, {}, False
    interrupts: JSONObject = {}
    for task in state.tasks:
        if task.interrupts:
            interrupts[task.id] = to_jsonable(list(task.interrupts))
    return to_jsonable(state.values), interrupts, bool(state.next)


def _graph_options(kwargs: JSONObject) -> JSONObject:
    """The options a run passes to astream as it was asked (those it was given)."""
    options: JSONObject = {}
    for key in ("interrupt_before", "interrupt_after", "durability"):
        if kwargs.get(key) is not None:
            options[key] = kwargs[key]
    return options


def _publish(event_log: RunEventLog, mode: str, namespace: tuple[str, ...], data: Any,
             whole: MessageAccumulator | None) -> None:
    if mode == "messages" and whole is not None:
        for name, payload in whole.frames(data):
            event_log.publish(name, payload)
        return
    name = mode
    if namespace:
        name = f"{name}|{'|'.join(namespace)}"
    if mode == "messages" and isinstance(data, tuple) and len(data) == 2:
        # [message chunk, metadata]: the metadata is the same for every token of a
        # message, and kept once (RunEventLog.publish_pair).
        event_log.publish_pair(name, data[0], data[1])
        return
    if mode == "messages" and isinstance(data, tuple):
        data = list(data)
    elif mode == "debug":
        data = debug_event(data)
    event_log.publish(name, data)


def build_config(run: Run) -> JSONObject:
    kwargs = run.kwargs
    config: JSONObject = dict(kwargs.get("config") or {})
    configurable: JSONObject = dict(config.get("configurable") or {})
    checkpoint = kwargs.get("checkpoint") or {}
    if kwargs.get("checkpoint_id"):
        checkpoint = {**checkpoint, "checkpoint_id": kwargs["checkpoint_id"]}
    configurable.update({k: v for k, v in checkpoint.items() if k != "thread_id"})
    configurable.update(
        thread_id=run.thread_id,
        run_id=run.run_id,
        graph_id=run.graph_id,
        assistant_id=run.assistant_id,
    )
    config["configurable"] = configurable
    config["metadata"] = {**(config.get("metadata") or {}), **(run.metadata or {}),
                          "assistant_id": run.assistant_id, "thread_id": run.thread_id,
                          **run_context.SERVER_METADATA}
    config["run_id"] = uuid.UUID(run.run_id)
    return config
