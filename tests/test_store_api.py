"""/store/items and /store/namespaces through the real SDK, on every backend, and the
graphs' BaseStore being the very same store. Owner scoping is tested on its layer
(item_store + owner_scope) with two owners, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import httpx
import pytest


def _ns(*labels: str) -> list[str]:
    """A namespace of this test's own (the server is shared by the session)."""
    return [f"t{uuid.uuid4().hex[:10]}", *labels]


async def test_put_get_search_delete(client) -> None:
    root = _ns()
    await client.store.put_item([*root, "alice"], "prefs", {"theme": "dark", "n": 1})
    await client.store.put_item([*root, "bob"], "prefs", {"theme": "light", "n": 2})
    item = await client.store.get_item([*root, "alice"], "prefs")
    assert item["namespace"] == [*root, "alice"] and item["key"] == "prefs"
    assert item["value"] == {"theme": "dark", "n": 1}
    assert item["created_at"].endswith("+00:00") and item["updated_at"].endswith("+00:00")
    # A missing item is null (None in the SDK), as the reference server answers.
    assert await client.store.get_item([*root, "alice"], "nothing") is None

    found = await client.store.search_items(root)
    assert sorted(i["value"]["n"] for i in found["items"]) == [1, 2]
    filtered = await client.store.search_items(root, filter={"theme": "light"})
    assert [i["namespace"] for i in filtered["items"]] == [[*root, "bob"]]
    page = await client.store.search_items(root, limit=1, offset=1)
    assert len(page["items"]) == 1

    await client.store.put_item([*root, "alice"], "prefs", {"theme": "blue"})
    assert (await client.store.get_item([*root, "alice"], "prefs"))["value"] == {"theme": "blue"}
    await client.store.delete_item([*root, "alice"], "prefs")
    assert await client.store.get_item([*root, "alice"], "prefs") is None
    await client.store.delete_item([*root, "alice"], "prefs")  # deleting nothing is fine
    assert [i["namespace"] for i in (await client.store.search_items(root))["items"]] == [
        [*root, "bob"]]


async def test_list_namespaces(client) -> None:
    root = _ns()
    for path in (["a", "x"], ["a", "y"], ["b", "x"], ["b", "deep", "er"]):
        await client.store.put_item([*root, *path], "k", {"v": 1})
    everything = (await client.store.list_namespaces(prefix=root))["namespaces"]
    assert sorted(everything) == sorted([[*root, "a", "x"], [*root, "a", "y"],
                                         [*root, "b", "x"], [*root, "b", "deep", "er"]])
    ending_x = (await client.store.list_namespaces(prefix=root, suffix=["x"]))["namespaces"]
    assert sorted(ending_x) == [[*root, "a", "x"], [*root, "b", "x"]]
    shallow = (await client.store.list_namespaces(prefix=root, max_depth=2))["namespaces"]
    assert sorted(shallow) == [[*root, "a"], [*root, "b"]]
    first = (await client.store.list_namespaces(prefix=root, limit=2))["namespaces"]
    rest = (await client.store.list_namespaces(prefix=root, limit=10, offset=2))["namespaces"]
    assert len(first) == 2 and sorted(first + rest) == sorted(everything)


async def test_graph_sees_what_the_api_wrote_and_back(client) -> None:
    """The node's injected `store` and `get_store()` are the API's store."""
    ns = _ns("profile")
    await client.store.put_item(ns, "me", {"name": "Ada"})
    result = await client.runs.wait(None, "memory", input={
        "namespace": ns, "key": "me", "write": {"name": "Grace"}})
    assert result["seen"] == {"name": "Ada"}  # async node, injected BaseStore
    assert result["seen_sync"] == {"name": "Grace"}  # sync node, get_store(), after the write
    assert (await client.store.get_item(ns, "me"))["value"] == {"name": "Grace"}
    # A run on a thread sees the same store as a stateless one.
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], "memory",
                                    input={"namespace": ns, "key": "me"})
    assert result["seen"] == {"name": "Grace"}


async def test_concurrent_puts_of_one_key_keep_one_whole_value(client) -> None:
    ns = _ns()
    values = [{"writer": i, "payload": "x" * i} for i in range(40)]
    await asyncio.gather(*(client.store.put_item(ns, "contended", v) for v in values))
    item = await client.store.get_item(ns, "contended")
    assert item["value"] in values
    assert len((await client.store.search_items(ns, limit=100))["items"]) == 1


async def test_item_ttl_expires(client) -> None:
    ns = _ns()
    await client.store.put_item(ns, "short", {"v": 1}, ttl=0.02)  # minutes: 1.2 s
    await client.store.put_item(ns, "long", {"v": 2}, ttl=60)
    await client.store.put_item(ns, "forever", {"v": 3})
    assert (await client.store.get_item(ns, "short"))["value"] == {"v": 1}
    deadline = time.monotonic() + 15  # expiry + a sweep (every 5 s per worker)
    while await client.store.get_item(ns, "short", refresh_ttl=False) is not None:
        assert time.monotonic() < deadline, "the expired item is still there"
        await asyncio.sleep(0.5)
    assert (await client.store.get_item(ns, "long"))["value"] == {"v": 2}
    assert (await client.store.get_item(ns, "forever"))["value"] == {"v": 3}


