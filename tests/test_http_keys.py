"""langgraph.json's `http` keys and `webhooks` entry, end to end: real `runlane serve`
processes (one on SQLite; three workers on PostgreSQL + Redis) serving the projects in
tests/http_projects, each with the langgraph.json a user would write, driven with
langgraph_sdk, httpx and the JS SDK.

- custom_app: `http.app` (a FastAPI app with a lifespan, middleware and routes that
  shadow some of runlane's), `http.configurable_headers`, `http.logging_headers`,
  and `webhooks` (allowed domains, URL length, headers from the environment).
- prefixed_auth: `http.mount_prefix`, `http.enable_custom_route_auth` with custom
  auth, `http.middleware_order: "auth_first"`, and `http.cors` under the prefix.
- locked_down: `http.disable_assistants|store|meta|webhooks|mcp|a2a|ui`.
- assistants_only: `http.disable_threads|runs`.
And a bad value of any key stops `runlane serve` with one line that says what to fix.
"""

from __future__ import annotations

import asyncio
import contextlib
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

from conftest import BACKENDS, ServerProcess
from webhook_receiver import WebhookReceiver

PROJECTS = Path(__file__).parent / "http_projects"
ALICE = {"Authorization": "Bearer alice-token-0123456789abcdef"}
PREFIX = "/api/v1"
HELLO = {"messages": [{"role": "user", "content": "hello"}]}
# A project's server imports its app and graphs as it starts; on this shared 2-core
# machine, with other suites running, that can take minutes. Slow starts are not
# what these tests are about.
START_TIMEOUT = 300.0


@contextlib.contextmanager
def serving(project: str, backend: str, tmp: Path,
            env: dict[str, str] | None = None) -> Iterator[Any]:
    config = PROJECTS / project / "langgraph.json"
    if backend == "sqlite":
        proc = ServerProcess(tmp, config=config, env=env)
        proc.start_timeout = START_TIMEOUT
        proc.start()
        try:
            yield proc
        finally:
            proc.stop()
        return
    from cluster import Cluster, require_services

    require_services()
    cluster = Cluster(tmp, 3, env=env, config=config)
    for worker in cluster.workers:
        worker.start_timeout = START_TIMEOUT
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


# The one project server running: pytest runs the tests of each (project, backend)
# together, so starting the next one stops the last rather than leaving up to four
# clusters (twelve workers and their PostgreSQL connections) up until the module ends.
_live: list[contextlib.ExitStack] = []


