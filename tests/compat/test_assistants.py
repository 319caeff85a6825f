"""client.assistants: every method against a real server, shape and meaning."""

from __future__ import annotations

import uuid

import pytest
from langgraph_sdk import schema

from compat.shapes import Assistant, AssistantVersion, assert_shape
from compat.support import default_assistant, status_of, tag


@pytest.mark.compat("assistants", "assistants.create", "assistants.get")
async def test_create_and_get(client):
    marker = tag()
    created = await client.assistants.create(
        "echo", config={"tags": ["t1"]}, context={"user": "u1"},
        metadata={"tag": marker}, name="compat-create", description="made by a compat test",
    )
    assert_shape(created, Assistant)
    assert created["graph_id"] == "echo"
    assert created["name"] == "compat-create"
    assert created["description"] == "made by a compat test"
    assert created["metadata"] == {"tag": marker}
    assert created["config"]["tags"] == ["t1"]
    assert created["context"] == {"user": "u1"}
    assert created["version"] == 1
    uuid.UUID(created["assistant_id"])

    fetched = await client.assistants.get(created["assistant_id"])
    assert_shape(fetched, Assistant)
    assert fetched == created
    assert await status_of(client.assistants.get(str(uuid.uuid4()))) == 404


@pytest.mark.compat("assistants", "assistants.create", "assistants.get")
async def test_create_with_id_and_if_exists(client):
    assistant_id = str(uuid.uuid4())
    first = await client.assistants.create("echo", assistant_id=assistant_id, name="first")
    assert first["assistant_id"] == assistant_id
    # The same id again: 409 by default, the existing assistant with do_nothing.
    assert await status_of(client.assistants.create("echo", assistant_id=assistant_id)) == 409
    again = await client.assistants.create(
        "quick", assistant_id=assistant_id, name="second", if_exists="do_nothing")
    assert_shape(again, Assistant)
    assert (again["name"], again["graph_id"]) == ("first", "echo")
    assert (await client.assistants.get(assistant_id))["name"] == "first"


@pytest.mark.compat("assistants", "assistants.create")
async def test_create_for_unknown_graph_is_refused(client):
    code = await status_of(client.assistants.create("no-such-graph"))
    assert code in (404, 422), code


@pytest.mark.compat("assistants", "assistants.get", "assistants.search")
async def test_default_assistant_per_graph(client):
    """Each served graph has one system assistant, named after the graph."""
    default = await default_assistant(client, "echo")
    assert_shape(default, Assistant)
    assert (default["graph_id"], default["name"], default["version"]) == ("echo", "echo", 1)
    assert await client.assistants.get(default["assistant_id"]) == default
    # A run may name the graph instead of an assistant: it runs the default assistant.
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "echo", input={"text": "d"})
    assert run["assistant_id"] == default["assistant_id"]
    await client.runs.join(thread["thread_id"], run["run_id"])


@pytest.mark.compat("assistants", "assistants.update", "assistants.get")
async def test_update(client):
    created = await client.assistants.create("echo", name="before", metadata={"a": 1})
    updated = await client.assistants.update(
        created["assistant_id"], name="after", metadata={"b": 2},
        config={"configurable": {"x": 1}}, description="now described")
    assert_shape(updated, Assistant)
    assert updated["assistant_id"] == created["assistant_id"]
    assert updated["name"] == "after"
    assert updated["description"] == "now described"
    assert updated["config"]["configurable"] == {"x": 1}
    assert updated["metadata"]["b"] == 2
    assert updated["version"] == 2  # every update is a new version
    assert updated["updated_at"] >= created["updated_at"]
    assert await client.assistants.get(created["assistant_id"]) == updated
    assert await status_of(client.assistants.update(str(uuid.uuid4()), name="x")) == 404


@pytest.mark.compat("assistants", "assistants.delete", "assistants.get")
async def test_delete(client):
    created = await client.assistants.create("echo")
    assert await client.assistants.delete(created["assistant_id"]) is None
    assert await status_of(client.assistants.get(created["assistant_id"])) == 404
    assert await status_of(client.assistants.delete(created["assistant_id"])) == 404


