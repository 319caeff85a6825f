"""Idempotency-Key on creation routes, through the real server (SQLite, and the
3-worker PostgreSQL + Redis cluster): a retry answers what the first request created
(a retried /stream joins the original stream, a retried /wait waits for the original
run), another request under the same key is a 422, a retry after a cancel answers the
cancelled run, and many concurrent duplicates spread over the workers create exactly
one run."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from typing import Any

import httpx
import pytest

from conftest import ServerProcess
from contract_support import wait_final, wait_status

pytest_plugins = ("contract_fixtures",)
# The session server's tests (not the two at the end, which start servers of their own).
on_server = pytest.mark.usefixtures("no_server_errors")

LONG = {"steps": 100_000, "delay": 0.02}


def keyed() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


async def run_ids(client: Any, thread_id: str) -> list[str]:
    return [run["run_id"] for run in await client.runs.list(thread_id, limit=100)]


@on_server
async def test_a_retried_background_run_is_the_same_run(client, new_thread):
    thread_id, headers = await new_thread(), keyed()
    first = await client.runs.create(thread_id, "echo", input={"text": "a"}, headers=headers)
    again = await client.runs.create(thread_id, "echo", input={"text": "a"}, headers=headers)
    assert again["run_id"] == first["run_id"]
    await wait_final(client, thread_id, first["run_id"])
    assert await run_ids(client, thread_id) == [first["run_id"]]
    assert (await client.threads.get_state(thread_id))["values"]["echoed"] == ["a"]
    # Without a key, the same request is a new run, as always.
    other = await client.runs.create(thread_id, "echo", input={"text": "a"})
    assert other["run_id"] != first["run_id"]


@on_server
async def test_the_same_key_on_another_request_is_a_422(client, new_thread, ahttp):
    thread_id, headers = await new_thread(), keyed()
    first = await client.runs.create(thread_id, "echo", input={"text": "a"}, headers=headers)
    for path, body in [
        (f"/threads/{thread_id}/runs", {"assistant_id": "echo", "input": {"text": "b"}}),
        (f"/threads/{thread_id}/runs/wait", {"assistant_id": "echo", "input": {"text": "a"}}),
    ]:
        resp = await ahttp.post(path, json=body, headers=headers)
        assert resp.status_code == 422, resp.text
        assert "already used for a different request" in resp.json()["detail"]
    await wait_final(client, thread_id, first["run_id"])
    assert await run_ids(client, thread_id) == [first["run_id"]]


@on_server
@pytest.mark.parametrize("value", ["", "a\tb", "x" * 256, "ключ"])
async def test_a_key_that_is_not_one_is_a_422(ahttp, value):
    resp = await ahttp.post("/runs", json={"assistant_id": "echo"},
                            headers={"Idempotency-Key": value.encode()})
    assert resp.status_code == 422, resp.text
    assert "printable ASCII" in resp.json()["detail"]


@on_server
async def test_a_retried_wait_waits_for_the_original_run(client, new_thread):
    thread_id, headers = await new_thread(), keyed()
    body = {"input": {"steps": 5, "delay": 0.05}, "headers": headers}
    first, again = await asyncio.gather(
        client.runs.wait(thread_id, "sleepy", **body),
        client.runs.wait(thread_id, "sleepy", **body))
    assert first == again and first["ticks"] == 5
    assert len(await run_ids(client, thread_id)) == 1
    # Stateless: a retry while the run goes on (a second: long enough for the two
    # requests to meet it) waits for it; after it ended, its kept thread answers.
    headers = keyed()
    one, two = await asyncio.gather(*(client.runs.wait(None, "sleepy", **body)
                                      for body in [{"input": {"steps": 20, "delay": 0.05},
                                                    "headers": headers}] * 2))
    assert one == two and one["ticks"] == 20
    kept = {"input": {"text": "s"}, "on_completion": "keep", "headers": keyed()}
    assert await client.runs.wait(None, "echo", **kept) == await client.runs.wait(
        None, "echo", **kept) == {"text": "s", "echoed": ["s"]}


@on_server
async def test_a_retried_stream_joins_the_original_stream(client, new_thread):
    thread_id, headers = await new_thread(), keyed()
    body = {"input": {"steps": 6, "delay": 0.05}, "stream_mode": "updates"}
    seen = []
    async for part in client.runs.stream(thread_id, "sleepy", headers=headers, **body):
        seen.append(part)
        if len(seen) == 3:
            break  # the client gives up mid-stream (a timeout), and retries
    rest = [part async for part in client.runs.stream(
        thread_id, "sleepy", headers={**headers, "Last-Event-ID": seen[-1].id}, **body)]
    whole = [part async for part in client.runs.stream(thread_id, "sleepy", headers=headers,
                                                         **body)]
    run_id = seen[0].data["run_id"]
    assert whole[0].event == "metadata" and whole[0].data["run_id"] == run_id
    assert [(p.id, p.event, p.data) for p in seen + rest] == [
        (p.id, p.event, p.data) for p in whole]
    assert [p.data for p in whole if p.event == "updates"] == [
        {"tick": {"ticks": 1}}] * 6
    assert await run_ids(client, thread_id) == [run_id]


@on_server
async def test_stateless_and_batch_retries(client):
    # Kept threads: a stateless run's thread otherwise goes when it ends, and a retry
    # after that is a 409 (the run is gone), which would race the echo here.
    headers, kept = keyed(), {"on_completion": "keep"}
    first = await client.runs.create(None, "echo", input={"text": "x"}, headers=headers, **kept)
    again = await client.runs.create(None, "echo", input={"text": "x"}, headers=headers, **kept)
    assert again["run_id"] == first["run_id"]
    # One key covers a whole batch: the retry answers the same runs, in order.
    batch = [{"assistant_id": "echo", "input": {"text": str(n)}, **kept} for n in range(3)]
    headers = keyed()
    made = await client.runs.create_batch(batch, headers=headers)
    remade = await client.runs.create_batch(batch, headers=headers)
    assert [r["run_id"] for r in remade] == [r["run_id"] for r in made]
    assert len({r["run_id"] for r in made}) == 3


@on_server
async def test_a_retried_thread_creation_is_the_same_thread(client, ahttp):
    headers = keyed()
    first = await client.threads.create(metadata={"k": 1}, headers=headers)
    again = await client.threads.create(metadata={"k": 1}, headers=headers)
    assert again["thread_id"] == first["thread_id"]
    resp = await ahttp.post("/threads", json={"metadata": {"k": 2}}, headers=headers)
    assert resp.status_code == 422, resp.text
    await client.threads.delete(first["thread_id"])


@on_server
@pytest.mark.parametrize("action", ["interrupt", "rollback"])
async def test_a_retry_after_a_cancel_answers_the_cancelled_run(client, new_thread, action):
    thread_id, headers = await new_thread(), keyed()
    first = await client.runs.create(thread_id, "sleepy", input=LONG, headers=headers)
    await wait_status(client, thread_id, first["run_id"], "running")
    await client.runs.cancel(thread_id, first["run_id"], wait=True, action=action)
    again = await client.runs.create(thread_id, "sleepy", input=LONG, headers=headers)
    assert again["run_id"] == first["run_id"]
    assert again["status"] == "interrupted"
    expected = [] if action == "rollback" else [first["run_id"]]
    assert await run_ids(client, thread_id) == expected
    assert (await client.threads.get(thread_id))["status"] == "idle"


@on_server
async def test_a_retry_after_the_thread_was_deleted_is_a_409(client, new_thread, ahttp):
    thread_id, headers = await new_thread(), keyed()
    body = {"assistant_id": "echo", "input": {"text": "a"}}
    first = await client.runs.wait(thread_id, "echo", input=body["input"], headers=headers)
    assert first["echoed"] == ["a"]
    await client.threads.delete(thread_id)
    resp = await ahttp.post(f"/threads/{thread_id}/runs/wait", json=body, headers=headers)
    assert resp.status_code == 409, resp.text
    assert "no longer exists" in resp.json()["detail"]
    # Nothing was created: the thread stays deleted.
    assert (await ahttp.get(f"/threads/{thread_id}")).status_code == 404


@on_server
@pytest.mark.parametrize("repetition", range(3))
async def test_concurrent_duplicates_create_exactly_one_run(server, client, new_thread,
                                                           repetition):
    """Many duplicates at once, spread over every worker, each after a random delay."""
    thread_id, headers = await new_thread(), keyed()
    body = {"assistant_id": "sleepy", "input": {"steps": 3, "delay": 0.01}}
    urls = getattr(server, "urls", None) or [server.url]
    sessions = [httpx.AsyncClient(base_url=url, timeout=60) for url in urls]
    try:
        async def one(index: int) -> httpx.Response:
            await asyncio.sleep(random.uniform(0, 0.05))
            return await sessions[index % len(sessions)].post(
                f"/threads/{thread_id}/runs", json=body, headers=headers)
        answers = await asyncio.gather(*(one(i) for i in range(20)))
    finally:
        for session in sessions:
            await session.aclose()
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert len({a.json()["run_id"] for a in answers}) == 1
    run_id = answers[0].json()["run_id"]
    await wait_final(client, thread_id, run_id)
    assert await run_ids(client, thread_id) == [run_id]
    assert (await client.threads.get_state(thread_id))["values"]["ticks"] == 3


def test_owners_keys_never_collide():
    """With auth on, alice's and bob's identical keys name their own runs; and bob
    reusing alice's key with another body is his first use of it, not a 422."""
    from auth_support import secured_server

    with secured_server("api-key", "sqlite") as secured:
        headers = keyed()
        with secured.http("alice") as alice, secured.http("bob") as bob:
            body = {"assistant_id": "echo", "input": {"text": "a"}, "on_completion": "keep"}
            mine = alice.post("/runs", json=body, headers=headers)
            theirs = bob.post("/runs", json={**body, "input": {"text": "b"}}, headers=headers)
            assert mine.status_code == theirs.status_code == 200, (mine.text, theirs.text)
            assert mine.json()["run_id"] != theirs.json()["run_id"]
            again = alice.post("/runs", json=body, headers=headers)
            assert again.json()["run_id"] == mine.json()["run_id"]
            # bob cannot see alice's run through her key: his retry is his own run.
            assert bob.post("/runs", json={**body, "input": {"text": "b"}},
                            headers=headers).json()["run_id"] == theirs.json()["run_id"]


def test_a_key_expires_after_its_ttl(tmp_path):
    """RUNLANE_IDEMPOTENCY_TTL=1: retries within the second answer the first run; once
    the key has expired, the same request is a new run."""
    proc = ServerProcess(tmp_path, env={"RUNLANE_IDEMPOTENCY_TTL": "1"}).start()
    try:
        with httpx.Client(base_url=proc.url, timeout=30) as api:
            thread_id = api.post("/threads", json={}).json()["thread_id"]
            body, headers = {"assistant_id": "echo", "input": {"text": "a"}}, keyed()
            started = time.monotonic()
            first = api.post(f"/threads/{thread_id}/runs", json=body, headers=headers).json()
            while True:
                answer = api.post(f"/threads/{thread_id}/runs", json=body, headers=headers)
                assert answer.status_code == 200, answer.text
                if answer.json()["run_id"] != first["run_id"]:
                    break
                assert time.monotonic() - started < 15, "the key never expired"
                time.sleep(0.1)
            assert time.monotonic() - started >= 1.0, "the key expired before its TTL"
            runs = api.get(f"/threads/{thread_id}/runs").json()
            assert len(runs) == 2
    finally:
        proc.stop()
