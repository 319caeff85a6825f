"""client.store semantic search (langgraph.json `store.index`) side by side: runlane
(SQLite, and 3 workers on PostgreSQL + Redis) and the reference server, each serving
the same self-contained project: tests/store_keys' deterministic embedding function
(`"./embed.py:embed"`, resolved next to langgraph.json by both servers) and its
`recall` graph, with `store.index` and nothing else. The suite's other tests run on
servers without an index (tests/compat/conftest.py); this module's `server` is its own.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from langgraph_sdk import schema

from cluster import serve
from compat.conftest import REFERENCE, ROOT
from compat.shapes import assert_shape
from compat.support import tag
from conftest import BACKENDS
from store_search_support import DOCS, PROJECT, put_docs

INDEX = {"dims": 32, "embed": "./embed.py:embed", "fields": ["text"]}


def _project(tmp: Path) -> Path:
    """A project directory of its own: embed.py, agent.py and a langgraph.json."""
    project = tmp / "project"
    project.mkdir()
    for name in ("embed.py", "agent.py"):
        shutil.copy(PROJECT / name, project / name)
    (project / "langgraph.json").write_text(json.dumps({
        "dependencies": ["."], "graphs": {"recall": "./agent.py:recall"},
        "store": {"index": INDEX}}))
    return project


@pytest.fixture(scope="module", params=["reference"] if REFERENCE else BACKENDS)
def server(request: pytest.FixtureRequest) -> Iterator[object]:
    with tempfile.TemporaryDirectory(prefix="runlane-compat-search-") as tmp:
        project = _project(Path(tmp))
        if request.param == "reference":
            yield from _reference(project)
            return
        yield from serve(request.param, Path(tmp), project / "langgraph.json")


def _reference(project: Path) -> Iterator[object]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from servers import DEFAULT_REF_VENV, Server, ensure_ref_venv, free_port

    exe = ensure_ref_venv(Path(os.environ.get("RUNLANE_REF_VENV", DEFAULT_REF_VENV)))
    port = free_port()
    ref = Server("reference", [str(exe), "dev", "--no-browser", "--no-reload", "--port",
                               str(port), "--config", "langgraph.json"],
                 project, port, env={"LOG_LEVEL": "WARNING"})
    ref.is_reference = True  # type: ignore[attr-defined]
    ref.start()
    try:
        yield ref
    finally:
        ref.stop()


@pytest.mark.compat("store", "store.search_items", "store.put_item")
async def test_search_ranks_by_query(client):
    ns = ["compat", tag()]
    await put_docs(client, ns)
    for query, best in (("apples from an orchard", "fruit"), ("car on a highway", "cars"),
                        ("whales in the ocean", "sea")):
        found = await client.store.search_items(ns, query=query)
        assert_shape(found, schema.SearchItemsResponse)
        items = found["items"]
        assert items[0]["key"] == best, (query, items)
        scores = [i["score"] for i in items]
        assert scores == sorted(scores, reverse=True) and scores[0] > scores[1], items
    top = await client.store.search_items(ns, query="car highway", limit=1)
    assert [i["key"] for i in top["items"]] == ["cars"]
    filtered = await client.store.search_items(ns, query="car highway",
                                               filter={"title": "about sea"})
    assert [i["key"] for i in filtered["items"]] == ["sea"]


@pytest.mark.compat("store", "store.search_items", "store.put_item")
async def test_search_scores_are_cosine_similarity(client):
    """The score is the cosine similarity of the embedded `fields` and the query (the
    embedding function gives unit vectors: their dot product)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("compat_embed", PROJECT / "embed.py")
    assert spec is not None and spec.loader is not None
    embed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(embed)
    ns = ["compat", tag()]
    await put_docs(client, ns)
    query = "ripe pears and a red car"
    [q] = embed.embed([query])
    expected = {key: sum(a * b for a, b in zip(q, embed.embed([text])[0], strict=True))
                for key, text in DOCS.items()}
    items = (await client.store.search_items(ns, query=query))["items"]
    assert {i["key"]: round(i["score"], 4) for i in items} == {
        k: round(v, 4) for k, v in expected.items()}


@pytest.mark.compat("store", "store.search_items", "store.put_item")
async def test_search_index_fields(client):
    """`index=[...]` embeds those fields instead of the configured ones (here: the
    title, which `fields: ["text"]` leaves out)."""
    ns = ["compat", tag()]
    await put_docs(client, ns)
    await client.store.put_item(ns, "untitled", {"text": "nothing related at all",
                                                 "title": "Volcanoes erupting lava"})
    await client.store.put_item(ns, "titled", {"text": "unrelated words",
                                               "title": "Glaciers melting slowly"},
                                index=["title"])
    glacier = (await client.store.search_items(ns, query="glaciers melting"))["items"]
    assert glacier[0]["key"] == "titled", glacier
    volcano = (await client.store.search_items(ns, query="volcanoes erupting lava"))["items"]
    assert volcano[0]["key"] != "untitled", volcano


@pytest.mark.compat("store", "store.search_items", "store.put_item")
async def test_search_leaves_out_unindexed_items(client):
    """An item put with `index=False` is stored (a plain search finds it) but never
    ranked by a query. (langgraph dev's in-memory store appends such items after the
    ranked ones, unscored: docs/differences.md.)"""
    ns = ["compat", tag()]
    await put_docs(client, ns)
    await client.store.put_item(ns, "hidden", {"text": "whales whales ocean ocean"},
                                index=False)
    ranked = (await client.store.search_items(ns, query="whales ocean"))["items"]
    assert ranked[0]["key"] == "sea", ranked
    assert "hidden" not in [i["key"] for i in ranked], ranked
    plain = (await client.store.search_items(ns))["items"]
    assert "hidden" in [i["key"] for i in plain]


@pytest.mark.compat("store", "store.search_items", "runs.wait")
async def test_graph_search_matches_the_api(client):
    """A node's `runtime.store.asearch(query=...)` ranks as `search_items` does."""
    ns = ["compat", tag()]
    await put_docs(client, ns)
    api = (await client.store.search_items(ns, query="ripe pears"))["items"]
    result = await client.runs.wait(None, "recall", input={"namespace": ns,
                                                           "query": "ripe pears"})
    expected = [(i["key"], round(i["score"], 4)) for i in api]
    assert [(h["key"], round(h["score"], 4)) for h in result["found"]] == expected
    assert [(h["key"], round(h["score"], 4)) for h in result["found_sync"]] == expected
