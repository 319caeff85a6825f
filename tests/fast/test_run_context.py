"""A run's config and context (runlane.run_context) and how graph factories are
called (runlane.graph_factories), in process: the rules the reference server applies,
each spelled out."""

from __future__ import annotations

import dataclasses
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from langgraph_sdk.runtime import ServerRuntime, _ExecutionRuntime

from runlane import run_context
from runlane.errors import ConfigError, ConfigurableAndContext
from runlane.graph_factories import GraphFactoryError, ServedGraph, classify

# ------------------------------------------------------------------ run requests


def test_context_given_is_mirrored_into_configurable() -> None:
    config, context, given = run_context.for_request({"tags": ["t"]}, {"model": "m"})
    assert config == {"tags": ["t"], "configurable": {"model": "m"}}
    assert context == {"model": "m"} and given


def test_configurable_given_becomes_the_context() -> None:
    config, context, given = run_context.for_request({"configurable": {"model": "m"}}, None)
    assert config == {"configurable": {"model": "m"}}
    assert context == {"model": "m"} and not given
    # a copy: adding the run's ids to configurable leaves the context as given
    config["configurable"]["run_id"] = "r"
    assert context == {"model": "m"}


def test_neither_gives_empty_context() -> None:
    assert run_context.for_request(None, None) == ({"configurable": {}}, {}, False)


def test_both_is_400() -> None:
    with pytest.raises(ConfigurableAndContext, match="Cannot specify both") as caught:
        run_context.for_request({"configurable": {"a": 1}}, {"b": 2})
    assert caught.value.status_code == 400
    # empty ones do not count
    assert run_context.for_request({"configurable": {}}, {"b": 2})[1] == {"b": 2}


# ------------------------------------------------------------------- assistants


def test_assistant_is_stored_mirrored() -> None:
    assert run_context.for_assistant({"tags": ["a"]}, {"m": 1}) == (
        {"tags": ["a"], "configurable": {"m": 1}}, {"m": 1})
    assert run_context.for_assistant({"configurable": {"m": 2}}, None) == (
        {"configurable": {"m": 2}}, {"m": 2})
    assert run_context.for_assistant(None, None) == ({}, {})
    with pytest.raises(ConfigurableAndContext):
        run_context.for_assistant({"configurable": {"m": 2}}, {"m": 3})


def test_assistant_patch_leaves_what_is_not_sent() -> None:
    assert run_context.for_assistant_patch(None, None) == (None, None)
    assert run_context.for_assistant_patch(None, {"m": 1}) == ({"configurable": {"m": 1}},
                                                              {"m": 1})
    # an empty context with a configurable: the context follows the configurable
    assert run_context.for_assistant_patch({"configurable": {"m": "v2"}}, {}) == (
        {"configurable": {"m": "v2"}}, {"m": "v2"})
    assert run_context.for_assistant_patch({"tags": ["x"]}, None) == ({"tags": ["x"]}, None)


def test_run_over_assistant() -> None:
    config, context = run_context.with_assistant(
        {"tags": ["a"], "recursion_limit": 7, "configurable": {"m": "a", "keep": 1},
         "metadata": {"x": 1}},
        {"m": "a", "keep": 1},
        {"tags": ["b"], "configurable": {"m": "r"}, "metadata": {"y": 2}},
        {"m": "r"})
    # the run's keys win; tags are replaced, not joined (as the reference)
    assert config == {"tags": ["b"], "recursion_limit": 7,
                      "configurable": {"m": "r", "keep": 1}, "metadata": {"x": 1, "y": 2}}
    assert context == {"m": "r", "keep": 1}


# --------------------------------------------------------------- context schema

SCHEMA = {"properties": {"model": {"type": "string"}, "temperature": {"type": "number"}}}


def test_context_keeps_only_declared_keys() -> None:
    configurable = {"model": "m", "bogus": 1, "thread_id": "t"}
    kept = run_context.for_schema({"model": "m", "bogus": 1}, SCHEMA, configurable, given=True)
    assert kept == {"model": "m"}
    # a caller's context: the dropped key leaves the mirrored configurable too
    assert configurable == {"model": "m", "thread_id": "t"}


def test_configurable_keeps_keys_the_caller_set_there() -> None:
    configurable = {"model": "m", "bogus": 1}
    kept = run_context.for_schema({"model": "m", "bogus": 1}, SCHEMA, configurable, given=False)
    assert kept == {"model": "m"} and configurable == {"model": "m", "bogus": 1}


def test_dropped_key_with_another_value_in_configurable_stays() -> None:
    configurable = {"bogus": "from the assistant"}
    run_context.for_schema({"bogus": "from the run"}, SCHEMA, configurable, given=True)
    assert configurable == {"bogus": "from the assistant"}


@pytest.mark.parametrize("schema", [None, {}, {"type": "object"}])
def test_no_properties_filters_nothing(schema: dict | None) -> None:
    assert run_context.for_schema({"any": 1}, schema, {}, given=True) == {"any": 1}


def test_empty_context_stays_a_dict() -> None:
    assert run_context.for_schema(None, SCHEMA, {}, given=False) == {}


# ------------------------------------------------------------------- identity


def test_auth_keys_without_auth() -> None:
    assert run_context.auth_configurable(None) == {
        "langgraph_auth_user": None, "langgraph_auth_user_id": "",
        "langgraph_auth_permissions": []}


def test_auth_keys_and_user_with_auth() -> None:
    stored = {"identity": "alice", "permissions": ["read"], "display_name": "Alice",
              "org": "acme"}
    keys = run_context.auth_configurable(stored)
    assert keys["langgraph_auth_user_id"] == "alice"
    assert keys["langgraph_auth_permissions"] == ["read"]
    user = run_context.RunUser(keys["langgraph_auth_user"])
    assert (user.identity, user.display_name, user.permissions) == ("alice", "Alice", ["read"])
    assert user.is_authenticated and user["org"] == "acme" and dict(user) == stored


