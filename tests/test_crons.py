"""Crons through the real SDK, on every backend: CRUD and its shapes, firings that
create normal runs (thread and stateless), end_time, enable/disable, delete, the
multitask strategies, and exactly-once firing (on the PostgreSQL cluster, three
workers race for every firing). Schedules use croniter's sixth field (seconds).

Each firing runs the `memory` test graph, which records it in the store under
("cron_log", tag) with the firing time the cron stamped on the run: a firing that
happened twice would show up as two records with one time."""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

EVERY_SECOND = "* * * * * *"
CRON_FIELDS = {"cron_id", "assistant_id", "thread_id", "on_run_completed", "end_time",
               "schedule", "timezone", "created_at", "updated_at", "payload", "user_id",
               "next_run_date", "metadata", "enabled"}


def _utc(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


async def _log(client, tag: str) -> list[dict]:
    found = await client.store.search_items(["cron_log", tag], limit=1000)
    return [item["value"] for item in found["items"]]


async def _until(probe, what: str, timeout: float = 30) -> Any:
    """Poll the async `probe` until it returns something truthy; that value. For a
    firing to come: the deadline is far beyond the fixed waits this replaced."""
    deadline = time.monotonic() + timeout
    while True:
        found = await probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        await asyncio.sleep(0.1)


async def _logged(client, tag: str, at_least: int) -> list[dict]:
    """The cron log of `tag` once it has at least `at_least` entries."""

    async def enough() -> list[dict] | None:
        entries = await _log(client, tag)
        return entries if len(entries) >= at_least else None

    return await _until(enough, f"{at_least} firings logged under {tag}")


async def _settled(client, thread_id: str, timeout: float = 20) -> list[dict]:
    """The thread's runs once none is pending or running."""
    deadline = time.monotonic() + timeout
    while True:
        runs = await client.runs.list(thread_id, limit=100)
        if all(r["status"] not in ("pending", "running") for r in runs):
            return runs
        assert time.monotonic() < deadline, [r["status"] for r in runs]
        await asyncio.sleep(0.2)


async def test_create_search_count_update_delete(client) -> None:
    thread = await client.threads.create()
    tag = uuid.uuid4().hex
    cron = await client.crons.create_for_thread(
        thread["thread_id"], "memory", schedule="0 9 * * *", input={"log": tag},
        metadata={"tag": tag}, timezone="America/New_York")
    assert set(cron) == CRON_FIELDS
    assert cron["thread_id"] == thread["thread_id"] and cron["enabled"] is True
    assert cron["schedule"] == "0 9 * * *" and cron["timezone"] == "America/New_York"
    assert cron["payload"]["input"] == {"log": tag}
    assert cron["payload"]["multitask_strategy"] == "enqueue"  # the reference's default
    assert cron["metadata"] == {"tag": tag} and cron["on_run_completed"] is None
    first = _utc(cron["next_run_date"])
    assert first > datetime.datetime.now(datetime.UTC)
    assert first.astimezone(datetime.timezone(datetime.timedelta(hours=-5))).hour in (9, 10)

    stateless = await client.crons.create("memory", schedule="*/5 * * * *", metadata={"tag": tag})
    assert stateless["thread_id"] is None and stateless["on_run_completed"] == "delete"

    mine = await client.crons.search(metadata={"tag": tag}, sort_by="created_at",
                                     sort_order="asc")
    assert [c["cron_id"] for c in mine] == [cron["cron_id"], stateless["cron_id"]]
    assert [c["cron_id"] for c in await client.crons.search(thread_id=thread["thread_id"])] == [
        cron["cron_id"]]
    by_graph = await client.crons.search(assistant_id="memory", metadata={"tag": tag})
    assert len(by_graph) == 2
    picked = await client.crons.search(metadata={"tag": tag}, select=["cron_id", "schedule"])
    assert all(set(c) == {"cron_id", "schedule"} for c in picked)
    page = await client.crons.search(metadata={"tag": tag}, limit=1, offset=1,
                                     sort_by="created_at", sort_order="asc")
    assert [c["cron_id"] for c in page] == [stateless["cron_id"]]
    assert await client.crons.count(metadata={"tag": tag}) == 2
    assert await client.crons.count(thread_id=thread["thread_id"]) == 1

    updated = await client.crons.update(cron["cron_id"], schedule="30 10 * * *", enabled=False,
                                        input={"log": "changed"}, metadata={"tag": tag, "v": 2})
    assert updated["schedule"] == "30 10 * * *" and updated["enabled"] is False
    assert updated["payload"]["input"] == {"log": "changed"}
    assert updated["metadata"] == {"tag": tag, "v": 2}
    assert _utc(updated["next_run_date"]).minute == 30
    assert await client.crons.search(metadata={"tag": tag}, enabled=False) == [updated]
    end = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=400)
    assert _utc((await client.crons.update(cron["cron_id"], end_time=end))["end_time"]) == end
    cleared = await client.crons.update(cron["cron_id"], end_time=None)
    assert cleared["end_time"] is None

    await client.crons.delete(cron["cron_id"])
    await client.crons.delete(stateless["cron_id"])
    assert await client.crons.count(metadata={"tag": tag}) == 0
    with pytest.raises(httpx.HTTPStatusError) as missing:
        await client.crons.delete(cron["cron_id"])
    assert missing.value.response.status_code == 404
    with pytest.raises(httpx.HTTPStatusError) as missing:
        await client.crons.update(cron["cron_id"], enabled=True)
    assert missing.value.response.status_code == 404


