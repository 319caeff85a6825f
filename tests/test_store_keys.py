"""langgraph.json's `store` and `checkpointer` keys on real servers (one process on
SQLite, three workers on PostgreSQL + Redis), each project a langgraph.json a user
would write (tests/store_keys/):

- `store.index` (langgraph.json): `client.store.search_items(query=...)` and a graph's
  `runtime.store.asearch(query=...)` rank items by similarity to the query with a
  score (sqlite-vec on SQLite, pgvector on PostgreSQL), `fields` choose what is
  embedded, `index=False` items are never ranked, `index=[...]` overrides the fields.
- `checkpointer.ttl` `delete` (langgraph.json): new threads, created by the API or by
  a run, get the default TTL and are deleted after it; a thread's own TTL wins.
- `store.ttl` + `checkpointer.ttl` `keep_latest` (langgraph-ttl.json): new items get
  the default TTL, reads refresh it; idle threads keep only their latest checkpoint.
- A bad value of any key stops start-up with one line saying what to fix.

The embedding function is tests/store_keys/embed.py: a deterministic bag of words.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from cluster import serve
from conftest import BACKENDS, ServerProcess
from store_search_support import DOCS, PROJECT, put_docs


@pytest.fixture(scope="module", params=BACKENDS)
def indexed(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """tests/store_keys/langgraph.json: store.index, checkpointer.ttl delete (3 s)."""
    yield from serve(request.param, tmp_path_factory.mktemp(f"index-{request.param}"),
                     PROJECT / "langgraph.json")


@pytest.fixture(scope="module", params=BACKENDS)
def expiring(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """tests/store_keys/langgraph-ttl.json: store.ttl (12 s, refreshed on read) and
    checkpointer.ttl keep_latest (6 s)."""
    yield from serve(request.param, tmp_path_factory.mktemp(f"ttl-{request.param}"),
                     PROJECT / "langgraph-ttl.json")


def _client(server: Any) -> Any:
    client = get_client(url=server.url, timeout=60)
    urls = getattr(server, "urls", None)
    if urls:  # a cluster: every request to the next worker
        from cluster import RoundRobinTransport

        client.http.client._transport = RoundRobinTransport(urls)
    return client


def _ns() -> list[str]:
    return ["docs", uuid.uuid4().hex[:10]]


async def _wait_for(predicate, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.25)


# ---------------------------------------------------------------- store.index


async def test_search_ranks_by_similarity_with_a_score(indexed: Any) -> None:
    client = _client(indexed)
    ns = _ns()
    await put_docs(client, ns)
    for query, best in (("apples from an orchard", "fruit"), ("car on a highway", "cars"),
                        ("whales in the ocean", "sea")):
        items = (await client.store.search_items(ns, query=query))["items"]
        assert items[0]["key"] == best, (query, items)
        scores = [i["score"] for i in items]
        assert all(isinstance(s, float) for s in scores), items
        assert scores == sorted(scores, reverse=True), items
        assert scores[0] > 0.3 and scores[0] > scores[1], items
    # limit and a filter apply to the ranked search too.
    top = (await client.store.search_items(ns, query="car highway", limit=1))["items"]
    assert [i["key"] for i in top] == ["cars"]
    filtered = (await client.store.search_items(ns, query="car highway",
                                                filter={"title": "about sea"}))["items"]
    assert [i["key"] for i in filtered] == ["sea"]
    # Without a query: every item, unranked (no score), as before.
    plain = (await client.store.search_items(ns))["items"]
    assert sorted(i["key"] for i in plain) == sorted(DOCS)
    assert all(i.get("score") is None for i in plain), plain


async def test_fields_select_what_is_embedded(indexed: Any) -> None:
    """`fields: ["text"]`: a title is not embedded, unless a put names it (`index`)."""
    client = _client(indexed)
    ns = _ns()
    await put_docs(client, ns)
    await client.store.put_item(ns, "titled", {"text": "nothing related at all",
                                               "title": "Volcanoes erupting lava"})
    await client.store.put_item(ns, "reindexed", {"text": "also unrelated words",
                                                  "title": "Glaciers melting slowly"},
                                index=["title"])
    volcano = (await client.store.search_items(ns, query="volcanoes erupting lava"))["items"]
    assert volcano[0]["key"] != "titled" and volcano[0]["score"] < 0.3, volcano
    glacier = (await client.store.search_items(ns, query="glaciers melting"))["items"]
    assert glacier[0]["key"] == "reindexed" and glacier[0]["score"] > 0.5, glacier


async def test_index_false_items_are_not_ranked(indexed: Any) -> None:
    client = _client(indexed)
    ns = _ns()
    await put_docs(client, ns)
    await client.store.put_item(ns, "hidden", {"text": "whales whales ocean ocean"},
                                index=False)
    ranked = (await client.store.search_items(ns, query="whales ocean"))["items"]
    assert "hidden" not in [i["key"] for i in ranked] and ranked[0]["key"] == "sea", ranked
    plain = (await client.store.search_items(ns))["items"]
    assert "hidden" in [i["key"] for i in plain]  # stored, only not embedded
    # Put again without index=False: embedded now, and ranked first.
    await client.store.put_item(ns, "hidden", {"text": "whales whales ocean ocean"})
    ranked = (await client.store.search_items(ns, query="whales ocean"))["items"]
    assert ranked[0]["key"] == "hidden", ranked


async def test_a_graph_searches_the_same_ranking(indexed: Any) -> None:
    """A node's `runtime.store.asearch(query=...)` and a sync node's injected store
    rank as the API does."""
    client = _client(indexed)
    ns = _ns()
    await put_docs(client, ns)
    api = (await client.store.search_items(ns, query="ripe pears"))["items"]
    result = await client.runs.wait(None, "recall", input={"namespace": ns,
                                                           "query": "ripe pears"})
    expected = [(i["key"], round(i["score"], 5)) for i in api]
    assert [(h["key"], round(h["score"], 5)) for h in result["found"]] == expected
    assert [(h["key"], round(h["score"], 5)) for h in result["found_sync"]] == expected
    assert expected[0][0] == "fruit"


# ------------------------------------------------------ checkpointer.ttl: delete


async def test_default_thread_ttl_deletes_threads(indexed: Any) -> None:
    """checkpointer.ttl {strategy: delete, default_ttl: 0.05 min}: a thread created
    without a TTL (by the API, or by a run) is deleted after it; a thread's own TTL
    wins."""
    client = _client(indexed)
    plain = await client.threads.create()
    own = await client.threads.create(ttl={"strategy": "delete", "ttl": 60})
    by_run = str(uuid.uuid4())
    await client.runs.wait(by_run, "steps", input={}, if_not_exists="create")
    assert (await client.threads.get(plain["thread_id"]))["thread_id"] == plain["thread_id"]

    async def gone(thread_id: str) -> bool:
        try:
            await client.threads.get(thread_id)
        except httpx.HTTPStatusError as exc:
            return exc.response.status_code == 404
        return False

    await _wait_for(lambda: gone(plain["thread_id"]), "the default TTL to delete a thread")
    await _wait_for(lambda: gone(by_run), "the default TTL to delete a run's thread")
    # Its own TTL (an hour) wins over the default.
    assert (await client.threads.get(own["thread_id"]))["thread_id"] == own["thread_id"]


# -------------------------------------------- store.ttl, checkpointer.ttl: keep_latest


async def test_default_item_ttl_refreshed_on_read(expiring: Any) -> None:
    """store.ttl {default_ttl: 0.2 min, refresh_on_read: true}: an item put without a
    TTL expires 12 s after its last write or read; one with its own TTL keeps it."""
    client = _client(expiring)
    ns = _ns()
    await client.store.put_item(ns, "read", {"v": 1})
    await client.store.put_item(ns, "unread", {"v": 2})
    await client.store.put_item(ns, "own", {"v": 3}, ttl=60)
    unread_gone = False
    started = time.monotonic()
    # Read `read` every half second (each read refreshes its TTL) until `unread`,
    # untouched, has expired and been swept, and at least two TTLs have passed.
    while not unread_gone or time.monotonic() - started < 26:
        assert time.monotonic() - started < 90, "the unread item never expired"
        assert (await client.store.get_item(ns, "read"))["value"] == {"v": 1}
        unread_gone = await client.store.get_item(ns, "unread", refresh_ttl=False) is None
        await asyncio.sleep(0.5)
    assert time.monotonic() - started >= 12  # not before its TTL

    async def read_gone() -> bool:
        return await client.store.get_item(ns, "read", refresh_ttl=False) is None

    await _wait_for(read_gone, "the read item to expire once no longer read")
    assert (await client.store.get_item(ns, "own", refresh_ttl=False))["value"] == {"v": 3}


async def test_default_thread_ttl_keeps_the_latest_checkpoint(expiring: Any) -> None:
    """checkpointer.ttl {strategy: keep_latest, default_ttl: 0.1 min}: an idle thread
    keeps its state and only its latest checkpoint."""
    client = _client(expiring)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    for _ in range(2):
        await client.runs.wait(tid, "steps", input={})
    assert len(await client.threads.get_history(tid, limit=100)) > 1
    values = (await client.threads.get_state(tid))["values"]
    assert values == {"count": 4}

    async def pruned() -> bool:
        return len(await client.threads.get_history(tid, limit=100)) == 1

    await _wait_for(pruned, "keep_latest to prune the idle thread's checkpoints")
    assert (await client.threads.get(tid))["thread_id"] == tid
    assert (await client.threads.get_state(tid))["values"] == values
    # It goes on working: the next run starts from the kept state.
    assert (await client.runs.wait(tid, "steps", input={}))["count"] == 6


# ------------------------------------------------------------------ bad values


def _config(tmp_path: Path, store: Any = None, checkpointer: Any = None) -> Path:
    raw: dict[str, Any] = {"dependencies": [str(PROJECT)],
                           "graphs": {"steps": f"{PROJECT}/agent.py:steps"}}
    if store is not None:
        raw["store"] = store
    if checkpointer is not None:
        raw["checkpointer"] = checkpointer
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps(raw))
    return config


EMBED = f"{PROJECT}/embed.py:embed"


@pytest.mark.parametrize(("store", "checkpointer", "mentions"), [
    ({"index": {"dims": 0, "embed": EMBED}}, None, "store.index.dims must be a positive integer"),
    ({"index": {"dims": "32", "embed": EMBED}}, None,
     "store.index.dims must be a positive integer"),
    ({"index": {"embed": EMBED}}, None, "needs both 'dims'"),
    ({"index": {"dims": 32, "embed": "./nowhere.py:embed"}}, None, "nowhere.py does not exist"),
    ({"index": {"dims": 32, "embed": f"{PROJECT}/embed.py:missing"}}, None,
     "has no attribute 'missing'"),
    ({"index": {"dims": 32, "embed": "no-colon"}}, None, "store.index.embed must be"),
    ({"index": {"dims": 32, "embed": "nosuchprovider:model"}}, None, "LangChain cannot load it"),
    ({"index": {"dims": 32, "embed": EMBED, "fields": "text"}}, None,
     "store.index.fields must be a non-empty list"),
    ({"index": {"dim": 32, "embed": EMBED}}, None, "unknown key(s) 'dim'"),
    ({"ttl": {"default_ttl": -5}}, None, "store.ttl.default_ttl must be a positive number"),
    ({"ttl": {"refresh_on_read": "yes"}}, None, "refresh_on_read must be true or false"),
    (None, {"ttl": {"strategy": "archive", "default_ttl": 60}}, "strategy must be one of"),
    (None, {"ttl": {"default_ttl": "a week"}}, "checkpointer.ttl.default_ttl must be"),
    (None, {"ttl": {"default_ttl": 60, "sweep_interval_minutes": 0}},
     "sweep_interval_minutes must be a positive number"),
], ids=["dims-zero", "dims-string", "dims-missing", "embed-no-file", "embed-no-function",
        "embed-not-a-spec", "embed-unknown-provider", "fields-not-a-list", "misspelt-key",
        "item-ttl-negative", "refresh-not-bool", "unknown-strategy", "thread-ttl-string",
        "sweep-zero"])
def test_bad_values_stop_start_up_with_one_line(tmp_path: Path, store: Any, checkpointer: Any,
                                                mentions: str) -> None:
    config = _config(tmp_path, store, checkpointer)
    done = subprocess.run(
        [sys.executable, "-m", "runlane.cli", "serve", "--config", str(config), "--port", "1",
         "--database-url", f"sqlite:///{tmp_path / 'db.sqlite'}"],
        capture_output=True, text=True, timeout=90, env={**os.environ, "COLUMNS": "400"},
        check=False)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot start" in lines[0] and mentions in lines[0], done.stderr


def test_vectors_of_another_length_than_dims_are_a_clear_500(tmp_path: Path) -> None:
    """dims is not checked against the model at start-up (that would call it): a put
    whose vectors are not `dims` long fails saying which setting to fix."""
    config = _config(tmp_path, {"index": {"dims": 8, "embed": EMBED}})
    server = ServerProcess(tmp_path / "server", config=config).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            resp = http.put("/store/items", json={"namespace": ["a"], "key": "k",
                                                  "value": {"text": "hello"}})
            assert resp.status_code == 500, resp.text
            assert "store.index.dims is 8" in resp.json()["detail"], resp.text
        assert "store.index misconfigured" in server.log()
    finally:
        server.stop()


async def test_each_owner_ranks_only_its_own_items(tmp_path: Path) -> None:
    """With auth on, an owner's query search ranks its own items only (the owner's
    hidden namespace label applies to the vector search too), on both backends."""
    from runlane.store.items import ItemStore
    from runlane.store_config import IndexConfig, StoreConfig, load_embeddings
    from test_store_api import _backends

    config = load_embeddings(StoreConfig(IndexConfig(32, "./embed.py:embed", ("text",))),
                             PROJECT)
    for backend in _backends(tmp_path):
        created = url = backend
        if backend == "postgres":
            from cluster import create_database

            created = url = create_database()
        items = ItemStore(url, config=config)
        await items.setup()
        try:
            alice, bob = items.for_owner("alice"), items.for_owner("bob")
            await alice.aput(("docs",), "a", {"text": "whales in the ocean"})
            await bob.aput(("docs",), "b", {"text": "whales in the deep ocean"})
            await bob.aput(("docs",), "c", {"text": "a red car"})
            assert [i.key for i in await alice.asearch(("docs",), query="whales")] == ["a"]
            assert [i.key for i in await bob.asearch(("docs",), query="whales")] == ["b", "c"]
            everyone = await items.for_owner(None).asearch((), query="ocean whales")
            assert sorted(i.key for i in everyone[:2]) == ["a", "b"]
        finally:
            await items.close()
            if backend == "postgres":
                from cluster import drop_database

                drop_database(created)
