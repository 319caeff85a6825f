"""Graph factories, end to end through langgraph_sdk on every backend: each form the
reference accepts (sync, async, sync and async context managers; taking nothing, the
config, a ServerRuntime, or both) is called for each run with that run's config and
context, and for reads with a read runtime; a factory that raises ends its run
`error`; a factory the server cannot call stops start-up in one line
(graphs: tests/graphs/factory_graphs.py)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

IN = {"note": "x"}
FORMS = ["factory_none", "factory_config", "factory_runtime", "factory_both",
         "factory_async", "factory_acm", "factory_cm"]


@pytest.mark.parametrize("graph_id", FORMS)
async def test_each_form_is_called_per_run(client, graph_id: str) -> None:
    thread = await client.threads.create()
    first = await client.runs.create(thread["thread_id"], graph_id, input=IN,
                                     context={"model": "fm"})
    made = (await client.runs.join(thread["thread_id"], first["run_id"]))["made"]
    again = (await client.runs.wait(None, graph_id, input=IN))["made"]
    assert made["token"] != again["token"]  # a new graph for each run
    if "configurable" in made:  # given the run's config
        configurable = made["configurable"]
        assert configurable["run_id"] == first["run_id"]
        assert configurable["thread_id"] == thread["thread_id"]
        assert configurable["model"] == "fm"  # the context, mirrored
        assert configurable["__is_for_execution__"] is True
        assert "model" not in again["configurable"]
    if "runtime_type" in made:  # given a ServerRuntime
        assert made["runtime_type"] == "_ExecutionRuntime"
        assert made["access_context"] == "threads.create_run"
        assert made["context"] == {"model": "fm"} and again["context"] == {}
        assert made["user"] is None and made["has_store"]


async def test_async_context_manager_is_exited_after_each_run(client) -> None:
    # factory_acm records its exit in the store once the run it was entered for ends.
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "factory_acm", input=IN)
    assert (await client.runs.join(thread["thread_id"], run["run_id"]))["made"]["form"] == "acm"
    deadline = time.monotonic() + 10
    while (item := await client.store.get_item(["factory_acm"], run["run_id"])) is None:
        assert time.monotonic() < deadline, "the context manager was not exited"
        await asyncio.sleep(0.05)
    assert item["value"] == {"exited": True}


async def test_uncompiled_graph_from_a_factory_is_compiled(client) -> None:
    assert (await client.runs.wait(None, "factory_uncompiled", input=IN))["note"] == "compiled"


async def test_reads_call_the_factory_with_a_read_runtime(client) -> None:
    thread = await client.threads.create()
    done = await client.runs.wait(thread["thread_id"], "factory_runtime", input=IN)
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"] == done and state["next"] == []
    history = await client.threads.get_history(thread["thread_id"])
    assert history[0]["values"] == done
    await client.threads.update_state(thread["thread_id"], {"note": "updated"})
    assert (await client.threads.get_state(thread["thread_id"]))["values"]["note"] == "updated"
    assistant = (await client.assistants.search(graph_id="factory_runtime",
                                                metadata={"created_by": "system"}))[0]
    aid = assistant["assistant_id"]
    drawn = await client.assistants.get_graph(aid)
    assert [n["id"] for n in drawn["nodes"]] == ["__start__", "answer", "__end__"]
    schemas = await client.assistants.get_schemas(aid)
    assert schemas["graph_id"] == "factory_runtime"
    assert set(schemas["context_schema"]["properties"]) == {"model", "temperature"}
    assert await client.assistants.get_subgraphs(aid) == {}


async def test_a_raising_factory_ends_its_run_error(client, server) -> None:
    assert (await client.runs.wait(None, "factory_raising", input=IN))["made"]["form"] == (
        "raising")
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "factory_raising", input=IN,
                                   config={"configurable": {"explode": True, "model": "zz"}})
    error = {"error": "RuntimeError", "message": "factory refused model 'zz'"}
    assert await client.runs.join(thread["thread_id"], run["run_id"]) == {"__error__": error}
    ended = await client.runs.get(thread["thread_id"], run["run_id"])
    assert ended["status"] == "error" and ended["error"] == error
    deadline = time.monotonic() + 10
    line = (f"run {run['run_id']} running -> error (graph_error: RuntimeError: factory "
            "refused model 'zz' (raised by the graph factory of 'factory_raising' "
            "(factory_raising, access threads.create_run)))")
    while line not in server.log():
        assert time.monotonic() < deadline, "no status-change line naming the factory"
        await asyncio.sleep(0.05)
    # the thread stays usable: the next run's factory call succeeds
    assert (await client.runs.wait(thread["thread_id"], "factory_raising", input=IN))[
        "made"]["form"] == "raising"


@pytest.mark.parametrize(("source", "spec", "message"), [
    ("def make(a, b, c):\n    pass\n", "./bad.py:make",
     "graph 'bad' (./bad.py:make): a graph factory takes at most two parameters (a config "
     "and/or a `ServerRuntime`); got ['a', 'b', 'c']"),
    ("def make(a, b):\n    pass\n", "./bad.py:make",
     "graph 'bad' (./bad.py:make): a factory taking two parameters takes a config and a "
     "runtime annotated `ServerRuntime`; got ['a', 'b']"),
    ("graph = 42\n", "./bad.py:graph",
     "graph 'bad' (./bad.py:graph): int is not a graph"),
    ("from langgraph.graph import StateGraph\nagent = StateGraph(dict)\n", "./bad.py:graph",
     "graph 'bad' (./bad.py:graph): ./bad.py has no attribute 'graph' (graphs it defines: "
     "agent)"),
    ("import not_a_module_anywhere\n", "./bad.py:graph",
     "importing"),
])
def test_a_graph_it_cannot_serve_stops_start_up_in_one_line(
        tmp_path: Path, source: str, spec: str, message: str) -> None:
    (tmp_path / "bad.py").write_text(source)
    (tmp_path / "langgraph.json").write_text(f'{{"graphs": {{"bad": "{spec}"}}}}')
    done = subprocess.run(
        [sys.executable, "-m", "runlane.cli", "serve", "--config",
         str(tmp_path / "langgraph.json"), "--port", "1",
         "--database-url", f"sqlite:///{tmp_path / 'db.sqlite'}"],
        capture_output=True, text=True, timeout=60, check=False)
    output = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 2, output
    assert "runlane: cannot start:" in output and message in output
    assert "Traceback" not in output