async def test_thread_cron_runs_on_its_thread_until_deleted(client) -> None:
    thread = await client.threads.create()
    tag = uuid.uuid4().hex
    cron = await client.crons.create_for_thread(thread["thread_id"], "memory",
                                                schedule=EVERY_SECOND, input={"log": tag})

    async def two_runs() -> bool:
        return len(await client.runs.list(thread["thread_id"], limit=100)) >= 2

    await _until(two_runs, "two firings on the thread")
    await client.crons.delete(cron["cron_id"])
    runs = await _settled(client, thread["thread_id"])
    assert len(runs) >= 2
    assert all(r["metadata"]["cron_id"] == cron["cron_id"] for r in runs)
    assert all(r["status"] == "success" for r in runs)
    assert {entry["thread_id"] for entry in await _log(client, tag)} == {thread["thread_id"]}
    # Deleting the cron stops it and leaves its past runs.
    await asyncio.sleep(2.2)
    assert len(await client.runs.list(thread["thread_id"], limit=100)) == len(runs)


async def test_a_cron_run_carries_its_cron_id_in_its_config(client) -> None:
    """As the reference's scheduler creates a cron's run: config.configurable.cron_id
    is the cron's id (beside a context too, which otherwise excludes configurable)."""
    thread = await client.threads.create()
    cron = await client.crons.create_for_thread(thread["thread_id"], "memory",
                                                schedule=EVERY_SECOND,
                                                input={"log": uuid.uuid4().hex},
                                                context={"note": "from a cron"})

    async def a_run() -> bool:
        return bool(await client.runs.list(thread["thread_id"], limit=1))

    await _until(a_run, "a firing on the thread")
    await client.crons.delete(cron["cron_id"])
    runs = await _settled(client, thread["thread_id"])
    assert runs and all(
        r["kwargs"]["config"]["configurable"]["cron_id"] == cron["cron_id"] for r in runs), runs
    assert all(r["kwargs"]["context"] == {"note": "from a cron"} for r in runs), runs
    # A run created by hand names no cron.
    made = await client.runs.wait(thread["thread_id"], "memory", input={"log": "by hand"})
    assert made is not None
    by_hand = (await client.runs.list(thread["thread_id"], limit=1))[0]
    assert "cron_id" not in by_hand["kwargs"]["config"]["configurable"], by_hand


