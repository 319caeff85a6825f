"""A run's context and config, and graph factories, side by side with the reference:
what a graph's nodes see of `runtime.context` and `config["configurable"]`, how an
assistant's context combines with a run's, factories called per run, and the shape
of a graph's error (graphs: tests/graphs/context_graphs.py, factory_graphs.py).

Only the runlane run answer differs in one place: GET run carries runlane's own
`error` field (docs/differences.md); the test branches on `is_reference` there."""

from __future__ import annotations

import pytest

from compat.support import collect, default_assistant, status_of, wait_terminal

IN = {"note": "x"}
DEFAULTS = {"model": "default-model", "temperature": 0.5}
# Keys the reference sets in every run's configurable (langgraph's own aside).
RUN_KEYS = {"run_id", "thread_id", "graph_id", "assistant_id", "user_id",
            "langgraph_auth_user", "langgraph_auth_user_id", "langgraph_auth_permissions",
            "langgraph_request_id", "__after_seconds__"}


def _own(configurable: dict) -> dict:
    """What the run's caller put in configurable: without the server's keys."""
    ignored = RUN_KEYS | {"checkpoint_id", "checkpoint_ns", "checkpoint_map",
                          "__request_start_time_ms__", "__is_for_execution__"}
    return {k: v for k, v in configurable.items() if k not in ignored}


@pytest.mark.compat("runs", "runs.wait")
async def test_context_defaults_when_none_is_given(client):
    assert (await client.runs.wait(None, "ctx_template", input=IN))["note"] == (
        "default-model at 0.5")
    for graph_id, kind in (("ctx_dataclass", "DataclassContext"),
                           ("ctx_pydantic", "PydanticContext")):
        seen = await client.runs.wait(None, graph_id, input=IN)
        assert (seen["context_type"], seen["context"]) == (kind, DEFAULTS)
        assert _own(seen["seen_configurable"]) == {}
    # A TypedDict schema has no defaults: langgraph gives no context at all.
    seen = await client.runs.wait(None, "ctx_typeddict", input=IN)
    assert (seen["context_type"], seen["context"]) == ("NoneType", None)


@pytest.mark.compat("runs", "runs.wait")
async def test_context_filtered_by_schema(client):
    seen = await client.runs.wait(None, "ctx_dataclass", input=IN,
                                  context={"model": "m1", "bogus": 1})
    assert seen["context"] == {"model": "m1", "temperature": 0.5}
    assert _own(seen["seen_configurable"]) == {"model": "m1"}
    seen = await client.runs.wait(None, "ctx_pydantic", input=IN,
                                  context={"temperature": 0.9, "bogus": 1})
    assert seen["context"] == {"model": "default-model", "temperature": 0.9}
    # A TypedDict context is passed as it was given (langgraph has no schema to apply).
    seen = await client.runs.wait(None, "ctx_typeddict", input=IN,
                                  context={"model": "m1", "bogus": 1})
    assert (seen["context_type"], seen["context"]) == ("dict", {"model": "m1", "bogus": 1})


@pytest.mark.compat("runs", "runs.wait")
async def test_configurable_mirrored_into_context(client):
    seen = await client.runs.wait(None, "ctx_dataclass", input=IN,
                                  config={"configurable": {"model": "m2", "bogus": 2}})
    assert seen["context"] == {"model": "m2", "temperature": 0.5}
    assert _own(seen["seen_configurable"]) == {"model": "m2", "bogus": 2}
    assert seen["seen_get_config"] == seen["seen_configurable"]
    assert await status_of(client.runs.wait(
        None, "ctx_dataclass", input=IN, config={"configurable": {"model": "a"}},
        context={"model": "b"})) == 400


@pytest.mark.compat("runs", "runs.create", "runs.join")
async def test_configurable_carries_ids_and_identity(client):
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "ctx_dataclass", input=IN)
    seen = (await client.runs.join(thread["thread_id"], run["run_id"]))["seen_configurable"]
    assert set(seen) >= RUN_KEYS
    assert (seen["run_id"], seen["thread_id"], seen["graph_id"], seen["assistant_id"]) == (
        run["run_id"], thread["thread_id"], "ctx_dataclass", run["assistant_id"])
    assert (seen["langgraph_auth_user"], seen["langgraph_auth_user_id"], seen["user_id"],
            seen["langgraph_auth_permissions"], seen["__after_seconds__"]) == (
        None, "", "", [], 0)
    assert isinstance(seen["langgraph_request_id"], str) and seen["langgraph_request_id"]