# -------------------------------------------------------------------- factories


def _graph(tag: str):
    return (StateGraph(dict).add_node("n", lambda s: {"tag": tag})
            .add_edge(START, "n").compile())


def no_args():
    return _graph("none")


def config_only(config: RunnableConfig):
    return _graph(config["configurable"]["run_id"])


def unannotated(config):
    return _graph(config["configurable"]["run_id"])


def runtime_only(rt: ServerRuntime):
    return _graph(rt.access_context)


def runtime_parameterized(rt: ServerRuntime[dict]):
    return _graph(rt.access_context)


def runtime_annotated(rt: Annotated[ServerRuntime, "x"]):
    return _graph(rt.access_context)


def runtime_unresolvable(rt: ServerRuntime, cfg: NotImportedHere):  # noqa: F821
    """An annotation that does not resolve: the runtime is still told by its name."""
    return _graph(rt.access_context)


def runtime_first(rt: ServerRuntime, cfg: RunnableConfig):
    return _graph(f"{rt.access_context}/{cfg['configurable']['run_id']}")


def two_configs(a: RunnableConfig, b: RunnableConfig):
    return _graph("never")


def three(a, b, c):
    return _graph("never")


RUNTIME = _ExecutionRuntime(access_context="threads.create_run", store=None)
CONFIG: RunnableConfig = {"configurable": {"run_id": "r1"}}


@pytest.mark.parametrize(("factory", "expected"), [
    (no_args, {}),
    (config_only, {"config": CONFIG}),
    (unannotated, {"config": CONFIG}),
    (runtime_only, {"rt": RUNTIME}),
    (runtime_parameterized, {"rt": RUNTIME}),
    (runtime_annotated, {"rt": RUNTIME}),
    (runtime_unresolvable, {"rt": RUNTIME, "cfg": CONFIG}),
    (runtime_first, {"rt": RUNTIME, "cfg": CONFIG}),
])
def test_factory_parameters_by_annotation(factory, expected) -> None:
    assert classify(factory, "g")(CONFIG, RUNTIME) == expected


@pytest.mark.parametrize(("factory", "message"), [
    (two_configs, "a config and a runtime annotated `ServerRuntime`; got \\['a', 'b'\\]"),
    (three, "at most two parameters"),
])
def test_factory_with_parameters_it_cannot_be_given(factory, message) -> None:
    with pytest.raises(ConfigError, match=message):
        classify(factory, "graph 'g' (x.py:f)")


@dataclasses.dataclass
class Opened:
    entered: int = 0
    exited: int = 0


async def _tags(served: ServedGraph, access: str = "threads.create_run") -> str:
    async with served.open(access, CONFIG) as graph:  # type: ignore[arg-type]
        return (await graph.ainvoke({}))["tag"]


async def test_every_factory_form_is_called_each_time() -> None:
    opened = Opened()

    async def make_async(config: RunnableConfig):
        return _graph(f"async {config['configurable']['run_id']}")

    @asynccontextmanager
    async def make_acm(config: RunnableConfig):
        opened.entered += 1
        yield _graph(f"acm {config['configurable']['__is_for_execution__']}")
        opened.exited += 1

    @contextmanager
    def make_cm(rt: ServerRuntime):
        yield StateGraph(dict).add_node("n", lambda s: {"tag": rt.access_context}).add_edge(
            START, "n")  # uncompiled: compiled for the caller

    assert await _tags(ServedGraph.of_factory("g", make_async, "g")) == "async r1"
    acm = ServedGraph.of_factory("g", make_acm, "g")
    assert await _tags(acm) == "acm True"
    assert await _tags(acm, "threads.read") == "acm False"
    assert (opened.entered, opened.exited) == (2, 2)
    assert await _tags(ServedGraph.of_factory("g", make_cm, "g"),
                       "assistants.read") == "assistants.read"


async def test_factory_gets_the_runs_context_and_a_read_runtime_none() -> None:
    seen: list[object] = []

    def make(rt: ServerRuntime):
        seen.append(rt)
        return _graph("x")

    served = ServedGraph.of_factory("g", make, "g")
    async with served.open("threads.create_run", CONFIG, context={"m": 1}, user="u"):
        pass
    async with served.open("threads.read", CONFIG):
        pass
    run_rt, read_rt = seen
    assert type(run_rt).__name__ == "_ExecutionRuntime" and run_rt.context == {"m": 1}
    assert run_rt.user == "u"
    assert type(read_rt).__name__ == "_ReadRuntime" and not hasattr(read_rt, "context")


async def test_factory_errors_name_the_factory() -> None:
    def refuses(config: RunnableConfig):
        raise RuntimeError("no model configured")

    with pytest.raises(RuntimeError, match="no model configured") as caught:
        await _tags(ServedGraph.of_factory("agent", refuses, "agent"))
    assert caught.value.__notes__ == [
        "raised by the graph factory of 'agent' (test_factory_errors_name_the_factory."
        "<locals>.refuses, access threads.create_run)"]
    with pytest.raises(GraphFactoryError, match="returned str, not a graph"):
        await _tags(ServedGraph.of_factory("agent", lambda: "nope", "agent"))


async def test_plain_graph_is_used_as_it_is() -> None:
    graph = _graph("plain")
    served = ServedGraph.plain("g", graph)
    async with served.open("threads.create_run", CONFIG) as used:
        assert used is graph  # no copy, no factory call: the fast path
    async with served.open("threads.create_run", CONFIG, store=object()) as scoped:
        assert scoped is not graph
