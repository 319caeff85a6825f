"""Webhook security end to end: the SSRF policy refuses internal targets at run
creation (a 422 saying why) and again at delivery, where a refused URL is never
posted to and the log says why; each redirect hop is checked; a configured secret
signs every delivery, which the documented receiver example verifies.

The receivers listen on 127.0.0.1, which the default policy refuses: the servers
here get their policy from a langgraph.json of their own (or the test graphs', which
allow loopback explicitly)."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from conftest import GRAPHS_CONFIG, ServerProcess
from webhook_receiver import WebhookReceiver

DOCS = Path(__file__).parents[1] / "docs" / "run-options.md"


def project(tmp_path: Path, webhooks: dict[str, Any] | None) -> Path:
    """The test graphs' langgraph.json with `webhooks` replaced (None: no entry, the
    defaults), written under tmp_path with absolute paths."""
    raw = json.loads(GRAPHS_CONFIG.read_text())
    base = GRAPHS_CONFIG.parent
    raw["graphs"] = {gid: str(base / spec) for gid, spec in raw["graphs"].items()}
    raw["dependencies"] = [str((base / dep).resolve()) for dep in raw["dependencies"]]
    raw.pop("webhooks", None)
    if webhooks is not None:
        raw["webhooks"] = webhooks
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps(raw))
    return path


async def wait_for(predicate, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def documented_verify() -> Any:
    """The receiver example of docs/run-options.md, run as written."""
    text = DOCS.read_text()
    code = re.search(r"```python\n(.*?)```", text[text.index("### Verifying a delivery"):], re.S)
    assert code, "no python example under 'Verifying a delivery'"
    namespace: dict[str, Any] = {}
    exec(code.group(1), namespace)  # our own documentation's example, run as written
    return namespace["verify"]


@pytest.fixture
def default_policy(tmp_path: Path):
    server = ServerProcess(tmp_path / "server", config=project(tmp_path, None)).start()
    yield server
    server.stop()


def test_default_policy_refuses_internal_targets_at_creation(default_policy) -> None:
    """Every way to create a run answers 422 naming the rule and what is accepted;
    nothing is created, nothing is posted."""
    with WebhookReceiver() as receiver, httpx.Client(base_url=default_policy.url,
                                                     timeout=30) as http:
        tid = http.post("/threads", json={}).json()["thread_id"]
        hook = f"{receiver.url}/hook"
        body = {"assistant_id": "quick", "input": {"n": 1}, "webhook": hook}
        for path, payload in ((f"/threads/{tid}/runs", body), (f"/threads/{tid}/runs/wait", body),
                              (f"/threads/{tid}/runs/stream", body), ("/runs", body),
                              ("/runs/wait", body), ("/runs/batch", [body])):
            answer = http.post(path, json=payload)
            assert answer.status_code == 422, (path, answer.text)
            detail = answer.json()["detail"]
            assert hook in detail and "loopback" in detail and "disable_loopback" in detail, detail
            assert "Accepted: http(s) URLs whose host resolves to public addresses" in detail
        for url, words in (("http://localhost:1/hook", "loopback"),
                           ("http://169.254.169.254/latest/meta-data/", "link-local"),
                           ("http://10.0.0.1/hook", "private"),
                           ("gopher://127.0.0.1/", "http")):
            answer = http.post("/runs", json={**body, "webhook": url})
            assert answer.status_code == 422 and words in answer.json()["detail"], answer.text
        assert http.get(f"/threads/{tid}/runs").json() == []
        assert receiver.requests == []


async def test_a_url_refused_at_delivery_is_never_posted_and_logged(tmp_path: Path) -> None:
    """Created while loopback was allowed; the server then restarts with the default
    policy while the delivery is owed (cut by a kill mid-attempt): the retry is
    checked again, not sent, and the log says why."""
    server = ServerProcess(tmp_path / "server", config=project(tmp_path, None),
                           env={"RUNLANE_WEBHOOK_DISABLE_LOOPBACK": "false",
                                "RUNLANE_WEBHOOK_TIMEOUT": "2"}).start()
    with WebhookReceiver(hold=True) as receiver:
        try:
            client = get_client(url=server.url)
            tid = (await client.threads.create())["thread_id"]
            run = await client.runs.create(tid, "quick", input={"n": 1}, webhook=receiver.url)
            await wait_for(lambda: receiver.attempts(run["run_id"]), what="the first attempt")
            server.stop(signal.SIGKILL)
            # The default policy again; the cut attempt's claim expires in 2 * 2 + 1 s.
            server.env = {"RUNLANE_WEBHOOK_TIMEOUT": "2"}
            server.start()
            refused = (f"run {run['run_id']}: webhook failed after 2 attempt(s) (not sent: "
                       f"it is a loopback address")
            await wait_for(lambda: refused in server.log(), timeout=30, what="the refusal")
            assert len(receiver.attempts(run["run_id"])) == 1
        finally:
            server.stop()


async def test_every_redirect_hop_is_checked(tmp_path: Path) -> None:
    """Only 127.0.0.1 is allowed (by name): the receiver's redirect to `localhost` is
    refused before anything is sent there."""
    with WebhookReceiver() as inner, WebhookReceiver(redirect_to=None) as outer:
        port = inner.url.rsplit(":", 1)[1]
        outer.redirect_to = f"http://localhost:{port}/inside"
        config = project(tmp_path, {"url": {"allowed_domains": ["127.0.0.1"]}})
        server = ServerProcess(tmp_path / "server", config=config).start()
        try:
            client = get_client(url=server.url)
            tid = (await client.threads.create())["thread_id"]
            run = await client.runs.create(tid, "quick", input={"n": 1}, webhook=outer.url)
            refused = (f"run {run['run_id']}: webhook failed after 1 attempt(s) (not sent: "
                       f"host 'localhost' is not allowed; allowed: 127.0.0.1")
            await wait_for(lambda: refused in server.log(), what="the refused redirect")
            assert [r["status"] for r in outer.attempts(run["run_id"])] == [307]
            assert inner.requests == []
        finally:
            server.stop()


async def test_signed_delivery_verifies_and_carries_configured_headers(tmp_path: Path) -> None:
    config = project(tmp_path, {"url": {"disable_loopback": False},
                                "headers": {"X-Team": "${{ env.LG_WEBHOOK_TEAM }}"},
                                "secret": "${{ env.LG_WEBHOOK_SECRET }}"})
    server = ServerProcess(tmp_path / "server", config=config,
                           env={"LG_WEBHOOK_TEAM": "blue",
                                "LG_WEBHOOK_SECRET": "file-secret"}).start()
    verify = documented_verify()
    with WebhookReceiver() as receiver:
        try:
            client = get_client(url=server.url)
            tid = (await client.threads.create())["thread_id"]
            run = await client.runs.create(tid, "quick", input={"n": 1}, webhook=receiver.url)
            await wait_for(lambda: receiver.delivered(run["run_id"]), what="the webhook")
            [request] = receiver.delivered(run["run_id"])
        finally:
            server.stop()
    header = request["headers"]["X-Runlane-Signature"]
    shape = re.fullmatch(r"t=(\d+),v1=[0-9a-f]{64}", header)
    assert shape, header
    stamp = int(shape.group(1))
    assert abs(time.time() - stamp) < 60  # signed when sent
    raw = request["raw"]
    assert verify("file-secret", header, raw)
    assert not verify("file-secret", header, raw.replace(b'"success"', b'"error"'))
    assert not verify("another-secret", header, raw)
    assert request["headers"]["X-Team"] == "blue"
    assert request["body"]["run_id"] == run["run_id"]


async def test_env_secret_overrides_and_no_secret_means_no_signature(tmp_path: Path,
                                                                     client) -> None:
    """RUNLANE_WEBHOOK_SECRET signs; the test servers (no secret) send no signature."""
    server = ServerProcess(tmp_path / "server",
                           env={"RUNLANE_WEBHOOK_SECRET": "env-secret"}).start()
    verify = documented_verify()
    with WebhookReceiver() as receiver:
        try:
            signed = get_client(url=server.url)
            tid = (await signed.threads.create())["thread_id"]
            run = await signed.runs.create(tid, "quick", input={"n": 1}, webhook=receiver.url)
            await wait_for(lambda: receiver.delivered(run["run_id"]), what="the signed webhook")
        finally:
            server.stop()
        tid = (await client.threads.create())["thread_id"]
        plain = await client.runs.create(tid, "quick", input={"n": 1}, webhook=receiver.url)
        await wait_for(lambda: receiver.delivered(plain["run_id"]), what="the plain webhook")
    [request] = receiver.delivered(run["run_id"])
    assert verify("env-secret", request["headers"]["X-Runlane-Signature"], request["raw"])
    [request] = receiver.delivered(plain["run_id"])
    assert "X-Runlane-Signature" not in request["headers"]