@pytest.mark.compat("assistants", "assistants.delete")
async def test_delete_with_threads(client):
    """delete_threads=True also deletes the threads the assistant ran on."""
    assistant = await client.assistants.create("echo")
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], assistant["assistant_id"], input={"text": "x"})
    other = await client.threads.create()
    await client.runs.wait(other["thread_id"], "echo", input={"text": "y"})
    await client.assistants.delete(assistant["assistant_id"], delete_threads=True)
    assert await status_of(client.threads.get(thread["thread_id"])) == 404
    assert (await client.threads.get(other["thread_id"]))["thread_id"] == other["thread_id"]


@pytest.mark.compat("assistants", "assistants.search")
async def test_search_filters_sorts_pages(client):
    marker = tag()
    made = [await client.assistants.create(
        graph, name=f"s-{i}", metadata={"tag": marker, "i": i})
        for i, graph in enumerate(["echo", "echo", "quick"])]
    found = await client.assistants.search(metadata={"tag": marker}, limit=10)
    for item in found:
        assert_shape(item, Assistant)
    assert {a["assistant_id"] for a in found} == {a["assistant_id"] for a in made}
    # newest first by default
    assert [a["name"] for a in found] == ["s-2", "s-1", "s-0"]

    echo = await client.assistants.search(metadata={"tag": marker}, graph_id="echo")
    assert {a["name"] for a in echo} == {"s-0", "s-1"}
    named = await client.assistants.search(metadata={"tag": marker}, name="s-1")
    assert [a["name"] for a in named] == ["s-1"]
    by_value = await client.assistants.search(metadata={"tag": marker, "i": 2})
    assert [a["name"] for a in by_value] == ["s-2"]

    asc = await client.assistants.search(metadata={"tag": marker}, sort_by="name", sort_order="asc")
    assert [a["name"] for a in asc] == ["s-0", "s-1", "s-2"]
    page = await client.assistants.search(metadata={"tag": marker}, sort_by="name",
                                          sort_order="asc", limit=1, offset=1)
    assert [a["name"] for a in page] == ["s-1"]

    selected = await client.assistants.search(metadata={"tag": marker},
                                              select=["assistant_id", "name"])
    assert all(set(a) == {"assistant_id", "name"} for a in selected), selected
    assert not await client.assistants.search(metadata={"tag": tag()})


@pytest.mark.compat("assistants", "assistants.search")
async def test_search_object_response_format(client):
    marker = tag()
    for i in range(3):
        await client.assistants.create("echo", name=f"p-{i}", metadata={"tag": marker})
    first = await client.assistants.search(metadata={"tag": marker}, limit=2,
                                           response_format="object")
    assert_shape(first, schema.AssistantsSearchResponse)
    assert len(first["assistants"]) == 2
    assert first["next"] is not None  # there is a third
    rest = await client.assistants.search(metadata={"tag": marker}, limit=2,
                                          offset=int(first["next"]), response_format="object")
    assert len(rest["assistants"]) == 1
    assert rest["next"] is None
    names = {a["name"] for a in first["assistants"] + rest["assistants"]}
    assert names == {"p-0", "p-1", "p-2"}


@pytest.mark.compat("assistants", "assistants.count", "assistants.search")
async def test_count_matches_search(client):
    marker = tag()
    for graph in ("echo", "echo", "quick"):
        await client.assistants.create(graph, metadata={"tag": marker})
    assert await client.assistants.count(metadata={"tag": marker}) == 3
    assert await client.assistants.count(metadata={"tag": marker}, graph_id="echo") == 2
    searched = await client.assistants.search(metadata={"tag": marker}, graph_id="quick")
    counted = await client.assistants.count(metadata={"tag": marker}, graph_id="quick")
    assert counted == len(searched) == 1
    assert await client.assistants.count(metadata={"tag": tag()}) == 0