def _claims(server) -> Counter:
    """runlane_cron_claims_total by result, summed over the deployment's workers."""
    totals: Counter = Counter()
    for url in getattr(server, "urls", [server.url]):
        for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
            if line.startswith("runlane_cron_claims_total{"):
                result = line.split('result="')[1].split('"')[0]
                totals[result] += float(line.rsplit(" ", 1)[1])
    return totals


async def test_stateless_cron_fires_each_second_exactly_once(client, server) -> None:
    """On the cluster, all three workers wake for every firing and race to claim it:
    the claims they lost prove the race, the records prove one run per firing."""
    before = await asyncio.to_thread(_claims, server)
    tags = [uuid.uuid4().hex for _ in range(2)]
    crons = [await client.crons.create("memory", schedule=EVERY_SECOND, input={"log": tag})
             for tag in tags]
    for tag in tags:
        await _logged(client, tag, 4)
    for cron in crons:
        await client.crons.delete(cron["cron_id"])

    async def last_runs_finished() -> bool:
        """Every firing claimed (won) has run and logged itself."""
        won = (await asyncio.to_thread(_claims, server))["won"] - before["won"]
        return won == sum([len(await _log(client, tag)) for tag in tags])

    await _until(last_runs_finished, "the runs of every claimed firing to log it")
    for tag, cron in zip(tags, crons, strict=True):
        entries = await _log(client, tag)
        fired = Counter(entry["fired_at"] for entry in entries)
        assert fired and max(fired.values()) == 1, f"a firing ran twice: {fired}"
        times = sorted(_utc(t) for t in fired)
        assert len(times) >= 4, times
        # Firings on whole seconds, one run each. (A worker stalled past a firing
        # collapses the missed ones into one, by design, so a gap can happen under load.)
        assert all(t.microsecond == 0 for t in times), times
        assert all(entry["cron_id"] == cron["cron_id"] for entry in entries)
        # Stateless: a thread of its own per run, deleted after it (on_run_completed).
        assert len({entry["thread_id"] for entry in entries}) == len(entries)
    claims = await asyncio.to_thread(_claims, server)
    won = claims["won"] - before["won"]
    lost = claims["lost"] - before["lost"]
    assert won == sum([len(await _log(client, tag)) for tag in tags])
    if hasattr(server, "urls"):
        assert lost > 0, "the workers never raced for a firing"
    else:
        assert lost == 0


async def test_stateless_cron_keeps_threads_when_asked(client) -> None:
    tag = uuid.uuid4().hex
    cron = await client.crons.create("memory", schedule=EVERY_SECOND, input={"log": tag},
                                     on_run_completed="keep")
    assert cron["on_run_completed"] == "keep"
    await _logged(client, tag, 1)
    await client.crons.delete(cron["cron_id"])
    # The runs end, and a thread deleted on completion would be gone by then.
    await asyncio.sleep(1.0)
    entries = await _log(client, tag)
    assert entries
    for entry in entries:
        kept = await client.threads.get(entry["thread_id"])
        assert kept["thread_id"] == entry["thread_id"]


async def test_end_time_stops_firing(client) -> None:
    tag = uuid.uuid4().hex
    end = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=2.5)
    cron = await client.crons.create("memory", schedule=EVERY_SECOND, input={"log": tag},
                                     end_time=end)
    await asyncio.sleep(5)
    entries = await _log(client, tag)
    assert 1 <= len(entries) <= 3
    assert all(_utc(e["fired_at"]) <= end for e in entries)
    [after] = [c for c in await client.crons.search(limit=1000)
               if c["cron_id"] == cron["cron_id"]]
    assert after["next_run_date"] is None
    await client.crons.delete(cron["cron_id"])