BAD_REQUESTS = [
    ("PUT", "/store/items", {"namespace": [], "key": "k", "value": {}}),
    ("PUT", "/store/items", {"namespace": ["a.b"], "key": "k", "value": {}}),
    ("PUT", "/store/items", {"namespace": ["a", ""], "key": "k", "value": {}}),
    ("PUT", "/store/items", {"namespace": ["langgraph"], "key": "k", "value": {}}),
    ("PUT", "/store/items", {"namespace": ["runlane-owner:eA"], "key": "k", "value": {}}),
    ("PUT", "/store/items", {"namespace": "a", "key": "k", "value": {}}),
    ("PUT", "/store/items", {"namespace": ["a"], "key": "", "value": {}}),
    ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": [1]}),
    ("PUT", "/store/items", {"namespace": ["a"], "key": "k"}),
    ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": {}, "ttl": -1}),
    ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": {}, "ttl": "soon"}),
    ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": {}, "index": ["x"]}),
    ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": {}, "bogus": 1}),
    ("GET", "/store/items?namespace=a", None),
    ("GET", "/store/items?key=k", None),
    ("GET", "/store/items?namespace=a..b&key=k", None),
    ("GET", "/store/items?namespace=a&key=k&refresh_ttl=maybe", None),
    ("GET", "/store/items?namespace=runlane-owner:eA&key=k", None),
    ("DELETE", "/store/items", {"namespace": [], "key": "k"}),
    ("DELETE", "/store/items", {"namespace": ["a"]}),
    ("POST", "/store/items/search", {"namespace_prefix": ["a"], "query": "cats"}),
    ("POST", "/store/items/search", {"namespace_prefix": ["a"], "limit": 0}),
    ("POST", "/store/items/search", {"namespace_prefix": ["a"], "offset": -1}),
    ("POST", "/store/items/search", {"namespace_prefix": ["a"], "filter": [1]}),
    ("POST", "/store/items/search", {"namespace_prefix": ["a"], "refresh_ttl": "x"}),
    ("POST", "/store/items/search", {"namespace_prefix": ["runlane-owner:eA"]}),
    ("POST", "/store/namespaces", {"max_depth": 0}),
    ("POST", "/store/namespaces", {"limit": 0}),
    ("POST", "/store/namespaces", {"prefix": "a"}),
    ("POST", "/store/namespaces", {"suffix": ["a.b"]}),
    ("POST", "/store/namespaces", {"prefix": ["runlane-owner:eA"]}),
]


@pytest.mark.parametrize("method,path,body", BAD_REQUESTS)
def test_bad_input_is_a_clear_422(http: httpx.Client, method: str, path: str, body) -> None:
    response = http.request(method, path, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]


# ---------------------------------------------------------------- owner scoping


def _backends(tmp_path: Path) -> list[str]:
    urls = [f"sqlite:///{tmp_path / 'runlane.sqlite'}"]
    if "postgres" in [b.strip() for b in os.environ.get(
            "RUNLANE_TEST_BACKENDS", "sqlite,postgres").split(",")]:
        from cluster import missing_services

        if not missing_services():
            urls.append("postgres")
    return urls


async def test_each_owner_sees_only_its_items_in_api_and_graphs(tmp_path: Path) -> None:
    """Two owners write the same namespaces and keys: each sees only its own items,
    through the store API and through a graph run made on its behalf; the owner-less
    (auth off) view is the whole store."""
    from langgraph.graph import START, StateGraph
    from langgraph.store.base import BaseStore

    from runlane.store.items import ItemStore

    for backend in _backends(tmp_path):
        created = None
        url = backend
        if backend == "postgres":
            from cluster import create_database

            created = url = create_database()
        items = ItemStore(url)
        await items.setup()
        try:
            alice, bob = items.for_owner("alice@example.com"), items.for_owner("bob.x")
            await alice.aput(("notes", "work"), "todo", {"owner": "alice"})
            await bob.aput(("notes", "work"), "todo", {"owner": "bob"})
            await bob.aput(("notes", "home"), "todo", {"owner": "bob"})

            assert (await alice.aget(("notes", "work"), "todo")).value == {"owner": "alice"}
            assert (await bob.aget(("notes", "work"), "todo")).value == {"owner": "bob"}
            assert await alice.aget(("notes", "home"), "todo") is None
            assert [i.value for i in await alice.asearch(("notes",))] == [{"owner": "alice"}]
            assert sorted(await bob.alist_namespaces()) == [("notes", "home"), ("notes", "work")]
            assert await alice.alist_namespaces(max_depth=1) == [("notes",)]
            await alice.adelete(("notes", "work"), "todo")
            assert (await bob.aget(("notes", "work"), "todo")).value == {"owner": "bob"}
            # Without an owner (auth off): everything, owners' items under their label.
            assert len(await items.for_owner(None).alist_namespaces()) == 2

            async def node(state: dict, *, store: BaseStore) -> dict:
                found = await store.asearch(("notes",))
                await store.aput(("notes", "graph"), "seen", {"n": len(found)})
                return {"seen": [i.value for i in found]}

            graph = StateGraph(dict).add_node("n", node).add_edge(START, "n").compile(
                store=items.for_owner(None))
            # As the executor does for a run with an owner (executor._execute).
            as_bob = graph.copy(update={"store": items.for_owner("bob.x")})
            as_alice = graph.copy(update={"store": items.for_owner("alice@example.com")})
            assert sorted(map(str, (await as_bob.ainvoke({}))["seen"])) == [
                str({"owner": "bob"})] * 2
            assert (await as_alice.ainvoke({}))["seen"] == []
            assert (await alice.aget(("notes", "graph"), "seen")).value == {"n": 0}
            assert (await bob.aget(("notes", "graph"), "seen")).value == {"n": 2}
        finally:
            await items.close()
            if created is not None:
                from cluster import drop_database

                drop_database(created)

