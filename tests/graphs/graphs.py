"""Graphs the test suite drives: plain Python, deterministic, no network."""

from __future__ import annotations

import asyncio
import operator
import time
from typing import Annotated, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.runtime import Runtime
from langgraph.types import interrupt


class TickState(TypedDict, total=False):
    steps: int
    delay: float
    ticks: Annotated[int, operator.add]


async def tick(state: TickState) -> dict:
    await asyncio.sleep(state.get("delay", 0.0))
    get_stream_writer()({"tick": state.get("ticks", 0) + 1})
    return {"ticks": 1}


def _more(state: TickState) -> str:
    return "tick" if state.get("ticks", 0) < state.get("steps", 1) else END


# Ticks `steps` times, sleeping `delay` seconds per tick: a run that lasts as long as asked.
sleepy = (
    StateGraph(TickState)
    .add_node("tick", tick)
    .add_edge(START, "tick")
    .add_conditional_edges("tick", _more, ["tick", END])
    .compile()
)


class EchoState(TypedDict, total=False):
    text: str
    echoed: Annotated[list[str], operator.add]


def echo_node(state: EchoState) -> dict:
    return {"echoed": [state.get("text", "")]}


echo = StateGraph(EchoState).add_node("echo", echo_node).add_edge(START, "echo").compile()


class EmitState(TypedDict, total=False):
    count: int
    emitted: int


async def emit(state: EmitState) -> dict:
    write = get_stream_writer()
    for i in range(state.get("count", 10)):
        write({"i": i})
    return {"emitted": state.get("count", 10)}


emitter = StateGraph(EmitState).add_node("emit", emit).add_edge(START, "emit").compile()


class HitlState(TypedDict, total=False):
    question: str
    answer: str
    done: bool


def ask(state: HitlState) -> dict:
    answer = interrupt({"question": state.get("question", "ok?")})
    return {"answer": answer}


def finish(state: HitlState) -> dict:
    return {"done": True}


# Pauses at interrupt(); resume with command={"resume": ...}.
hitl = (
    StateGraph(HitlState)
    .add_node("ask", ask)
    .add_node("finish", finish)
    .add_edge(START, "ask")
    .add_edge("ask", "finish")
    .compile()
)


def explode(state: dict) -> dict:
    raise ValueError("boom: this graph always fails")


class FailState(TypedDict, total=False):
    x: int


failing = StateGraph(FailState).add_node("explode", explode).add_edge(START, "explode").compile()


class NestedState(TypedDict, total=False):
    ticks: Annotated[int, operator.add]
    steps: int
    delay: float


child = (
    StateGraph(NestedState)
    .add_node("tick", tick)
    .add_edge(START, "tick")
    .compile()
)
# A parent graph with a subgraph node, for stream_subgraphs.
nested = (
    StateGraph(NestedState)
    .add_node("child", child)
    .add_node("after", lambda s: {"ticks": 1})
    .add_edge(START, "child")
    .add_edge("child", "after")
    .compile()
)


class CountState(TypedDict, total=False):
    n: int


quick = (
    StateGraph(CountState)
    .add_node("first", lambda s: {"n": s.get("n", 0) + 1})
    .add_node("second", lambda s: {"n": s["n"] + 1})
    .add_edge(START, "first")
    .add_edge("first", "second")
    .compile()
)


class ChatState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def make_chat():
    """A factory (not a compiled graph): a chat model streaming tokens, for messages-tuple."""
    model = GenericFakeChatModel(messages=iter([AIMessage(content="hello there friend")] * 10_000))

    async def call(state: ChatState) -> dict:
        return {"messages": [await model.ainvoke(state["messages"])]}

    return StateGraph(ChatState).add_node("call", call).add_edge(START, "call").compile()


def stuck(state: TickState) -> dict:
    # A synchronous node: cancellation cannot interrupt it mid-sleep.
    time.sleep(state.get("delay", 1.0))
    return {"ticks": 1}


stubborn = StateGraph(TickState).add_node("stuck", stuck).add_edge(START, "stuck").compile()


from langchain_core.runnables import RunnableConfig  # noqa: E402


class SpanState(TypedDict, total=False):
    ms: float
    spans: Annotated[list[dict], operator.add]


# How many `timed` nodes are executing right now, per thread (in the server process).
_EXECUTING_ON_THREAD: dict[str, int] = {}