def _project_fixture(project: str, env: dict[str, str] | None = None) -> Any:
    @pytest.fixture(scope="module", params=BACKENDS)
    def fixture(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
        while _live:
            _live.pop().close()
        stack = contextlib.ExitStack()
        _live.append(stack)
        with stack:
            yield stack.enter_context(serving(project, request.param,
                                              tmp_path_factory.mktemp(project), env))
        if stack in _live:
            _live.remove(stack)

    return fixture


custom = _project_fixture("custom_app", {"LG_WEBHOOK_TOKEN": "hook-token-from-env"})
# With auth on, /metrics answers only its own token (RUNLANE_METRICS_TOKEN, docs/auth.md).
METRICS_TOKEN = "metrics-token-for-the-prefixed-project"
prefixed = _project_fixture("prefixed_auth", {"RUNLANE_METRICS_TOKEN": METRICS_TOKEN})
locked = _project_fixture("locked_down")
assistants_only = _project_fixture("assistants_only")


def sdk(server: Any, prefix: str = "", headers: dict[str, str] | None = None,
        api_key: str | None = None) -> Any:
    client = get_client(url=server.url + prefix, timeout=60, headers=headers, api_key=api_key)
    urls = getattr(server, "urls", None)
    if urls:  # a cluster: every request to the next worker
        from cluster import RoundRobinTransport

        client.http.client._transport = RoundRobinTransport(urls)
    return client


def web(server: Any) -> httpx.Client:
    urls = getattr(server, "urls", None)
    transport = None
    if urls:
        from cluster import SyncRoundRobinTransport

        transport = SyncRoundRobinTransport(urls)
    return httpx.Client(base_url=server.url, timeout=60, transport=transport)


def workers(server: Any) -> list[str]:
    return list(getattr(server, "urls", [server.url]))


def answer(state: dict[str, Any]) -> dict[str, Any]:
    """What the project's agent reports: the x-* headers its config carried."""
    return state["messages"][-1]["additional_kwargs"]["headers"]


async def wait_for(predicate: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


# ------------------------------------------------------------------ http.app


def test_project_app_lifespan_routes_and_middleware(custom) -> None:
    for url in workers(custom):  # every worker ran the project's lifespan
        resp = httpx.get(f"{url}/hello", timeout=30)
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"greeting": "hello from the project's lifespan", "started": True}
        assert resp.headers["x-project-middleware"] == "stamped"


def test_project_routes_win_except_the_probes_and_docs(custom) -> None:
    with web(custom) as http:
        assert http.get("/info").json() == {"project": "custom info"}
        ok = http.get("/ok")
        assert ok.json() == {"ok": True}  # runlane's probe, not the project's /ok
        assert http.get("/openapi.json").json()["info"]["title"] == "runlane"
        # Same path, other method: GET is the project's, POST stays runlane's.
        assert http.get("/assistants/search").json() == {"project": "GET /assistants/search"}
        found = http.post("/assistants/search", json={"graph_id": "agent"})
        assert found.status_code == 200 and found.json()[0]["graph_id"] == "agent"
        # The project's middleware applies to runlane's routes too (as on the reference).
        assert found.headers["x-project-middleware"] == "stamped"
        assert ok.headers["x-project-middleware"] == "stamped"


def test_project_routes_get_their_bodies_as_sent(custom) -> None:
    with web(custom) as http:
        form = http.post("/echo", data={"a": "1", "b": "two words"})
        assert form.status_code == 200 and form.text == "a=1&b=two+words"
        # runlane's own routes still read JSON and say so.
        bad = http.post("/threads", content=b"a=1", headers={
            "Content-Type": "application/x-www-form-urlencoded"})
        assert bad.status_code == 422 and "not valid JSON" in bad.json()["detail"]


async def test_sdk_works_beside_the_project_app(custom) -> None:
    client = sdk(custom)
    thread = await client.threads.create()
    state = await client.runs.wait(thread["thread_id"], "agent", input=HELLO)
    assert state["messages"][-1]["content"].startswith("configured with")
    assert (await client.assistants.search(graph_id="agent"))[0]["graph_id"] == "agent"


# ------------------------------------------------------------------ configurable_headers


async def test_configurable_headers_reach_the_graph(custom) -> None:
    client = sdk(custom, headers={
        "x-user-id": "u-42", "x-user-secret": "never", "x-tenant-region": "eu-west",
        "x-other": "not included", "authorization": "Bearer never"}, api_key="never either")
    thread = await client.threads.create()
    state = await client.runs.wait(thread["thread_id"], "agent", input=HELLO)
    assert answer(state) == {"x-user-id": "u-42", "x-tenant-region": "eu-west"}
    # A header wins over the same key in the body's configurable, as on the reference.
    state = await client.runs.wait(None, "agent", input=HELLO,
                                   config={"configurable": {"x-user-id": "from-body"}})
    assert answer(state)["x-user-id"] == "u-42"
    streamed = [part async for part in client.runs.stream(
        thread["thread_id"], "agent", input=HELLO, stream_mode="values")]
    assert answer(streamed[-1].data) == {"x-user-id": "u-42", "x-tenant-region": "eu-west"}


async def test_without_configurable_headers_no_header_reaches_the_graph(locked) -> None:
    client = sdk(locked, headers={"x-user-id": "u-42", "user-agent": "agent-test/1"})
    state = await client.runs.wait(None, "agent", input=HELLO)
    assert answer(state) == {}


# ------------------------------------------------------------------ logging_headers


async def test_logging_headers_choose_what_the_access_log_shows(custom) -> None:
    tag = f"tag-{uuid.uuid4().hex[:8]}"
    with web(custom) as http:
        resp = http.get("/hello", headers={"x-request-tag": tag, "user-agent": "keys-test/1",
                                           "authorization": "Bearer leak-me-not",
                                           "x-user-id": "not-logged"})
        assert resp.status_code == 200

    def line() -> str | None:
        return next((entry for entry in custom.log().splitlines()
                     if "runlane.access" in entry and tag in entry), None)

    await wait_for(lambda: line() is not None, "the access log line")
    entry = line()
    assert entry is not None and "GET /hello 200" in entry and "keys-test/1" in entry
    assert "leak-me-not" not in custom.log() and "not-logged" not in entry


# ------------------------------------------------------------------ webhooks


async def test_webhooks_entry_headers_and_allowed_domains(custom) -> None:
    client = sdk(custom)
    with WebhookReceiver() as receiver:
        run = await client.runs.create(None, "agent", input=HELLO, webhook=f"{receiver.url}/hook")
        await wait_for(lambda: receiver.delivered(run["run_id"]), "the webhook")
        [request] = receiver.delivered(run["run_id"])
        assert request["headers"]["X-Hook-Token"] == "hook-token-from-env"
    with web(custom) as http:
        elsewhere = http.post("/runs", json={"assistant_id": "agent", "input": HELLO,
                                             "webhook": "https://hooks.elsewhere.example/x"})
        assert elsewhere.status_code == 422
        assert "webhooks.url.allowed_domains" in elsewhere.json()["detail"]
        long_url = f"http://127.0.0.1:9/{'x' * 200}"
        too_long = http.post("/runs", json={"assistant_id": "agent", "input": HELLO,
                                            "webhook": long_url})
        assert too_long.status_code == 422
        assert "webhooks.url.max_url_length" in too_long.json()["detail"]


# ------------------------------------------------------------------ mount_prefix, auth, CORS


async def test_sdk_under_the_mount_prefix(prefixed) -> None:
    client = sdk(prefixed, PREFIX, ALICE)
    thread = await client.threads.create()
    events = [part async for part in client.runs.stream(thread["thread_id"], "agent",
                                                        input=HELLO)]
    run_id = events[0].data["run_id"]
    assert events[0].event == "metadata" and events[-1].event == "values"
    assert (await client.runs.get(thread["thread_id"], run_id))["status"] == "success"
    run = await client.runs.create(thread["thread_id"], "agent", input=HELLO)
    await client.runs.join(thread["thread_id"], run["run_id"])
    runs = await client.runs.list(thread["thread_id"])
    assert {r["run_id"] for r in runs} == {run_id, run["run_id"]}
    assert (await client.threads.get_state(thread["thread_id"]))["values"]["messages"]


@pytest.mark.parametrize("transport", ["sse", "websocket"])
async def test_v2_protocol_under_the_mount_prefix(prefixed, transport: str) -> None:
    client = sdk(prefixed, PREFIX, ALICE)
    # The SDK's WebSocket handshake sends the stream's own headers, not the client's.
    async with client.threads.stream(assistant_id="agent", transport=transport,
                                     headers=ALICE) as thread:
        await thread.run.start(input=HELLO)
        output = await asyncio.wait_for(thread.output, 60)
    assert output["messages"]
    assert (await client.threads.get(thread.thread_id))["status"] == "idle"


def test_probes_at_the_root_and_nothing_else_outside_the_prefix(prefixed) -> None:
    with web(prefixed) as http:
        for path in ("/ok", "/ready", f"{PREFIX}/ok", f"{PREFIX}/info",
                     f"{PREFIX}/docs", f"{PREFIX}/openapi.json"):
            assert http.get(path).status_code == 200, path
        assert http.get("/metrics").status_code == 401  # auth is on: its own token
        scrape = http.get("/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"})
        assert scrape.status_code == 200 and "runlane_" in scrape.text
        assert "agent" in http.get(f"{PREFIX}/info").json()["graphs"]
        # The docs page loads the OpenAPI document from under the prefix.
        assert f"{PREFIX}/openapi.json" in http.get(f"{PREFIX}/docs").text
        outside = http.post("/threads", json={}, headers=ALICE)
        assert outside.status_code == 404 and PREFIX in outside.json()["detail"]
        assert http.get("/api/v1x/info").status_code == 404


