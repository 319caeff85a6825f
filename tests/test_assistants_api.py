"""Assistants through the real SDK: create, versions, set latest, search, count, delete,
and how an assistant's config/context reach its runs. Both backends (see conftest)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from langgraph_sdk.errors import APIStatusError

IN = {"note": "go"}  # the configured graph reports; it needs some input to start


def _tag() -> str:
    """A metadata value unique to one test, so searches see only its assistants."""
    return uuid.uuid4().hex


async def _status(coro) -> int:
    with pytest.raises(APIStatusError) as caught:
        await coro
    return caught.value.status_code


async def test_create_with_every_field_and_if_exists(client):
    assistant_id = str(uuid.uuid4())
    created = await client.assistants.create(
        "configured", assistant_id=assistant_id, config={"tags": ["a"]},
        context={"temperature": 1}, metadata={"team": "x"}, name="Alpha", description="first")
    assert created["assistant_id"] == assistant_id
    assert created["version"] == 1
    # The context is mirrored into config.configurable, as the reference stores it.
    assert (created["config"], created["context"]) == (
        {"tags": ["a"], "configurable": {"temperature": 1}}, {"temperature": 1})
    assert (created["name"], created["description"], created["metadata"]) == (
        "Alpha", "first", {"team": "x"})
    assert await client.assistants.get(assistant_id) == created
    # raise (the default): 409; do_nothing: the existing assistant, unchanged
    assert await _status(client.assistants.create("configured", assistant_id=assistant_id)) == 409
    again = await client.assistants.create("echo", assistant_id=assistant_id, name="Other",
                                           if_exists="do_nothing")
    assert again == created


async def test_update_makes_versions_and_set_latest_switches(client):
    created = await client.assistants.create(
        "configured", config={"configurable": {"model": "v1"}}, metadata={"a": 1}, name="v1")
    aid = created["assistant_id"]
    v2 = await client.assistants.update(aid, config={"configurable": {"model": "v2"}},
                                        metadata={"b": 2})
    assert v2["version"] == 2
    assert v2["config"] == {"configurable": {"model": "v2"}}
    assert v2["metadata"] == {"a": 1, "b": 2}  # merged key by key
    assert v2["name"] == "v1"  # untouched fields carry over
    assert v2["context"] == {"model": "v2"}  # mirrored from configurable
    # A context alone replaces the config with its mirror (as the reference does).
    v3 = await client.assistants.update(aid, name="v3", context={"k": "v3"})
    assert (v3["version"], v3["name"], v3["config"]) == (3, "v3", {"configurable": {"k": "v3"}})

    versions = await client.assistants.get_versions(aid)
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert versions[2]["config"] == {"configurable": {"model": "v1"}}
    assert "updated_at" not in versions[0]
    page = await client.assistants.get_versions(aid, limit=1, offset=1)
    assert [v["version"] for v in page] == [2]
    assert [v["version"] for v in await client.assistants.get_versions(
        aid, metadata={"b": 2})] == [3, 2]

    back = await client.assistants.set_latest(aid, 1)
    assert (back["version"], back["name"], back["config"]) == (
        1, "v1", {"configurable": {"model": "v1"}})
    assert (await client.assistants.get(aid))["version"] == 1
    # The next update is a new version past every stored one, not 2 again.
    v4 = await client.assistants.update(aid, name="v4")
    assert v4["version"] == 4 and v4["config"] == {"configurable": {"model": "v1"}}
    assert [v["version"] for v in await client.assistants.get_versions(aid)] == [4, 3, 2, 1]

    assert await _status(client.assistants.set_latest(aid, 99)) == 404
    assert await _status(client.assistants.set_latest(str(uuid.uuid4()), 1)) == 404
    assert await _status(client.assistants.get_versions(str(uuid.uuid4()))) == 404


async def test_concurrent_updates_get_distinct_versions(client):
    aid = (await client.assistants.create("configured"))["assistant_id"]
    results = await asyncio.gather(*(client.assistants.update(aid, name=f"n{i}")
                                     for i in range(12)))
    assert sorted(r["version"] for r in results) == list(range(2, 14))
    versions = await client.assistants.get_versions(aid, limit=100)
    assert [v["version"] for v in versions] == list(range(13, 0, -1))
    assert (await client.assistants.get(aid))["version"] == 13


@pytest.mark.race
async def test_concurrent_creates_of_one_id(client):
    for _ in range(5):
        assistant_id = str(uuid.uuid4())
        raised = await asyncio.gather(*(
            client.assistants.create("echo", assistant_id=assistant_id, name=f"n{i}")
            for i in range(8)), return_exceptions=True)
        won = [r for r in raised if isinstance(r, dict)]
        lost = [r for r in raised if not isinstance(r, dict)]
        assert len(won) == 1, raised
        assert all(isinstance(e, APIStatusError) and e.status_code == 409 for e in lost), lost
        assert [v["version"] for v in await client.assistants.get_versions(assistant_id)] == [1]
        other = str(uuid.uuid4())
        kept = await asyncio.gather(*(
            client.assistants.create("echo", assistant_id=other, name=f"n{i}",
                                     if_exists="do_nothing") for i in range(8)))
        assert len({(a["name"], a["created_at"]) for a in kept}) == 1  # all the winner


async def test_search_filters_sort_page_select_and_count(client):
    tag = _tag()
    made = []
    for name in ("Bravo", "alpha", "Charlie"):
        made.append(await client.assistants.create(
            "configured" if name != "Charlie" else "echo", name=name,
            metadata={"tag": tag, "n": name}))
    found = await client.assistants.search(metadata={"tag": tag}, sort_by="name",
                                           sort_order="asc", limit=10)
    assert [a["name"] for a in found] == sorted(["Bravo", "alpha", "Charlie"])
    assert await client.assistants.count(metadata={"tag": tag}) == 3
    assert await client.assistants.count(metadata={"tag": tag}, graph_id="echo") == 1
    # name: a case-insensitive substring
    named = await client.assistants.search(metadata={"tag": tag}, name="ALPH")
    assert [a["name"] for a in named] == ["alpha"]
    assert await client.assistants.count(metadata={"tag": tag}, name="r") == 2
    by_graph = await client.assistants.search(metadata={"tag": tag}, graph_id="configured")
    assert {a["name"] for a in by_graph} == {"Bravo", "alpha"}
    # pages: created_at desc by default; together they are the whole set, once
    pages = [await client.assistants.search(metadata={"tag": tag}, limit=1, offset=i)
             for i in range(4)]
    assert [len(p) for p in pages] == [1, 1, 1, 0]
    assert [p[0]["assistant_id"] for p in pages[:3]] == [a["assistant_id"] for a in made[::-1]]
    page = await client.assistants.search(metadata={"tag": tag}, limit=2,
                                          response_format="object")
    assert len(page["assistants"]) == 2 and page["next"] == "2"
    last = await client.assistants.search(metadata={"tag": tag}, limit=2, offset=2,
                                          response_format="object")
    assert len(last["assistants"]) == 1 and last["next"] is None
    selected = await client.assistants.search(metadata={"tag": tag}, select=["assistant_id",
                                                                            "name"])
    assert all(set(a) == {"assistant_id", "name"} for a in selected)


async def test_assistant_config_and_context_apply_to_runs(client):
    assistant = await client.assistants.create(
        "configured", config={"tags": ["a"]},
        context={"model": "ctx-assistant", "keep": "ctx"})
    thread = await client.threads.create()
    plain = await client.runs.wait(thread["thread_id"], assistant["assistant_id"], input=IN)
    # The context is mirrored into configurable.
    assert plain["seen_configurable"] == {"model": "ctx-assistant", "keep": "ctx"}
    assert plain["seen_context"] == {"model": "ctx-assistant", "keep": "ctx"}
    assert plain["seen_tags"][:1] == ["a"]
    # The run's values win key by key; the rest of the assistant's stays; the run's
    # tags replace the assistant's (as the reference merges them).
    ran = await client.runs.wait(
        thread["thread_id"], assistant["assistant_id"], input=IN,
        config={"tags": ["b"]}, context={"model": "ctx-run"})
    assert ran["seen_configurable"]["model"] == "ctx-run"
    assert ran["seen_context"] == {"model": "ctx-run", "keep": "ctx"}
    assert ran["seen_tags"][:1] == ["b"] and "a" not in ran["seen_tags"]
    configured = await client.runs.wait(
        thread["thread_id"], assistant["assistant_id"], input=IN,
        config={"configurable": {"model": "from-run"}})
    assert configured["seen_context"] == {"model": "from-run", "keep": "ctx"}
    # A new version is what the next run uses; set_latest brings the old one back.
    await client.assistants.update(assistant["assistant_id"],
                                   config={"configurable": {"model": "v2"}}, context={})
    v2 = await client.runs.wait(None, assistant["assistant_id"], input=IN)
    assert v2["seen_context"] == {"model": "v2"}
    await client.assistants.set_latest(assistant["assistant_id"], 1)
    v1 = await client.runs.wait(None, assistant["assistant_id"], input=IN)
    assert v1["seen_context"] == {"model": "ctx-assistant", "keep": "ctx"}


async def test_delete_with_threads_removes_versions_and_its_threads(client):
    assistant = await client.assistants.create("sleepy", name="doomed")
    aid = assistant["assistant_id"]
    await client.assistants.update(aid, name="doomed v2")
    named = await client.threads.create(metadata={"assistant_id": aid})
    ran_on = await client.threads.create()
    running = await client.runs.create(ran_on["thread_id"], aid,
                                       input={"steps": 1000, "delay": 0.01})
    other = await client.threads.create(metadata={"assistant_id": "someone-else"})

    await client.assistants.delete(aid, delete_threads=True)

    assert await _status(client.assistants.get(aid)) == 404
    assert await _status(client.assistants.get_versions(aid)) == 404
    assert await _status(client.assistants.delete(aid)) == 404
    # threads whose metadata names it (a run puts it there) went, with their runs
    assert await _status(client.threads.get(named["thread_id"])) == 404
    assert await _status(client.threads.get(ran_on["thread_id"])) == 404
    assert await _status(client.runs.get(ran_on["thread_id"], running["run_id"])) == 404
    assert (await client.threads.get(other["thread_id"]))["thread_id"] == other["thread_id"]


async def test_delete_stops_and_removes_its_runs_but_keeps_threads(client):
    aid = (await client.assistants.create("sleepy"))["assistant_id"]
    thread = await client.threads.create(metadata={"assistant_id": aid})
    finished = await client.runs.create(thread["thread_id"], aid, input={"steps": 1})
    await client.runs.join(thread["thread_id"], finished["run_id"])
    running = await client.runs.create(thread["thread_id"], aid,
                                       input={"steps": 1000, "delay": 0.01})
    await client.assistants.delete(aid)
    for run in (finished, running):
        assert await _status(client.runs.get(thread["thread_id"], run["run_id"])) == 404
    kept = await client.threads.get(thread["thread_id"])
    assert kept["status"] == "idle"  # the running run was stopped first, not orphaned
    again = await client.runs.wait(thread["thread_id"], "echo", input={"text": "x"})
    assert again["echoed"] == ["x"]


async def test_delete_racing_run_creation_leaves_no_run_behind(client):
    """Runs created for an assistant while it is being deleted: each is either refused
    (404) or admitted before the deletion and stopped and removed by it. None is left
    to run for the deleted assistant, and no thread stays busy."""
    for _ in range(3):
        aid = (await client.assistants.create("sleepy"))["assistant_id"]
        threads = [(await client.threads.create())["thread_id"] for _ in range(8)]

        async def create(thread_id: str, delay: float, aid: str = aid) -> int:
            await asyncio.sleep(delay)
            try:
                await client.runs.create(thread_id, aid, input={"steps": 1000, "delay": 0.01})
            except APIStatusError as exc:
                assert exc.status_code == 404, exc
                return 404
            return 200

        async def delete(aid: str = aid) -> None:
            await asyncio.sleep(0.02)
            await client.assistants.delete(aid)

        # Creations spread from before the deletion to after it.
        answers = (await asyncio.gather(
            delete(), *(create(t, i * 0.01) for i, t in enumerate(threads))))[1:]
        assert await _status(client.assistants.get(aid)) == 404
        for thread_id in threads:
            left = [r for r in await client.runs.list(thread_id)
                    if r["status"] in ("pending", "running")]
            assert left == [], f"runs of the deleted assistant left active: {left}"
            assert (await client.threads.get(thread_id))["status"] != "busy"
        assert set(answers) <= {200, 404}


async def test_default_assistant_cannot_be_deleted(client):
    assert await _status(client.assistants.delete("echo")) == 409


async def test_bad_input(http):
    aid = http.post("/assistants", json={"graph_id": "echo"}).json()["assistant_id"]
    cases = [
        ("post", "/assistants", {"graph_id": "nope"}, "nope"),
        ("post", "/assistants", {"graph_id": "echo", "if_exists": "replace"}, "if_exists"),
        ("post", "/assistants", {"graph_id": "echo", "config": {"configurable": 3}},
         "configurable"),
        ("post", "/assistants", {"graph_id": "echo", "context": [1]}, "context"),
        ("post", "/assistants", {"graph_id": "echo", "surprise": 1}, "surprise"),
        ("patch", f"/assistants/{aid}", {"graph_id": "nope"}, "nope"),
        ("patch", f"/assistants/{aid}", {"metadata": "x"}, "metadata"),
        ("post", f"/assistants/{aid}/latest", {}, "version"),
        ("post", f"/assistants/{aid}/latest", {"version": 0}, "version"),
        ("post", f"/assistants/{aid}/latest", {"version": "two"}, "version"),
        ("post", f"/assistants/{aid}/versions", {"limit": 0}, "limit"),
        ("post", f"/assistants/{aid}/versions", {"offset": -1}, "offset"),
        ("post", f"/assistants/{aid}/versions", {"metadata": 5}, "metadata"),
        ("post", "/assistants/search", {"sort_by": "colour"}, "sort_by"),
        ("post", "/assistants/search", {"sort_order": "sideways"}, "sort_order"),
        ("post", "/assistants/search", {"select": ["secret"]}, "select"),
        ("post", "/assistants/search", {"limit": 100000}, "limit"),
        ("post", "/assistants/count", {"graph_id": 5}, "graph_id"),
    ]
    for method, path, body, mentioned in cases:
        response = http.request(method.upper(), path, json=body)
        assert response.status_code == 422, (path, body, response.text)
        assert mentioned in response.text, (path, body, response.text)
    response = http.get(f"/assistants/{aid}/subgraphs", params={"recurse": "maybe"})
    assert response.status_code == 422 and "recurse" in response.text
    response = http.delete(f"/assistants/{aid}", params={"delete_threads": "maybe"})
    assert response.status_code == 422 and "delete_threads" in response.text
    assert http.get(f"/assistants/{aid}").status_code == 200  # not deleted by the bad call
    assert http.post(f"/assistants/{uuid.uuid4()}/latest", json={"version": 1}).status_code == 404
    assert http.post("/assistants/not-a-uuid/versions", json={}).status_code == 404


async def test_schemas_of_typeddict_graphs(client):
    """The test graphs declare their state with typing.TypedDict, which pydantic
    refuses before Python 3.12: the schemas are produced anyway, as on 3.12."""
    echo = await client.assistants.get_schemas("echo")
    assert echo["graph_id"] == "echo"
    for key in ("input_schema", "output_schema"):
        assert echo[key]["title"] == "EchoState"
        assert echo[key]["properties"] == {
            "text": {"title": "Text", "type": "string"},
            "echoed": {"items": {"type": "string"}, "title": "Echoed", "type": "array"}}
        assert "required" not in echo[key]  # total=False: every key optional
    # the state: each channel as it takes updates (the reducer's list of strings)
    assert echo["state_schema"]["properties"]["echoed"]["items"] == {"type": "string"}
    assert echo["config_schema"] == {} and echo["context_schema"] is None
    configured = await client.assistants.get_schemas("configured")
    assert configured["context_schema"]["type"] == "object"  # context_schema=dict
    chat = await client.assistants.get_schemas("chat")
    assert chat["input_schema"]["required"] == ["messages"]
    assert "AIMessage" in str(chat["input_schema"])
    assert await _status(client.assistants.get_schemas(str(uuid.uuid4()))) == 404


async def test_subgraphs_with_their_schemas(client):
    nested = await client.assistants.get_subgraphs("nested")
    assert list(nested) == ["child"]
    child = nested["child"]
    assert child["graph_id"] == "child"
    assert set(child["state_schema"]["properties"]) == {"ticks", "steps", "delay"}
    assert child["input_schema"]["title"] == "NestedState"
    assert await client.assistants.get_subgraphs("nested", namespace="child") == nested
    assert await client.assistants.get_subgraphs("nested", recurse=True) == nested
    assert await client.assistants.get_subgraphs("echo") == {}
    assert await _status(client.assistants.get_subgraphs("nested", namespace="nope")) == 404
    assert await _status(client.assistants.get_subgraphs(str(uuid.uuid4()))) == 404
