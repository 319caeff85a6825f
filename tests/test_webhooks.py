"""Webhooks end to end: a real local HTTP receiver, runs created through langgraph_sdk on
every backend. Delivered once when the run is terminal, retried with backoff, never
holding up the run; exactly once across workers; retried after a crash."""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client

from conftest import ServerProcess
from webhook_receiver import WebhookReceiver

TERMINAL = {"success", "error", "timeout", "interrupted"}


async def wait_for(predicate, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_webhook_posts_the_finished_run_once(client) -> None:
    with WebhookReceiver() as receiver:
        tid = (await client.threads.create())["thread_id"]
        run = await client.runs.create(tid, "quick", input={"n": 1},
                                       webhook=f"{receiver.url}/hooks/done?x=1")
        await client.runs.join(tid, run["run_id"])
        await wait_for(lambda: receiver.delivered(run["run_id"]), what="the webhook")
        await asyncio.sleep(1.0)  # nothing more arrives
        [request] = receiver.attempts(run["run_id"])
    assert request["path"] == "/hooks/done?x=1"
    assert request["content_type"] == "application/json"
    body = request["body"]
    assert body["run_id"] == run["run_id"] and body["thread_id"] == tid
    assert body["status"] == "success"
    assert body["values"] == {"n": 3}
    assert body["assistant_id"] == run["assistant_id"]
    assert body["webhook_sent_at"]
    assert body["kwargs"]["webhook"] == f"{receiver.url}/hooks/done?x=1"


async def test_webhook_for_every_way_a_run_ends(client, http) -> None:
    with WebhookReceiver() as receiver:
        tid = (await client.threads.create())["thread_id"]
        failed = await client.runs.create(tid, "failing", input={}, webhook=receiver.url)
        await client.runs.join(tid, failed["run_id"])
        tid2 = (await client.threads.create())["thread_id"]
        delayed = await client.runs.create(tid2, "quick", input={"n": 1}, after_seconds=30,
                                           webhook=receiver.url)
        assert http.post(f"/threads/{tid2}/runs/{delayed['run_id']}/cancel").status_code == 202
        tid3 = (await client.threads.create())["thread_id"]
        running = await client.runs.create(tid3, "sleepy", input={"steps": 100, "delay": 0.05},
                                           webhook=receiver.url)

        async def is_running() -> bool:
            return (await client.runs.get(tid3, running["run_id"]))["status"] == "running"

        await wait_until(is_running, what="the run to start")
        stopped = http.post(f"/threads/{tid3}/runs/{running['run_id']}/cancel",
                            params={"wait": "true"})
        assert stopped.status_code == 200, stopped.text
        for run, status in ((failed, "error"), (delayed, "interrupted"),
                            (running, "interrupted")):
            await wait_for(lambda run=run: receiver.delivered(run["run_id"]),
                           what=f"the webhook of the {status} run")
            [request] = receiver.attempts(run["run_id"])
            assert request["body"]["status"] == status
        assert receiver.delivered(failed["run_id"])[0]["body"]["error"]["error"] == "ValueError"


async def wait_until(probe, timeout: float = 20.0, what: str = "condition") -> None:
    """Poll the async `probe` until it is true."""
    deadline = time.monotonic() + timeout
    while not await probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def _counted(server: ServerProcess, outcome: str) -> float:
    """runlane_webhook_attempts_total{outcome} summed over the deployment's workers."""
    total = 0.0
    for url in getattr(server, "urls", None) or [server.url]:
        for line in httpx.get(f"{url}/metrics").text.splitlines():
            if line.startswith(f'runlane_webhook_attempts_total{{outcome="{outcome}"}}'):
                total += float(line.rsplit(" ", 1)[1])
    return total


async def test_failing_receiver_is_retried_with_backoff(client, server) -> None:
    with WebhookReceiver(fail_first=2, fail_status=503) as receiver:
        tid = (await client.threads.create())["thread_id"]
        run = await client.runs.create(tid, "quick", input={"n": 1}, webhook=receiver.url)
        await client.runs.join(tid, run["run_id"])
        assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"
        await wait_for(lambda: receiver.delivered(run["run_id"]), timeout=30,
                       what="the webhook after two failures")
        await asyncio.sleep(0.5)
        attempts = receiver.attempts(run["run_id"])
    assert [a["status"] for a in attempts] == [503, 503, 200]
    assert _counted(server, "retry") >= 2 and _counted(server, "delivered") >= 1
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(attempts)]
    # Exponential: the second wait is about twice the first (default 1 s, then 2 s).
    assert gaps[0] >= 0.8 and gaps[1] >= 1.6, gaps