@pytest.mark.compat("assistants", "assistants.create", "assistants.update")
async def test_assistant_context_merged_with_runs(client):
    assistant = await client.assistants.create(
        "ctx_dataclass", context={"model": "asst", "bogus": 5}, config={"tags": ["a"]})
    assert assistant["config"] == {"tags": ["a"], "configurable": {"model": "asst", "bogus": 5}}
    assert assistant["context"] == {"model": "asst", "bogus": 5}
    aid = assistant["assistant_id"]
    plain = await client.runs.wait(None, aid, input=IN)
    assert plain["context"] == {"model": "asst", "temperature": 0.5}
    assert _own(plain["seen_configurable"]) == {"model": "asst", "bogus": 5}
    with_context = await client.runs.wait(None, aid, input=IN, context={"temperature": 0.1})
    assert with_context["context"] == {"model": "asst", "temperature": 0.1}
    assert _own(with_context["seen_configurable"]) == {"model": "asst", "temperature": 0.1}
    with_config = await client.runs.wait(None, aid, input=IN,
                                         config={"configurable": {"temperature": 0.2}})
    assert with_config["context"] == {"model": "asst", "temperature": 0.2}
    assert _own(with_config["seen_configurable"]) == {"model": "asst", "bogus": 5,
                                                      "temperature": 0.2}
    updated = await client.assistants.update(aid, context={"model": "v2"})
    assert (updated["config"], updated["context"]) == ({"configurable": {"model": "v2"}},
                                                       {"model": "v2"})
    assert await status_of(client.assistants.create(
        "ctx_dataclass", config={"configurable": {"a": 1}}, context={"a": 2})) == 400


@pytest.mark.compat("runs", "runs.wait")
async def test_factories_called_per_run(client):
    for graph_id in ("factory_none", "factory_config", "factory_runtime", "factory_both",
                     "factory_async", "factory_acm", "factory_cm"):
        one = (await client.runs.wait(None, graph_id, input=IN, context={"model": "fm"}))["made"]
        two = (await client.runs.wait(None, graph_id, input=IN))["made"]
        assert one["token"] != two["token"], graph_id
        if "configurable" in one:
            assert one["configurable"]["model"] == "fm"
            assert one["configurable"]["__is_for_execution__"] is True
            assert "model" not in two["configurable"]
        if "runtime_type" in one:
            assert (one["runtime_type"], one["access_context"], one["context"], one["user"],
                    one["has_store"]) == ("_ExecutionRuntime", "threads.create_run",
                                          {"model": "fm"}, None, True)
            assert two["context"] == {}
    assert (await client.runs.wait(None, "factory_uncompiled", input=IN))["note"] == "compiled"


@pytest.mark.compat("assistants", "assistants.get_graph", "assistants.get_schemas",
                    "threads.get_state")
async def test_factory_graph_read_without_a_run(client):
    aid = (await default_assistant(client, "factory_runtime"))["assistant_id"]
    drawn = await client.assistants.get_graph(aid)
    assert [n["id"] for n in drawn["nodes"]] == ["__start__", "answer", "__end__"]
    schemas = await client.assistants.get_schemas(aid)
    assert set(schemas["context_schema"]["properties"]) == {"model", "temperature"}
    thread = await client.threads.create()
    done = await client.runs.wait(thread["thread_id"], aid, input=IN)
    assert (await client.threads.get_state(thread["thread_id"]))["values"] == done


@pytest.mark.compat("runs", "runs.create", "runs.join", "runs.stream", "runs.get")
async def test_graph_and_factory_errors(client, is_reference):
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "ctx_failing", input={"note": "boom"})
    error = {"error": "BrokenTool", "message": "the tool broke on 'boom'"}
    assert await client.runs.join(thread["thread_id"], run["run_id"]) == {"__error__": error}
    ended = await wait_terminal(client, thread["thread_id"], run["run_id"])
    assert ended["status"] == "error"
    if not is_reference:  # runlane's own run field (docs/differences.md)
        assert ended["error"] == error
    chunks = await collect(client.runs.stream(None, "ctx_failing", input={"note": "s"}))
    assert (chunks[-1].event, chunks[-1].data) == (
        "error", {"error": "BrokenTool", "message": "the tool broke on 's'"})
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "factory_raising", input=IN,
                                   config={"configurable": {"explode": True, "model": "zz"}})
    assert await client.runs.join(thread["thread_id"], run["run_id"]) == {
        "__error__": {"error": "RuntimeError", "message": "factory refused model 'zz'"}}
