"""client.store: every method against a real server, shape and meaning."""

from __future__ import annotations

import pytest
from langgraph_sdk import schema

from compat.shapes import Item, assert_shape
from compat.support import tag


@pytest.mark.compat("store", "store.put_item", "store.get_item")
async def test_put_and_get(client):
    ns = ["compat", tag(), "memories"]
    assert await client.store.put_item(ns, "k1", {"text": "hello", "n": 1}) is None
    item = await client.store.get_item(ns, "k1")
    assert_shape(item, Item)
    assert (item["namespace"], item["key"], item["value"]) == (ns, "k1", {"text": "hello", "n": 1})
    # put again replaces the value
    await client.store.put_item(ns, "k1", {"text": "again"})
    again = await client.store.get_item(ns, "k1")
    assert again["value"] == {"text": "again"}
    assert again["updated_at"] >= item["updated_at"]
    assert await client.store.get_item(ns, "missing") is None


@pytest.mark.compat("store", "store.put_item", "store.get_item")
async def test_put_with_ttl_and_index(client):
    ns = ["compat", tag()]
    await client.store.put_item(ns, "ttl", {"v": 1}, ttl=5)
    await client.store.put_item(ns, "unindexed", {"v": 2}, index=False)
    assert (await client.store.get_item(ns, "ttl", refresh_ttl=True))["value"] == {"v": 1}
    assert (await client.store.get_item(ns, "unindexed"))["value"] == {"v": 2}


@pytest.mark.compat("store", "store.delete_item", "store.get_item")
async def test_delete(client):
    ns = ["compat", tag()]
    await client.store.put_item(ns, "gone", {"v": 1})
    await client.store.put_item(ns, "kept", {"v": 2})
    assert await client.store.delete_item(ns, "gone") is None
    assert await client.store.get_item(ns, "gone") is None
    assert (await client.store.get_item(ns, "kept"))["value"] == {"v": 2}
    await client.store.delete_item(ns, "gone")  # deleting what is not there is not an error


@pytest.mark.compat("store", "store.search_items")
async def test_search_items(client):
    root = ["compat", tag()]
    await client.store.put_item([*root, "a"], "1", {"kind": "x", "n": 1})
    await client.store.put_item([*root, "a"], "2", {"kind": "y", "n": 2})
    await client.store.put_item([*root, "b"], "3", {"kind": "x", "n": 3})
    found = await client.store.search_items(root)
    assert_shape(found, schema.SearchItemsResponse)
    assert sorted(i["key"] for i in found["items"]) == ["1", "2", "3"]
    xs = await client.store.search_items(root, filter={"kind": "x"})
    assert sorted(i["key"] for i in xs["items"]) == ["1", "3"]
    in_a = await client.store.search_items([*root, "a"])
    assert sorted(i["key"] for i in in_a["items"]) == ["1", "2"]
    both = await client.store.search_items(root, limit=2)
    rest = await client.store.search_items(root, limit=2, offset=2)
    assert len(both["items"]) == 2 and len(rest["items"]) == 1
    assert {i["key"] for i in both["items"] + rest["items"]} == {"1", "2", "3"}
    assert (await client.store.search_items(["compat", tag()]))["items"] == []


@pytest.mark.compat("store", "store.list_namespaces")
async def test_list_namespaces(client):
    root = ["compat", tag()]
    for ns in ([*root, "a", "mem"], [*root, "b", "mem"], [*root, "b", "docs"]):
        await client.store.put_item(ns, "k", {"v": 1})
    listed = await client.store.list_namespaces(prefix=root)
    assert_shape(listed, schema.ListNamespaceResponse)
    assert sorted(listed["namespaces"]) == sorted(
        [[*root, "a", "mem"], [*root, "b", "docs"], [*root, "b", "mem"]])
    shallow = await client.store.list_namespaces(prefix=root, max_depth=3)
    assert sorted(shallow["namespaces"]) == [[*root, "a"], [*root, "b"]]
    mem = await client.store.list_namespaces(prefix=root, suffix=["mem"])
    assert sorted(mem["namespaces"]) == [[*root, "a", "mem"], [*root, "b", "mem"]]
    page = await client.store.list_namespaces(prefix=root, limit=1, offset=1)
    assert len(page["namespaces"]) == 1
    assert (await client.store.list_namespaces(prefix=["compat", tag()]))["namespaces"] == []
