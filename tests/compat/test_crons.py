"""client.crons: every method against a real server, shape and meaning."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from compat.shapes import Cron, assert_shape
from compat.support import status_of, tag, wait_until


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value)


@pytest.mark.compat("crons", "crons.create", "crons.search", "crons.delete")
async def test_create(client):
    marker = tag()
    cron = await client.crons.create("echo", schedule="*/5 * * * *", input={"text": "c"},
                                     metadata={"tag": marker})
    # The SDK types the answer as a Run; both the reference and the schema's Cron
    # describe what comes back: the cron.
    assert_shape(cron, Cron)
    assert cron["schedule"] == "*/5 * * * *"
    assert cron["thread_id"] is None  # stateless: each run gets a new thread
    assert cron["enabled"] is True
    assert cron["metadata"]["tag"] == marker
    assert cron["payload"]["input"] == {"text": "c"}
    next_run = _when(cron["next_run_date"])
    now = datetime.now(UTC)
    assert now < next_run <= now + timedelta(minutes=5, seconds=5)
    assert next_run.minute % 5 == 0 and next_run.second == 0
    assert [c["cron_id"] for c in await client.crons.search(metadata={"tag": marker})] == [
        cron["cron_id"]]
    await client.crons.delete(cron["cron_id"])


@pytest.mark.compat("crons", "crons.create")
async def test_create_refuses_a_bad_schedule(client):
    good = await client.crons.create("echo", schedule="30 6 * * 1-5")
    await client.crons.delete(good["cron_id"])
    assert await status_of(client.crons.create("echo", schedule="not a cron")) == 422
    assert await status_of(client.crons.create(str(uuid.uuid4()), schedule="* * * * *")) == 404


@pytest.mark.compat("crons", "crons.create_for_thread", "crons.delete", "runs.list")
async def test_create_for_thread_runs_on_schedule(client, is_reference):
    """A cron on a thread starts runs of it on schedule. runlane reads croniter's sixth
    field (seconds), so it fires within a second; the reference takes 5 fields only,
    so there it fires at the next minute (waits up to ~70 s)."""
    schedule = "* * * * *" if is_reference else "* * * * * *"
    thread = await client.threads.create()
    cron = await client.crons.create_for_thread(
        thread["thread_id"], "echo", schedule=schedule, input={"text": "tick"})
    assert_shape(cron, Cron)
    assert cron["thread_id"] == thread["thread_id"]
    try:
        runs = await wait_until(lambda: client.runs.list(thread["thread_id"]), timeout=75, every=1)
        run = runs[0]
        assert run["metadata"].get("cron_id", cron["cron_id"]) == cron["cron_id"]
        assert await client.runs.join(thread["thread_id"], run["run_id"]) == {
            "text": "tick", "echoed": ["tick"]}
    finally:
        await client.crons.delete(cron["cron_id"])
    assert await status_of(client.crons.create_for_thread(
        str(uuid.uuid4()), "echo", schedule="* * * * *")) == 404


@pytest.mark.compat("crons", "crons.delete", "crons.search")
async def test_delete(client):
    marker = tag()
    cron = await client.crons.create("echo", schedule="0 0 * * *", metadata={"tag": marker})
    assert await client.crons.delete(cron["cron_id"]) is None
    assert await client.crons.search(metadata={"tag": marker}) == []
    assert await status_of(client.crons.delete(cron["cron_id"])) == 404


@pytest.mark.compat("crons", "crons.update", "crons.search")
async def test_update(client):
    marker = tag()
    thread = await client.threads.create()
    cron = await client.crons.create_for_thread(thread["thread_id"], "echo", schedule="0 0 * * *",
                                                input={"text": "a"}, metadata={"tag": marker})
    try:
        updated = await client.crons.update(cron["cron_id"], schedule="*/10 * * * *", enabled=False,
                                            input={"text": "b"}, metadata={"extra": 1})
        assert_shape(updated, Cron)
        assert updated["cron_id"] == cron["cron_id"]
        assert updated["schedule"] == "*/10 * * * *"
        assert updated["enabled"] is False
        assert updated["payload"]["input"] == {"text": "b"}
        assert updated["metadata"] == {"tag": marker, "extra": 1}  # merged
        assert _when(updated["next_run_date"]).minute % 10 == 0
        found = await client.crons.search(metadata={"tag": marker})
        assert [(c["cron_id"], c["schedule"], c["enabled"]) for c in found] == [
            (cron["cron_id"], "*/10 * * * *", False)]
        assert await status_of(client.crons.update(cron["cron_id"], schedule="nope")) == 422
    finally:
        await client.crons.delete(cron["cron_id"])
    assert await status_of(client.crons.update(cron["cron_id"], enabled=True)) == 404


@pytest.mark.compat("crons", "crons.search")
async def test_search_filters_and_pages(client):
    marker = tag()
    thread = await client.threads.create()
    quick = (await client.assistants.search(graph_id="quick", metadata={"created_by": "system"}))[0]
    made = [
        await client.crons.create("echo", schedule="0 1 * * *", metadata={"tag": marker}),
        await client.crons.create(quick["assistant_id"], schedule="0 2 * * *",
                                  metadata={"tag": marker}),
        await client.crons.create_for_thread(thread["thread_id"], "echo", schedule="0 3 * * *",
                                             metadata={"tag": marker}, enabled=False),
    ]
    try:
        found = await client.crons.search(metadata={"tag": marker}, limit=10)
        for cron in found:
            assert_shape(cron, Cron)
        assert {c["cron_id"] for c in found} == {c["cron_id"] for c in made}
        by_assistant = await client.crons.search(metadata={"tag": marker},
                                                 assistant_id=quick["assistant_id"])
        assert [c["cron_id"] for c in by_assistant] == [made[1]["cron_id"]]
        by_thread = await client.crons.search(thread_id=thread["thread_id"])
        assert [c["cron_id"] for c in by_thread] == [made[2]["cron_id"]]
        disabled = await client.crons.search(metadata={"tag": marker}, enabled=False)
        assert [c["cron_id"] for c in disabled] == [made[2]["cron_id"]]
        ordered = await client.crons.search(metadata={"tag": marker}, sort_by="created_at",
                                            sort_order="asc")
        assert [c["cron_id"] for c in ordered] == [c["cron_id"] for c in made]
        page = await client.crons.search(metadata={"tag": marker}, sort_by="created_at",
                                         sort_order="asc", limit=1, offset=1)
        assert [c["cron_id"] for c in page] == [made[1]["cron_id"]]
        selected = await client.crons.search(metadata={"tag": marker},
                                             select=["cron_id", "schedule"])
        assert all(set(c) == {"cron_id", "schedule"} for c in selected), selected
    finally:
        for cron in made:
            await client.crons.delete(cron["cron_id"])


@pytest.mark.compat("crons", "crons.count", "crons.search")
async def test_count_matches_search(client):
    marker = tag()
    thread = await client.threads.create()
    made = [await client.crons.create("echo", schedule="0 4 * * *", metadata={"tag": marker}),
            await client.crons.create_for_thread(thread["thread_id"], "echo", schedule="0 5 * * *",
                                                 metadata={"tag": marker})]
    try:
        assert await client.crons.count(metadata={"tag": marker}) == 2
        assert await client.crons.count(thread_id=thread["thread_id"]) == len(
            await client.crons.search(thread_id=thread["thread_id"])) == 1
        assert await client.crons.count(metadata={"tag": tag()}) == 0
    finally:
        for cron in made:
            await client.crons.delete(cron["cron_id"])
    assert await client.crons.count(metadata={"tag": marker}) == 0