async def test_receiver_refusing_with_4xx_is_not_retried(client) -> None:
    with WebhookReceiver(fail_first=100, fail_status=404) as receiver:
        tid = (await client.threads.create())["thread_id"]
        run = await client.runs.create(tid, "quick", input={"n": 1}, webhook=receiver.url)
        await client.runs.join(tid, run["run_id"])
        await wait_for(lambda: receiver.attempts(run["run_id"]), what="the first attempt")
        await asyncio.sleep(2.5)  # past the first retry's time
        assert len(receiver.attempts(run["run_id"])) == 1


async def test_slow_receiver_never_holds_up_the_run(client) -> None:
    """The receiver holds the POST unanswered: the run is settled all the same, and
    its thread takes the next run, while the delivery is still in flight."""
    with WebhookReceiver(hold=True) as receiver:
        tid = (await client.threads.create())["thread_id"]
        run = await client.runs.create(tid, "quick", input={"n": 1}, webhook=receiver.url)
        assert await client.runs.join(tid, run["run_id"]) == {"n": 3}
        assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"
        await wait_for(lambda: receiver.attempts(run["run_id"]), what="the held webhook")
        assert await client.runs.wait(tid, "quick", input={"n": 10}) == {"n": 12}
        assert (await client.threads.get(tid))["status"] == "idle"
        assert receiver.answered == 0  # still in flight all along
        receiver.release()
        await wait_for(lambda: receiver.answered == 1, what="the answer")
        await asyncio.sleep(1.5)  # delivered: not sent again
        assert len(receiver.attempts(run["run_id"])) == 1


async def test_stateless_run_webhook_carries_values(client, server) -> None:
    with WebhookReceiver() as receiver:
        assert await client.runs.wait(None, "quick", input={"n": 4},
                                      webhook=receiver.url) == {"n": 6}
        await wait_for(lambda: any(r["status"] == 200 for r in receiver.requests),
                       what="the stateless run's webhook")
        [request] = receiver.requests
        assert request["body"]["values"] == {"n": 6}
        assert request["body"]["status"] == "success"


@pytest.mark.race
async def test_many_runs_each_delivered_exactly_once(client) -> None:
    """On the cluster every worker's sender races for every delivery: the claim's
    compare-and-set gives each to one. 30 runs, one POST each."""
    with WebhookReceiver() as receiver:
        runs = await client.runs.create_batch(
            [{"assistant_id": "quick", "input": {"n": i}, "webhook": receiver.url}
             for i in range(30)])
        ids = {run["run_id"] for run in runs}
        await wait_for(lambda: all(receiver.delivered(i) for i in ids), timeout=60,
                       what="30 webhooks")
        await asyncio.sleep(2.5)  # a sweep on every worker has passed
        counts = {i: len(receiver.attempts(i)) for i in ids}
    assert set(counts.values()) == {1}, counts


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "not a url", "http://", "/relative",
                                 "javascript:alert(1)"])
def test_webhook_url_must_be_http_or_https(http, url) -> None:
    answer = http.post("/runs", json={"assistant_id": "quick", "webhook": url})
    assert answer.status_code == 422, answer.text
    assert "webhook" in answer.json()["detail"] and "http" in answer.json()["detail"]


async def test_delivery_cut_by_a_crash_is_retried_after_restart(tmp_path: Path) -> None:
    """The server dies (SIGKILL) while the receiver is answering: after a restart the
    claim of the cut delivery expires and it is sent again."""
    env = {"RUNLANE_WEBHOOK_TIMEOUT": "2"}  # a claim then lasts 2 * 2 + 1 s
    server = ServerProcess(tmp_path, env=env).start()
    with WebhookReceiver(delay=1.5) as receiver:
        try:
            client = get_client(url=server.url)
            tid = (await client.threads.create())["thread_id"]
            run = await client.runs.create(tid, "quick", input={"n": 1}, webhook=receiver.url)
            await wait_for(lambda: receiver.attempts(run["run_id"]), what="the first attempt")
            server.stop(signal.SIGKILL)
            receiver.delay = 0.0
            server.start()
            client = get_client(url=server.url)
            assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"
            await wait_for(lambda: len(receiver.attempts(run["run_id"])) >= 2, timeout=20,
                           what="the retried delivery")
            await asyncio.sleep(1.0)
            assert len(receiver.attempts(run["run_id"])) == 2
        finally:
            server.stop()
