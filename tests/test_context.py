"""A run's context and config as its graph's nodes see them, end to end through
langgraph_sdk on every backend: schema defaults when no context is given, keys the
schema does not declare dropped, configurable mirrored into context, the assistant's
under the run's, the ids and identity in configurable, and a graph's error in the
run, its stream and the server log (graphs: tests/graphs/context_graphs.py)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from langgraph_sdk.errors import APIStatusError

from auth_support import secured_server

IN = {"note": "x"}
DEFAULTS = {"model": "default-model", "temperature": 0.5}


async def test_no_context_gives_the_schema_defaults(client) -> None:
    # LangChain's react-agent template reads runtime.context.model in its first node.
    assert (await client.runs.wait(None, "ctx_template", input=IN))["note"] == (
        "default-model at 0.5")
    for graph_id, kind in (("ctx_dataclass", "DataclassContext"),
                           ("ctx_pydantic", "PydanticContext")):
        seen = await client.runs.wait(None, graph_id, input=IN)
        assert (seen["context_type"], seen["context"]) == (kind, DEFAULTS), graph_id


async def test_undeclared_context_keys_are_dropped(client) -> None:
    seen = await client.runs.wait(None, "ctx_dataclass", input=IN,
                                  context={"model": "m1", "bogus": 1})
    assert seen["context"] == {"model": "m1", "temperature": 0.5}
    # mirrored into configurable, without the key the schema dropped
    assert seen["seen_configurable"]["model"] == "m1"
    assert "bogus" not in seen["seen_configurable"]
    seen = await client.runs.wait(None, "ctx_pydantic", input=IN, context={"temperature": 0.9,
                                                                          "extra": "x"})
    assert seen["context"] == {"model": "default-model", "temperature": 0.9}


async def test_configurable_becomes_the_context(client) -> None:
    seen = await client.runs.wait(None, "ctx_dataclass", input=IN,
                                  config={"configurable": {"model": "m2", "bogus": 2}})
    assert seen["context"] == {"model": "m2", "temperature": 0.5}
    # a key set in configurable stays there, though the context schema drops it
    assert {"model": "m2", "bogus": 2}.items() <= seen["seen_configurable"].items()


async def test_configurable_and_context_together_is_400(http) -> None:
    resp = http.post("/runs/wait", json={"assistant_id": "ctx_dataclass", "input": IN,
                                         "config": {"configurable": {"model": "a"}},
                                         "context": {"model": "b"}})
    assert resp.status_code == 400, resp.text
    assert "Cannot specify both configurable and context" in resp.json()["detail"]


async def test_assistant_context_under_the_runs(client) -> None:
    assistant = await client.assistants.create(
        "ctx_dataclass", context={"model": "asst", "bogus": 5},
        config={"tags": ["a"], "recursion_limit": 7})
    # stored mirrored, as the reference keeps an assistant
    assert assistant["config"]["configurable"] == {"model": "asst", "bogus": 5}
    assert assistant["context"] == {"model": "asst", "bogus": 5}
    aid = assistant["assistant_id"]
    plain = await client.runs.wait(None, aid, input=IN)
    assert plain["context"] == {"model": "asst", "temperature": 0.5}
    assert {"model": "asst", "bogus": 5}.items() <= plain["seen_configurable"].items()
    run_ctx = await client.runs.wait(None, aid, input=IN, context={"temperature": 0.1})
    assert run_ctx["context"] == {"model": "asst", "temperature": 0.1}
    # the caller gave a context: the key its schema drops leaves configurable too
    assert "bogus" not in run_ctx["seen_configurable"]
    run_cfg = await client.runs.wait(None, aid, input=IN,
                                     config={"configurable": {"temperature": 0.2}})
    assert run_cfg["context"] == {"model": "asst", "temperature": 0.2}
    assert {"model": "asst", "bogus": 5, "temperature": 0.2}.items() <= (
        run_cfg["seen_configurable"].items())
    with pytest.raises(APIStatusError) as both:
        await client.assistants.create("ctx_dataclass", config={"configurable": {"a": 1}},
                                       context={"a": 2})
    assert both.value.status_code == 400


async def test_configurable_carries_the_runs_ids(client) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "ctx_dataclass", input=IN,
                                   after_seconds=0)
    seen = await client.runs.join(thread["thread_id"], run["run_id"])
    configurable = seen["seen_configurable"]
    assert configurable["run_id"] == run["run_id"]
    assert configurable["thread_id"] == thread["thread_id"]
    assert configurable["assistant_id"] == run["assistant_id"]
    assert configurable["graph_id"] == "ctx_dataclass"
    assert configurable["langgraph_auth_user"] is None
    assert configurable["langgraph_auth_user_id"] == configurable["user_id"] == ""
    assert configurable["langgraph_auth_permissions"] == []
    uuid.UUID(configurable["langgraph_request_id"])  # one made for the request
    assert "__context_provided__" not in configurable
    # get_config() in a node sees the same
    assert seen["seen_get_config"] == configurable


def test_request_id_header_reaches_the_graph(http) -> None:
    resp = http.post("/runs/wait", json={"assistant_id": "ctx_dataclass", "input": IN},
                     headers={"x-request-id": "req-42"})
    assert resp.json()["seen_configurable"]["langgraph_request_id"] == "req-42"


async def _terminal(client, thread_id: str, run_id: str) -> dict:
    deadline = time.monotonic() + 30
    while (run := await client.runs.get(thread_id, run_id))["status"] in ("pending", "running"):
        assert time.monotonic() < deadline, run
        await asyncio.sleep(0.05)
    return run


async def test_graph_error_in_run_stream_and_log(client, server) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "ctx_failing", input={"note": "boom"})
    error = {"error": "BrokenTool", "message": "the tool broke on 'boom'"}
    assert await client.runs.join(thread["thread_id"], run["run_id"]) == {"__error__": error}
    ended = await _terminal(client, thread["thread_id"], run["run_id"])
    assert ended["status"] == "error" and ended["error"] == error
    events = [(c.event, c.data) async for c in client.runs.stream(
        None, "ctx_failing", input={"note": "streamed"})]
    assert events[-1] == ("error", {"error": "BrokenTool",
                                    "message": "the tool broke on 'streamed'"})
    # The run's status-change line says what raised, with the traceback after it.
    deadline = time.monotonic() + 10
    line = f"run {run['run_id']} running -> error (graph_error: BrokenTool: the tool broke"
    while line not in (log := server.log()):
        assert time.monotonic() < deadline, "no status-change line with the error"
        await asyncio.sleep(0.05)
    after = log[log.index(line):]
    assert "Traceback (most recent call last)" in after.split("\n", 2)[1]
    assert 'in explode\n    raise BrokenTool(' in after


def test_identity_in_configurable_with_auth() -> None:
    with secured_server("custom", "sqlite") as secured, secured.http("carol") as carol:
        resp = carol.post("/runs/wait", json={"assistant_id": "ctx_dataclass", "input": IN})
        assert resp.status_code == 200, resp.text
        configurable = resp.json()["seen_configurable"]
        assert configurable["langgraph_auth_user"] == {"identity": "carol"}
        assert configurable["langgraph_auth_user_id"] == configurable["user_id"] == "carol"
        assert configurable["langgraph_auth_permissions"] == ["admin"]
        made = carol.post("/runs/wait", json={"assistant_id": "factory_runtime",
                                              "input": IN, "context": {"model": "c"}})
        assert made.status_code == 200, made.text
        seen = made.json()["made"]
        assert (seen["user"], seen["context"]) == ("carol", {"model": "c"})