def test_project_routes_behind_runlane_auth(prefixed) -> None:
    with web(prefixed) as http:
        anonymous = http.get(f"{PREFIX}/me")
        assert anonymous.status_code == 401
        # middleware_order "auth_first": the project's middleware runs after auth.
        assert "x-project-middleware" not in anonymous.headers
        me = http.get(f"{PREFIX}/me", headers=ALICE)
        assert me.status_code == 200
        assert me.json() == {"identity": "alice", "permissions": ["read"]}
        assert me.headers["x-project-middleware"] == "stamped"
        assert http.post(f"{PREFIX}/threads/search", json={}).status_code == 401
        # With auth_first the project's middleware applies to runlane's routes too.
        assert http.get(f"{PREFIX}/ok").headers["x-project-middleware"] == "stamped"


def test_cors_under_the_prefix(prefixed) -> None:
    allowed = {"Origin": "https://chat.example.com"}
    with web(prefixed) as http:
        preflight = http.options(f"{PREFIX}/threads", headers={
            **allowed, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://chat.example.com"
        refused = http.options(f"{PREFIX}/threads", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert refused.status_code == 400
        me = http.get(f"{PREFIX}/me", headers={**allowed, **ALICE})
        assert me.headers["access-control-allow-origin"] == "https://chat.example.com"
        assert me.headers["access-control-allow-credentials"] == "true"
        created = http.post(f"{PREFIX}/threads", json={}, headers={**allowed, **ALICE})
        assert "content-location" in created.headers["access-control-expose-headers"]


JS_UNDER_PREFIX = """
import { Client } from "@langchain/langgraph-sdk";
const [apiUrl, token] = process.argv.slice(1);
const client = new Client({ apiUrl, defaultHeaders: { Authorization: `Bearer ${token}` } });
const thread = await client.threads.create();
let created;
const events = [];
for await (const part of client.runs.stream(thread.thread_id, "agent", {
  input: { messages: [{ role: "user", content: "hi" }] },
  onRunCreated: (meta) => { created = meta; },
})) events.push(part.event);
const run = await client.runs.get(thread.thread_id, created.run_id);
const state = await client.runs.wait(null, "agent", { input: { messages: [] } });
console.log(JSON.stringify({ events, created, status: run.status,
                             waited: state.messages.length }));
"""


def test_js_sdk_under_the_mount_prefix(prefixed) -> None:
    from test_js_sdk import JS_DIR, _install, _tools

    node, npm = _tools()
    _install(npm)
    for url in workers(prefixed):  # each worker (the JS client has no round-robin transport)
        proc = subprocess.run(
            [node, "--input-type=module", "-e", JS_UNDER_PREFIX, url + PREFIX,
             "alice-token-0123456789abcdef"],
            cwd=JS_DIR, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        # onRunCreated reads the run id from Content-Location, under the prefix too.
        assert result["created"]["run_id"] and result["status"] == "success"
        assert result["events"][0] == "metadata" and result["waited"] == 1


# ------------------------------------------------------------------ disable_*


def test_disabled_route_groups_are_gone(locked) -> None:
    with web(locked) as http:
        for method, path in (("GET", "/info"), ("GET", "/metrics"), ("GET", "/docs"),
                             ("GET", "/openapi.json"), ("GET", "/redoc"),
                             ("POST", "/assistants/search"), ("POST", "/assistants"),
                             ("PUT", "/store/items"), ("POST", "/store/items/search"),
                             ("POST", "/mcp"), ("POST", "/a2a/agent")):
            resp = http.request(method, path, json={})
            assert resp.status_code == 404, (method, path, resp.text)
        # disable_meta keeps the probes, /ok answering as the reference's does.
        assert http.get("/ok").json() == {"ok": True}
        assert http.get("/ready").status_code == 200


async def test_threads_and_runs_served_with_other_groups_disabled(locked) -> None:
    client = sdk(locked)
    thread = await client.threads.create()
    state = await client.runs.wait(thread["thread_id"], "agent", input=HELLO)
    assert state["messages"][-1]["type"] == "ai"
    cron = await client.crons.create("agent", schedule="0 0 1 1 *", input=HELLO)
    await client.crons.delete(cron["cron_id"])


async def test_disable_webhooks_never_calls_them(locked) -> None:
    client = sdk(locked)
    with WebhookReceiver() as receiver:
        # Loopback: the default policy would refuse it (422); disabled, it is not even read.
        # runs.wait, not create + join: a stateless run's thread is deleted when it
        # ends, so a join that comes after the end finds nothing (404).
        await client.runs.wait(None, "agent", input=HELLO, webhook=receiver.url)
        # Nothing to wait on for a POST that must never come: a webhook owed is sent
        # within milliseconds of the run's end, so two seconds is plenty.
        await asyncio.sleep(2)
        assert receiver.requests == []


def test_threads_and_runs_disabled(assistants_only) -> None:
    thread_id = str(uuid.uuid4())
    with web(assistants_only) as http:
        for method, path in (("POST", "/threads"), ("POST", "/threads/search"),
                             ("GET", f"/threads/{thread_id}"), ("POST", "/runs/wait"),
                             ("POST", "/runs/stream"), ("POST", "/runs/crons"),
                             ("GET", f"/threads/{thread_id}/runs"), ("POST", "/runs/cancel"),
                             # The v2 protocol goes with the runs, as on the reference.
                             ("POST", f"/threads/{thread_id}/commands"),
                             ("POST", f"/threads/{thread_id}/stream/events")):
            resp = http.request(method, path, json={"assistant_id": "agent"})
            assert resp.status_code == 404, (method, path, resp.text)
        found = http.post("/assistants/search", json={"graph_id": "agent"})
        assert found.status_code == 200 and found.json()[0]["graph_id"] == "agent"
        assert http.get("/info").status_code == 200


# ------------------------------------------------------------------ bad values


# Each stage that can refuse: parsing langgraph.json, and importing the project's app.
# (Every key's bad values, one by one: tests/fast/test_http_keys_config.py.)
BAD = [
    ({"app": "./missing.py:app"}, "http.app './missing.py:app': file"),
    ({"app": "./agent_module.py:graph"}, "not a Starlette or FastAPI application"),
    ({"mount_prefix": "api"}, "http.mount_prefix must be a path such as '/my-api'"),
    ({"disable_thread": True}, "unknown key(s) http.disable_thread"),
    ({"configurable_headers": {"includes": ["x-(.*)"]}},
     "http.configurable_headers.includes must be a list of header names"),
]


@pytest.mark.parametrize(("http_entry", "says"), BAD, ids=[str(b[0]) for b in BAD])
def test_a_bad_http_value_stops_start_up_with_one_line(tmp_path: Path, http_entry: dict,
                                                       says: str) -> None:
    (tmp_path / "agent_module.py").write_text((PROJECTS / "agent.py").read_text())
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({"graphs": {"agent": "./agent_module.py:graph"},
                                  "http": http_entry}))
    proc = subprocess.run(
        [sys.executable, "-m", "runlane.cli", "serve", "--config", str(config), "--port", "9",
         "--database-url", f"sqlite:///{tmp_path / 'db.sqlite'}"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "COLUMNS": "1000"})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    [line] = [line for line in lines if "cannot start" in line]
    assert says in line, line