async def test_disabled_cron_does_not_fire_until_enabled(client) -> None:
    tag = uuid.uuid4().hex
    cron = await client.crons.create("memory", schedule=EVERY_SECOND, input={"log": tag},
                                     enabled=False)
    await asyncio.sleep(2.5)  # two firings' time: enabled, it would have fired
    assert await _log(client, tag) == []
    await client.crons.update(cron["cron_id"], enabled=True)
    await _logged(client, tag, 1)
    disabled = await client.crons.update(cron["cron_id"], enabled=False)
    disabled_at = datetime.datetime.now(datetime.UTC)
    fired = len(await _log(client, tag))
    assert fired >= 1
    await asyncio.sleep(2.2)  # two firings' time: still enabled, it would have fired
    # A firing is claimed (CronStore.claim) before its run is created, and the run logs
    # it when it executes: a firing claimed just before the disable may be logged after
    # it (counting the log then was racy). What the disable stops is claims: none
    # after it (a claim writes the cron's row, untouched since the disable wrote it),
    # so every firing logged was due before the disable returned.
    [after] = [c for c in await client.crons.search(limit=1000)
               if c["cron_id"] == cron["cron_id"]]
    assert after["updated_at"] == disabled["updated_at"], (disabled, after)
    entries = await _log(client, tag)
    assert len(entries) >= fired
    assert all(_utc(e["fired_at"]) < disabled_at for e in entries), (disabled_at, entries)
    await client.crons.delete(cron["cron_id"])


@pytest.mark.parametrize("strategy", ["reject", "interrupt", "enqueue"])
async def test_firing_on_a_busy_thread_follows_the_multitask_strategy(client, strategy) -> None:
    """Each run lasts 2.5 s and the cron fires every second."""
    thread = await client.threads.create()
    cron = await client.crons.create_for_thread(
        thread["thread_id"], "memory", schedule=EVERY_SECOND, input={"delay": 2.5},
        multitask_strategy=strategy)
    if strategy == "reject":
        await asyncio.sleep(4.6)  # the window the bound on its runs below is about
    else:
        # As many firings as the checks below need; each lands on a busy thread.
        needed = 2 if strategy == "interrupt" else 3

        async def fired_enough() -> bool:
            return len(await client.runs.list(thread["thread_id"], limit=100)) >= needed

        await _until(fired_enough, f"{needed} firings on the thread")
    await client.crons.delete(cron["cron_id"])
    runs = sorted(await _settled(client, thread["thread_id"], timeout=60),
                  key=lambda r: r["created_at"])
    statuses = [r["status"] for r in runs]
    if strategy == "reject":
        # Firings while a run is active are refused: few runs, all complete.
        assert 1 <= len(runs) <= 3 and set(statuses) == {"success"}, statuses
    elif strategy == "interrupt":
        # Each firing interrupts the run before it: only the last completes.
        assert len(runs) >= 2, statuses
        assert set(statuses[:-1]) == {"interrupted"} and statuses[-1] == "success", statuses
    else:
        # Every firing queues a run; they run one after the other, all complete.
        assert len(runs) >= 3 and set(statuses) == {"success"}, statuses


async def test_deleting_the_thread_deletes_its_crons(client) -> None:
    thread = await client.threads.create()
    crons = [await client.crons.create_for_thread(thread["thread_id"], "memory", schedule=s)
             for s in (EVERY_SECOND, "0 9 * * *")]
    await client.threads.delete(thread["thread_id"])
    assert await client.crons.count(thread_id=thread["thread_id"]) == 0
    for cron in crons:
        with pytest.raises(httpx.HTTPStatusError) as gone:
            await client.crons.delete(cron["cron_id"])
        assert gone.value.response.status_code == 404