@pytest.mark.compat("assistants", "assistants.get_graph")
async def test_get_graph(client):
    quick = (await default_assistant(client, "quick"))["assistant_id"]
    nested = (await default_assistant(client, "nested"))["assistant_id"]
    graph = await client.assistants.get_graph(quick)
    assert isinstance(graph, dict) and set(graph) >= {"nodes", "edges"}
    ids = {node["id"] for node in graph["nodes"]}
    assert {"first", "second", "__start__", "__end__"} <= ids
    pairs = {(e["source"], e["target"]) for e in graph["edges"]}
    assert ("first", "second") in pairs
    # xray expands subgraphs: `nested`'s child node shows its own nodes
    flat = await client.assistants.get_graph(nested)
    xray = await client.assistants.get_graph(nested, xray=True)
    assert "child" in {node["id"] for node in flat["nodes"]}
    assert "child:tick" in {node["id"] for node in xray["nodes"]}
    assert "child:tick" not in {node["id"] for node in flat["nodes"]}
    assert await status_of(client.assistants.get_graph(str(uuid.uuid4()))) == 404


@pytest.mark.compat("assistants", "assistants.get_schemas")
async def test_get_schemas(client):
    echo = (await default_assistant(client, "echo"))["assistant_id"]
    schemas = await client.assistants.get_schemas(echo)
    assert_shape(schemas, schema.GraphSchema)
    assert schemas["graph_id"] == "echo"
    assert set(schemas["state_schema"]["properties"]) >= {"text", "echoed"}
    # The reference leaves input/output out (None) when they are the state schema.
    for key in ("input_schema", "output_schema"):
        assert schemas[key] is None or set(schemas[key]["properties"]) >= {"text", "echoed"}
    assert await status_of(client.assistants.get_schemas(str(uuid.uuid4()))) == 404


@pytest.mark.compat("assistants", "assistants.get_subgraphs")
async def test_get_subgraphs(client):
    nested = (await default_assistant(client, "nested"))["assistant_id"]
    echo = (await default_assistant(client, "echo"))["assistant_id"]
    subgraphs = await client.assistants.get_subgraphs(nested)
    assert list(subgraphs) == ["child"]
    assert "ticks" in subgraphs["child"]["state_schema"]["properties"]
    assert await client.assistants.get_subgraphs(echo) == {}
    only = await client.assistants.get_subgraphs(nested, namespace="child")
    assert list(only) == ["child"]
    assert await client.assistants.get_subgraphs(nested, recurse=True) == subgraphs
    # last: the meaning above is checked first
    assert_shape(subgraphs, schema.Subgraphs, "Subgraphs")


@pytest.mark.compat("assistant-versions", "assistants.get_versions")
async def test_get_versions(client):
    created = await client.assistants.create("echo", name="v", metadata={"step": 1})
    await client.assistants.update(created["assistant_id"], metadata={"step": 2})
    await client.assistants.update(created["assistant_id"], name="v3")
    versions = await client.assistants.get_versions(created["assistant_id"])
    for version in versions:
        assert_shape(version, AssistantVersion)
        assert version["assistant_id"] == created["assistant_id"]
    assert [v["version"] for v in versions] == [3, 2, 1]  # newest first
    assert versions[2]["metadata"] == {"step": 1}
    assert versions[1]["metadata"]["step"] == 2
    assert versions[0]["name"] == "v3"
    assert [v["version"] for v in await client.assistants.get_versions(
        created["assistant_id"], limit=1, offset=1)] == [2]
    filtered = await client.assistants.get_versions(created["assistant_id"], metadata={"step": 1})
    assert [v["version"] for v in filtered] == [1]
    assert await status_of(client.assistants.get_versions(str(uuid.uuid4()))) == 404


@pytest.mark.compat("assistant-versions", "assistants.set_latest")
async def test_set_latest(client):
    created = await client.assistants.create("echo", name="one", metadata={"step": 1})
    await client.assistants.update(created["assistant_id"], name="two", metadata={"step": 2})
    latest = await client.assistants.set_latest(created["assistant_id"], 1)
    assert_shape(latest, Assistant)
    assert (latest["version"], latest["name"], latest["metadata"]) == (1, "one", {"step": 1})
    fetched = await client.assistants.get(created["assistant_id"])
    assert (fetched["version"], fetched["name"]) == (1, "one")
    # Runs use the latest version's config: the versions list is unchanged.
    assert len(await client.assistants.get_versions(created["assistant_id"])) == 2
    assert await status_of(client.assistants.set_latest(created["assistant_id"], 99)) == 404