async def timed_node(state: SpanState, config: RunnableConfig) -> dict:
    """Sleeps `ms` milliseconds, then records when it ran and which run it was. `overlap`
    counts the other runs of the same thread executing when this one started (always 0
    if the server runs one run per thread at a time)."""
    configurable = config.get("configurable", {})
    thread_id, run_id = configurable.get("thread_id"), configurable.get("run_id")
    start = time.time()
    overlap = _EXECUTING_ON_THREAD.get(thread_id, 0)
    _EXECUTING_ON_THREAD[thread_id] = overlap + 1
    try:
        await asyncio.sleep(state.get("ms", 0.0) / 1000)
    finally:
        left = _EXECUTING_ON_THREAD[thread_id] - 1
        if left:
            _EXECUTING_ON_THREAD[thread_id] = left
        else:
            del _EXECUTING_ON_THREAD[thread_id]
    return {"spans": [{"run_id": str(run_id), "start": start, "end": time.time(),
                       "overlap": overlap}]}


# One node that finishes `ms` milliseconds after it starts: a run that ends at a
# controlled instant, and leaves a record of when it ran in the thread's state.
timed = StateGraph(SpanState).add_node("sleep", timed_node).add_edge(START, "sleep").compile()


class SlowHitlState(TypedDict, total=False):
    delay: float
    answers: Annotated[list[str], operator.add]


async def ask_then_work(state: SlowHitlState) -> dict:
    answer = interrupt({"question": "go on?"})
    await asyncio.sleep(state.get("delay", 0.0))  # work after resuming: time to cancel
    return {"answers": [answer]}


# Pauses at interrupt(); once resumed, works for `delay` seconds before finishing.
slow_hitl = (
    StateGraph(SlowHitlState).add_node("ask", ask_then_work).add_edge(START, "ask").compile()
)


# configured: answers with what the run saw of its config and context, so tests can
# check how an assistant's config/context combine with a run's.
class ConfiguredState(TypedDict, total=False):
    seen_configurable: dict
    seen_context: dict
    seen_tags: list
    note: str


def report_config(state: ConfiguredState, config: RunnableConfig, runtime: Runtime) -> dict:
    configurable = {k: v for k, v in (config.get("configurable") or {}).items()
                    if not k.startswith("__") and k not in (
                        "thread_id", "run_id", "assistant_id", "graph_id", "checkpoint_ns",
                        "checkpoint_id", "checkpoint_map", "langgraph_auth_user",
                        "langgraph_auth_user_id", "langgraph_auth_permissions", "user_id",
                        "langgraph_request_id")}
    return {"seen_configurable": configurable, "seen_context": dict(runtime.context or {}),
            "seen_tags": list(config.get("tags") or [])}


configured = (
    StateGraph(ConfiguredState, context_schema=dict)
    .add_node("report", report_config)
    .add_edge(START, "report")
    .compile()
)


async def ask_then_linger(state: SlowHitlState) -> dict:
    """Pauses at interrupt(); resumed with {"answer": ..., "delay": seconds} (or just an
    answer: no delay), it ignores cancellation for `delay` seconds (swallows
    CancelledError): a rollback recorded meanwhile stays recorded, with the run still
    `running` and its resume value written onto the paused checkpoint."""
    answer = interrupt({"question": "go on?"})
    delay = 0.0
    if isinstance(answer, dict):
        answer, delay = answer["answer"], answer.get("delay", 0.0)
    deadline = time.monotonic() + delay
    while (left := deadline - time.monotonic()) > 0:
        try:
            await asyncio.sleep(left)
        except asyncio.CancelledError:
            continue
    return {"answers": [answer]}


linger_hitl = (
    StateGraph(SlowHitlState).add_node("ask", ask_then_linger).add_edge(START, "ask").compile()
)


class SyncWorkState(TypedDict, total=False):
    steps: int
    delay: float
    log_path: str
    done: Annotated[list[str], operator.add]


class NoteState(TypedDict, total=False):
    i: int


# A subgraph invoked from inside a synchronous node: each call writes checkpoints of
# the run (in the node's namespace), through the server's checkpointer.
_note = StateGraph(NoteState).add_node("note", lambda s: {"i": s.get("i", 0)}).add_edge(
    START, "note").compile()


def sync_work(state: SyncWorkState, config: RunnableConfig) -> dict:
    """A synchronous node (langgraph runs it in a thread, which a cancel cannot stop):
    `steps` times it sleeps `delay` seconds and then writes a checkpoint (the
    subgraph). It appends `start <run_id> <time>` and `end <run_id> <time>` lines to
    `log_path`, so a test sees when it ran, also after its run was cancelled."""
    run_id = config["configurable"]["run_id"]

    def note(event: str) -> None:
        with open(state["log_path"], "a") as log:
            log.write(f"{event} {run_id} {time.time()}\n")

    note("start")
    for i in range(state.get("steps", 1)):
        time.sleep(state.get("delay", 0.0))
        _note.invoke({"i": i}, config)
    note("end")
    return {"done": [str(run_id)]}


sync_worker = StateGraph(SyncWorkState).add_node("work", sync_work).add_edge(
    START, "work").compile()