def _bad_requests(thread_id: str) -> list[tuple[str, str, object, int]]:
    cron = "/runs/crons"
    on_thread = f"/threads/{thread_id}/runs/crons"
    ok = {"assistant_id": "memory", "schedule": "*/5 * * * *"}
    return [
        ("POST", cron, {**ok, "schedule": "every day"}, 422),
        ("POST", cron, {**ok, "schedule": "* * *"}, 422),
        ("POST", cron, {**ok, "schedule": "61 * * * *"}, 422),
        ("POST", cron, {**ok, "schedule": "0 0 31 2 *"}, 422),  # never fires
        ("POST", cron, {**ok, "schedule": ""}, 422),
        ("POST", cron, {"assistant_id": "memory"}, 422),
        ("POST", cron, {"schedule": "* * * * *"}, 422),
        ("POST", cron, {**ok, "timezone": "Mars/Olympus"}, 422),
        ("POST", cron, {**ok, "end_time": "tomorrow"}, 422),
        ("POST", cron, {**ok, "enabled": None}, 422),
        ("POST", cron, {**ok, "enabled": "yes"}, 422),
        ("POST", cron, {**ok, "multitask_strategy": "later"}, 422),
        ("POST", cron, {**ok, "on_run_completed": "archive"}, 422),
        ("POST", cron, {**ok, "webhook": "https://example.com/hook"}, 422),
        ("POST", cron, {**ok, "stream_mode": "everything"}, 422),
        ("POST", cron, {**ok, "surprise": 1}, 422),
        ("POST", cron, {**ok, "assistant_id": "no-such-graph"}, 404),
        ("POST", cron, {**ok, "assistant_id": str(uuid.uuid4())}, 404),
        ("POST", on_thread, {**ok, "on_run_completed": "keep"}, 422),  # stateless only
        ("POST", f"/threads/{uuid.uuid4()}/runs/crons", ok, 404),
        ("POST", "/threads/not-a-uuid/runs/crons", ok, 422),
        ("POST", "/runs/crons/search", {"sort_by": "schedule"}, 422),
        ("POST", "/runs/crons/search", {"sort_order": "up"}, 422),
        ("POST", "/runs/crons/search", {"select": ["bogus"]}, 422),
        ("POST", "/runs/crons/search", {"limit": 0}, 422),
        ("POST", "/runs/crons/search", {"offset": -1}, 422),
        ("POST", "/runs/crons/search", {"thread_id": "nope"}, 422),
        ("POST", "/runs/crons/search", {"metadata": [1]}, 422),
        ("POST", "/runs/crons/count", {"thread_id": "nope"}, 422),
        ("POST", "/runs/crons/count", {"enabled": True}, 422),
        ("PATCH", "/runs/crons/not-a-uuid", {"enabled": True}, 422),
        ("PATCH", f"/runs/crons/{uuid.uuid4()}", {"enabled": True}, 404),
        ("DELETE", "/runs/crons/not-a-uuid", None, 422),
        ("DELETE", f"/runs/crons/{uuid.uuid4()}", None, 404),
    ]


@pytest.mark.race
async def test_update_merges_metadata_and_concurrent_updates_lose_nothing(client) -> None:
    """PATCH merges metadata key by key, into the cron's and into what its runs get
    (as the LangGraph server does). Many concurrent PATCHes, each adding its own key,
    all land: each is read and written under the cron's row lock."""
    tag = uuid.uuid4().hex
    for _ in range(3):
        cron = await client.crons.create("memory", schedule="0 0 1 1 *",
                                         metadata={"tag": tag, "keep": 0})
        first = await client.crons.update(cron["cron_id"], metadata={"keep": 1, "a": 1})
        assert first["metadata"] == {"tag": tag, "keep": 1, "a": 1}
        assert first["payload"]["metadata"] == {"tag": tag, "keep": 1, "a": 1}
        await asyncio.gather(*(client.crons.update(cron["cron_id"], metadata={f"k{i}": i})
                               for i in range(16)))
        found = await client.crons.search(metadata={"tag": tag})
        assert [c["cron_id"] for c in found] == [cron["cron_id"]]
        expected = {"tag": tag, "keep": 1, "a": 1, **{f"k{i}": i for i in range(16)}}
        assert found[0]["metadata"] == expected
        assert found[0]["payload"]["metadata"] == expected
        # other fields still replace, and an update without metadata keeps it
        other = await client.crons.update(cron["cron_id"], input={"log": "x"}, enabled=False)
        assert other["metadata"] == expected and other["payload"]["input"] == {"log": "x"}
        await client.crons.delete(cron["cron_id"])


def test_bad_input_is_a_clear_4xx(http: httpx.Client) -> None:
    thread_id = http.post("/threads", json={}).json()["thread_id"]
    created = http.post("/runs/crons", json={"assistant_id": "memory",
                                             "schedule": "0 0 1 1 *"}).json()
    patch = f"/runs/crons/{created['cron_id']}"
    cases = [
        *_bad_requests(thread_id),
        ("PATCH", patch, {"schedule": "bad"}, 422),
        ("PATCH", patch, {"timezone": "Nowhere/Else"}, 422),
        ("PATCH", patch, {"enabled": None}, 422),
        ("PATCH", patch, {"schedule": None}, 422),
        ("PATCH", patch, {"unknown": 1}, 422),
        ("PATCH", patch, {"end_time": "soon"}, 422),
    ]
    try:
        for method, path, body, expected in cases:
            response = http.request(method, path, json=body)
            if response.status_code == 200 and method == "POST" and path.endswith("/crons"):
                http.delete(f"/runs/crons/{response.json()['cron_id']}")  # do not leak it
            assert response.status_code == expected, (method, path, body, response.text)
            assert response.json()["detail"], response.text
        # None of it changed the cron.
        [after] = [c for c in http.post("/runs/crons/search", json={"limit": 1000}).json()
                   if c["cron_id"] == created["cron_id"]]
        assert after["schedule"] == "0 0 1 1 *" and after["enabled"] is True
    finally:
        http.delete(patch)


# ---------------------------------------------------------------- owner scoping


async def test_each_owner_sees_only_its_crons(tmp_path: Path) -> None:
    """The cron store with two owners: another owner's cron is exactly a missing one."""
    from runlane.serde import utcnow
    from runlane.store.crons import CronStore
    from runlane.store.database import Database
    from runlane.store.migrate import upgrade

    db = Database(f"sqlite:///{tmp_path / 'crons.sqlite'}")
    upgrade(db.engine)
    crons = CronStore(db)
    try:
        now = utcnow()
        for owner in ("alice", "bob"):
            await crons.insert({
                "cron_id": str(uuid.uuid4()), "assistant_id": "a", "thread_id": None,
                "schedule": "* * * * *", "payload": {}, "metadata": {"who": owner},
                "user_id": owner, "owner": owner, "enabled": True, "end_time": None,
                "next_run_date": now, "created_at": now, "updated_at": now})
        [alices] = await crons.search(owner="alice")
        assert alices.metadata == {"who": "alice"}
        assert await crons.count(owner="bob") == 1 and await crons.count(owner=None) == 2
        assert await crons.get(alices.cron_id, owner="bob") is None
        assert await crons.update(alices.cron_id, {"enabled": False}, owner="bob") is None
        assert await crons.delete(alices.cron_id, owner="bob") is False
        assert (await crons.get(alices.cron_id, owner="alice")).enabled is True
        assert await crons.delete(alices.cron_id, owner="alice") is True
        # The scheduler acts for every owner: due() sees all crons.
        assert [c.owner for c in await crons.due(now)] == ["bob"]
    finally:
        await db.close()


async def test_crons_survive_a_restart(fresh_server) -> None:
    """Crons live in the database: after a restart they go on firing, and the firings
    missed while the server was down collapse into one."""
    from langgraph_sdk import get_client

    client = get_client(url=fresh_server.url)
    tag = uuid.uuid4().hex
    cron = await client.crons.create("memory", schedule=EVERY_SECOND, input={"log": tag})
    await _logged(client, tag, 1)
    await asyncio.to_thread(fresh_server.stop)
    before = len(await _log(get_client(url=fresh_server.start().url), tag))
    client = get_client(url=fresh_server.url)
    await _logged(client, tag, before + 2)
    await client.crons.delete(cron["cron_id"])
    await asyncio.sleep(1.0)  # the last runs log (a firing run twice would show)
    entries = await _log(client, tag)
    assert before >= 1 and len(entries) >= before + 2, (before, len(entries))
    assert max(Counter(e["fired_at"] for e in entries).values()) == 1
