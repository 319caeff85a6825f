"""The HTTP details browsers, proxies and web apps depend on, against real servers:
CORS (defaults, preflights on every route, errors readable by the page, Private
Network Access, `http.cors` from langgraph.json), JSON bodies labelled `text/plain`,
keep-alive on wait and join, idle keep-alive connections and the listen backlog."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
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
from conftest import BACKENDS, GRAPHS_CONFIG, ServerProcess
from runlane.api.app import create_app
from runlane.settings import Settings

PAGE = "http://localhost:3000"  # a chat UI served from its own origin
ORIGIN = {"Origin": PAGE}
EXPOSED = {"content-location", "x-pagination-next", "x-pagination-total", "mcp-session-id"}


def _exposed(resp: httpx.Response) -> set[str]:
    return {h.strip().lower() for h in resp.headers.get("access-control-expose-headers",
                                                         "").split(",") if h.strip()}


def _readable_by_page(resp: httpx.Response, origin: str = PAGE) -> None:
    """What a browser checks before it hands the page a response."""
    allowed = resp.headers.get("access-control-allow-origin")
    assert allowed in ("*", origin), (resp.status_code, dict(resp.headers))
    assert _exposed(resp) >= EXPOSED, resp.headers.get("access-control-expose-headers")


def _preflight(method: str, origin: str = PAGE, headers: str = "content-type, x-api-key",
               **extra: str) -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers, **extra}


# Every route the server serves, with its path parameters filled in.
ROUTES = sorted(
    (method.upper(), re.sub(r"\{[^/}]+\}", lambda _: str(uuid.uuid4()), path))
    for path, item in create_app(Settings(), {}).openapi()["paths"].items()
    for method in item
)


# ------------------------------------------------------------------ default CORS

def test_every_route_answers_its_preflight(http: httpx.Client) -> None:
    """A browser sends a preflight before any POST with a JSON body, any DELETE, any
    request with an API key header: each must be allowed, for every route."""
    assert len(ROUTES) > 40
    for method, path in ROUTES:
        resp = http.options(path, headers=_preflight(method))
        assert resp.status_code == 200, (method, path, resp.status_code, resp.text)
        assert resp.headers["access-control-allow-origin"] == "*", (method, path)
        assert method in resp.headers["access-control-allow-methods"], (method, path)
        # Any header is allowed: the requested ones are echoed.
        assert resp.headers["access-control-allow-headers"] == "content-type, x-api-key"
        assert int(resp.headers["access-control-max-age"]) > 0


def test_private_network_preflight(http: httpx.Client) -> None:
    """A hosted UI (public origin) reaching a server on localhost: Chrome asks first."""
    asks = _preflight("POST", origin="https://smith.langchain.com",
                      **{"Access-Control-Request-Private-Network": "true"})
    resp = http.options("/threads", headers=asks)
    assert resp.status_code == 200, resp.text
    assert resp.headers["access-control-allow-private-network"] == "true"
    # Not asked: not answered.
    resp = http.options("/threads", headers=_preflight("POST"))
    assert "access-control-allow-private-network" not in resp.headers


def test_responses_are_readable_cross_origin(http: httpx.Client) -> None:
    """The JS SDK reads the run id from Content-Location: without it exposed, Stop
    cannot cancel and a reload cannot rejoin."""
    thread = http.post("/threads", json={}, headers=ORIGIN)
    assert thread.status_code == 200
    _readable_by_page(thread)
    thread_id = thread.json()["thread_id"]
    run = http.post(f"/threads/{thread_id}/runs", headers=ORIGIN,
                    json={"assistant_id": "echo", "input": {"text": "hi"}})
    assert run.status_code == 200, run.text
    _readable_by_page(run)
    assert run.headers["content-location"].endswith(
        f"/threads/{thread_id}/runs/{run.json()['run_id']}")
    # No Origin (not a browser): no CORS headers.
    assert "access-control-allow-origin" not in http.get("/ok").headers


def _too_large() -> Iterator[bytes]:
    """One chunk more than the server accepts, without Content-Length."""
    chunk = b" " * (1 << 20)
    yield b'{"metadata": {"x": "'
    for _ in range(Settings().max_body_bytes // len(chunk)):
        yield chunk


def test_errors_are_readable_cross_origin(http: httpx.Client) -> None:
    """A page shows the server's reason only if the browser lets it read the error."""
    unknown = str(uuid.uuid4())
    for resp, status in (
        (http.get(f"/threads/{unknown}", headers=ORIGIN), 404),
        (http.get("/no/such/route", headers=ORIGIN), 404),
        (http.post("/threads", content=b"{", headers=ORIGIN), 422),
        (http.post("/threads", json={"no_such_field": 1}, headers=ORIGIN), 422),
        (http.put("/threads", json={}, headers=ORIGIN), 405),
        (http.post("/threads", content=_too_large(), headers=ORIGIN), 413),
    ):
        assert resp.status_code == status, (status, resp.text[:300])
        _readable_by_page(resp)
        assert resp.json()["detail"]


# ------------------------------------------------------------------ JSON as text/plain

def test_json_labelled_text_plain_is_read_as_json(http: httpx.Client) -> None:
    """A Next.js passthrough route forwards the page's body as text/plain;charset=UTF-8
    (what fetch() labels a string body); the reference reads it as JSON."""
    text = {"Content-Type": "text/plain;charset=UTF-8", **ORIGIN}
    thread = http.post("/threads", content=json.dumps({"metadata": {"via": "next"}}),
                       headers=text)
    assert thread.status_code == 200, thread.text
    assert thread.json()["metadata"]["via"] == "next"
    thread_id = thread.json()["thread_id"]
    body = json.dumps({"assistant_id": "echo", "input": {"text": "plain"}})
    result = http.post(f"/threads/{thread_id}/runs/wait", content=body, headers=text)
    assert result.status_code == 200, result.text
    assert result.json()["text"] == "plain"
    found = http.post("/threads/search", content=json.dumps({"metadata": {"via": "next"}}),
                      headers={"Content-Type": "text/plain"})
    assert thread_id in [t["thread_id"] for t in found.json()]


def test_a_body_that_is_not_json_says_so_whatever_its_label(http: httpx.Client) -> None:
    for label, body in (("text/plain", b"hello"), ("application/x-www-form-urlencoded", b"a=1"),
                        ("multipart/form-data; boundary=x", b"--x\r\n\r\n--x--")):
        resp = http.post("/threads", content=body, headers={"Content-Type": label})
        assert resp.status_code == 422, (label, resp.text)
        assert "not valid JSON" in resp.json()["detail"], resp.text
        if not label.startswith("text/"):
            assert label in resp.json()["detail"], resp.text


# ------------------------------------------------------------------ http.cors

APP = "https://app.example.com"
KEY = "web-key-0123456789abcdef0123456789"


def _project(tmp_path: Path, http_entry: Any) -> Path:
    graphs = GRAPHS_CONFIG.parent
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({
        "dependencies": [str(graphs)], "graphs": {"echo": f"{graphs}/graphs.py:echo"},
        "http": http_entry}))
    return config


@pytest.fixture(scope="module")
def narrowed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One origin and its subdomains by regex, with credentials, behind API keys."""
    tmp = tmp_path_factory.mktemp("cors")
    config = _project(tmp, {"cors": {
        "allow_origins": [APP], "allow_origin_regex": r"https://[a-z]+\.preview\.example\.com",
        "allow_credentials": True, "expose_headers": ["X-Request-Id"], "max_age": 120}})
    keys = tmp / "api-keys"
    keys.write_text(f"web={KEY}\n")
    server = ServerProcess(tmp / "server", "--config", str(config), "--auth", "api-key",
                           "--api-keys-file", str(keys)).start()
    yield server
    server.stop()


def test_http_cors_narrows_origins(narrowed: ServerProcess) -> None:
    with httpx.Client(base_url=narrowed.url, timeout=30) as http:
        for origin in (APP, "https://feature.preview.example.com"):
            # Preflights carry no credentials: answered without the API key.
            resp = http.options("/threads", headers=_preflight("POST", origin=origin))
            assert resp.status_code == 200, (origin, resp.text)
            assert resp.headers["access-control-allow-origin"] == origin
            assert resp.headers["access-control-allow-credentials"] == "true"
            assert resp.headers["access-control-max-age"] == "120"
            created = http.post("/threads", json={},
                                headers={"Origin": origin, "X-Api-Key": KEY})
            assert created.status_code == 200, created.text
            assert created.headers["access-control-allow-origin"] == origin
            assert _exposed(created) == EXPOSED | {"x-request-id"}
            # A 401 from the auth layer is readable too, so the page can say why.
            refused = http.post("/threads", json={}, headers={"Origin": origin})
            assert refused.status_code == 401, refused.text
            assert refused.headers["access-control-allow-origin"] == origin
        for stranger in ("https://evil.example", "https://app.example.com.evil.example",
                         "https://a.b.preview.example.com"):
            resp = http.options("/threads", headers=_preflight("POST", origin=stranger))
            assert resp.status_code == 400 and "origin" in resp.text, (stranger, resp.text)
            assert "access-control-allow-origin" not in resp.headers
            created = http.post("/threads", json={},
                                headers={"Origin": stranger, "X-Api-Key": KEY})
            assert "access-control-allow-origin" not in created.headers, stranger


@pytest.mark.parametrize(("http_entry", "mentions"), [
    ({"cors": {"allow_origins": "https://app.example.com"}},
     "http.cors.allow_origins must be a list of strings"),
    ({"cors": {"allow_origin": ["https://app.example.com"]}}, "unknown key(s) 'allow_origin'"),
    ({"cors": {"allow_credentials": True}}, "allow_credentials needs the origins named"),
    ({"cors": {"allow_origin_regex": "https://(app"}}, "not a valid regular expression"),
    ("cors", "'http' must be an object"),
], ids=["origins-not-a-list", "misspelt-key", "credentials-with-any-origin", "bad-regex",
        "http-not-an-object"])
def test_bad_http_cors_stops_start_up_with_one_line(tmp_path: Path, http_entry: Any,
                                                    mentions: str) -> None:
    config = _project(tmp_path, http_entry)
    done = subprocess.run(
        [sys.executable, "-m", "runlane.cli", "serve", "--config", str(config), "--port", "1",
         "--database-url", f"sqlite:///{tmp_path / 'db.sqlite'}"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "400"},
        check=False)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot start" in lines[0] and mentions in lines[0], done.stderr


# ------------------------------------------------------------------ wait/join keep-alive

KEEPALIVE = 0.2  # RUNLANE_WAIT_KEEPALIVE for these servers (the default: 5 s, the reference's)
LONG = {"steps": 8, "delay": 0.25}  # a run of about 2 s: ten keep-alives and more


@pytest.fixture(scope="module", params=BACKENDS)
def kept(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A server (or cluster) answering wait/join with a keep-alive every 0.2 s."""
    tmp = tmp_path_factory.mktemp(f"keepalive-{request.param}")
    graphs = GRAPHS_CONFIG.parent
    config = tmp / "langgraph.json"
    config.write_text(json.dumps({"dependencies": [str(graphs)], "graphs": {
        "sleepy": f"{graphs}/graphs.py:sleepy",
        "late_failure": f"{graphs}/wire_graphs.py:late_failure"}}))
    yield from serve(request.param, tmp, config, {"RUNLANE_WAIT_KEEPALIVE": str(KEEPALIVE)})


def _sdk(server: Any) -> Any:
    client = get_client(url=server.url, timeout=60)
    if len(getattr(server, "urls", ())) > 1:
        from cluster import RoundRobinTransport

        client.http.client._transport = RoundRobinTransport(server.urls)
    return client


def _timed_body(resp: httpx.Response) -> tuple[bytes, float | None, float]:
    """The body, when its first newline arrived, and when its last byte did."""
    body, first_newline, last = b"", None, 0.0
    for chunk in resp.iter_raw():
        now = time.monotonic()
        if first_newline is None and chunk.startswith(b"\n") and not body.strip():
            first_newline = now
        body += chunk
        last = now
    return body, first_newline, last


def _assert_kept_alive(resp: httpx.Response, expected: Any) -> None:
    assert resp.status_code == 200, resp.read()
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["location"].endswith("/join")
    body, first_newline, last = _timed_body(resp)
    newlines = len(body) - len(body.lstrip(b"\n"))
    # Periodic: the first keep-alive came while the run still had most of its 2 s to go.
    assert newlines >= 3 and first_newline is not None, body[:200]
    assert last - first_newline > 1.0, (last - first_newline, body[:200])
    assert json.loads(body) == expected  # leading whitespace is valid JSON


def test_wait_and_join_are_kept_alive(kept: Any) -> None:
    expected = {**LONG, "ticks": LONG["steps"]}
    with httpx.Client(base_url=kept.url, timeout=60) as http:
        thread_id = http.post("/threads", json={}).json()["thread_id"]
        with http.stream("POST", f"/threads/{thread_id}/runs/wait",
                         json={"assistant_id": "sleepy", "input": LONG}) as resp:
            _assert_kept_alive(resp, expected)
        with http.stream("POST", "/runs/wait",
                         json={"assistant_id": "sleepy", "input": LONG}) as resp:
            _assert_kept_alive(resp, expected)
        # The thread holds 8 ticks: 8 more to 16.
        again = {**LONG, "steps": 2 * LONG["steps"]}
        run = http.post(f"/threads/{thread_id}/runs",
                        json={"assistant_id": "sleepy", "input": again}).json()
        where = f"/threads/{thread_id}/runs/{run['run_id']}"
        with http.stream("GET", f"{where}/join") as resp:
            assert resp.headers["content-location"] == where
            _assert_kept_alive(resp, {**again, "ticks": again["steps"]})


async def test_the_sdk_reads_kept_alive_answers(kept: Any) -> None:
    client = _sdk(kept)
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], "sleepy", input=LONG)
    assert result == {**LONG, "ticks": LONG["steps"]}
    result = await client.runs.wait(None, "sleepy", input=LONG)
    assert result == {**LONG, "ticks": LONG["steps"]}
    again = {**LONG, "steps": 2 * LONG["steps"]}  # 8 ticks more
    run = await client.runs.create(thread["thread_id"], "sleepy", input=again)
    joined = await client.runs.join(thread["thread_id"], run["run_id"])
    assert joined == {**again, "ticks": again["steps"]}


async def test_a_failure_after_the_headers_is_in_the_body(kept: Any) -> None:
    """The status (200) is out before the run fails: the body says it failed, as the
    reference's does, and the SDK raises it."""
    late = {"delay": 1.0}
    async with httpx.AsyncClient(base_url=kept.url, timeout=60) as http, http.stream(
            "POST", "/runs/wait", json={"assistant_id": "late_failure", "input": late}) as resp:
        assert resp.status_code == 200
        body = await resp.aread()
    assert body.startswith(b"\n\n"), body[:100]
    error = json.loads(body)["__error__"]
    assert error["error"] == "ValueError" and "headers were sent" in error["message"]
    client = _sdk(kept)
    with pytest.raises(Exception, match="ValueError: failed after the wait's headers"):
        await client.runs.wait(None, "late_failure", input=late)


async def test_on_disconnect_cancel_while_kept_alive(kept: Any) -> None:
    """The client leaves after the headers and a keep-alive: the run is interrupted."""
    client = _sdk(kept)
    thread = await client.threads.create()
    async with httpx.AsyncClient(base_url=kept.url, timeout=60) as http, http.stream(
            "POST", f"/threads/{thread['thread_id']}/runs/wait", json={
                "assistant_id": "sleepy", "input": {"steps": 300, "delay": 0.1},
                "on_disconnect": "cancel"}) as resp:
        assert (await anext(resp.aiter_raw())).startswith(b"\n")
        run_id = resp.headers["content-location"].rsplit("/", 1)[1]
    await client.runs.join(thread["thread_id"], run_id)  # returns once the run is over
    run = await client.runs.get(thread["thread_id"], run_id)
    assert run["status"] == "interrupted" and run["cancel_reason"] == "disconnect", run


# ------------------------------------------------------------------ /info

# The reference server's /info (langgraph_api.api.meta.meta_info): its fields and flags.
REFERENCE_INFO_FIELDS = {"version", "langgraph_py_version", "flags", "host"}
REFERENCE_FLAGS = {"assistants", "crons", "langsmith", "langsmith_tracing_replicas",
                   "langsmith_tracing_session_on_runs"}
REFERENCE_HOST = {"kind", "project_id", "host_revision_id", "revision_id", "tenant_id"}


def test_info_tells_the_truth(http: httpx.Client) -> None:
    """UIs read `flags` to decide which features to show: each says what runlane does."""
    info = http.get("/info", headers=ORIGIN).json()
    assert set(info) >= REFERENCE_INFO_FIELDS, info
    assert set(info["flags"]) == REFERENCE_FLAGS and set(info["host"]) == REFERENCE_HOST
    assert info["host"]["kind"] == "self-hosted"
    assert isinstance(info["langgraph_py_version"], str) and info["server"] == "runlane"
    flags = info["flags"]
    assert flags["assistants"] and flags["crons"]
    assert not (flags["langsmith"] or flags["langsmith_tracing_replicas"]
                or flags["langsmith_tracing_session_on_runs"])
    # crons: true means the cron routes work.
    cron = http.post("/runs/crons", json={"assistant_id": "echo", "schedule": "0 0 1 1 *"})
    assert cron.status_code == 200, cron.text
    assert http.delete(f"/runs/crons/{cron.json()['cron_id']}").status_code in (200, 204)
    assert len(http.post("/assistants/search", json={}).json()) > 0


# ------------------------------------------------------------------ pagination headers

def _pages(http: httpx.Client, path: str, query: dict[str, Any], key: str,
           limit: int = 2) -> list[tuple[dict[str, str], list[str]]]:
    """Every page of a search, read as the JS SDK pages: by X-Pagination-Next."""
    pages, offset = [], 0
    while True:
        resp = http.post(path, json={**query, "limit": limit, "offset": offset},
                         headers=ORIGIN)
        assert resp.status_code == 200, resp.text
        _readable_by_page(resp)
        pagination = {k: v for k, v in resp.headers.items() if k.startswith("x-pagination")}
        pages.append((pagination, [item[key] for item in resp.json()]))
        if "x-pagination-next" not in pagination:
            return pages
        offset = int(pagination["x-pagination-next"])
        assert len(pages) < 10


def test_searches_send_the_pagination_headers(http: httpx.Client) -> None:
    """As the reference sends them: with more to come, Next (the next offset) and a
    Total one past it; on the last page, the exact Total and no Next."""
    tag = {"wire_pagination": str(uuid.uuid4())}
    for _ in range(5):
        http.post("/threads", json={"metadata": tag})
        http.post("/assistants", json={"graph_id": "echo", "metadata": tag})
        http.post("/runs/crons", json={"assistant_id": "echo", "schedule": "0 0 1 1 *",
                                       "metadata": tag})
    for path, key in (("/threads/search", "thread_id"), ("/assistants/search", "assistant_id"),
                      ("/runs/crons/search", "cron_id")):
        pages = _pages(http, path, {"metadata": tag}, key)
        assert [headers for headers, _ in pages] == [
            {"x-pagination-next": "2", "x-pagination-total": "3"},
            {"x-pagination-next": "4", "x-pagination-total": "5"},
            {"x-pagination-total": "5"},
        ], path
        ids = [i for _, page_ids in pages for i in page_ids]
        assert len(ids) == len(set(ids)) == 5, path
        # An exact last page: no Next; past the end: the offset, as the reference says.
        last = http.post(path, json={"metadata": tag, "limit": 5})
        assert dict(last.headers).get("x-pagination-next") is None
        assert last.headers["x-pagination-total"] == "5"
        beyond = http.post(path, json={"metadata": tag, "limit": 2, "offset": 7})
        assert beyond.json() == [] and beyond.headers["x-pagination-total"] == "7"


# ------------------------------------------------------------------ SSE heartbeats

async def _until_heartbeat(resp: httpx.Response) -> list[str]:
    """The stream's lines up to its first heartbeat comment."""
    lines = []
    async for line in resp.aiter_lines():
        lines.append(line)
        if line.startswith(":"):
            return lines
    return lines


async def test_quiet_streams_send_heartbeats(server: ServerProcess) -> None:
    """A `: heartbeat` comment every 5 s of silence, as the reference sends, on a run
    stream whose graph says nothing for 6 s, on an idle thread's stream, and on an idle
    thread's v2 event stream."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        quiet = (await http.post("/threads", json={})).json()["thread_id"]
        idle = (await http.post("/threads", json={})).json()["thread_id"]
        idle_v2 = (await http.post("/threads", json={})).json()["thread_id"]

        async def run_stream() -> list[str]:
            async with http.stream("POST", f"/threads/{quiet}/runs/stream", json={
                    "assistant_id": "sleepy", "input": {"steps": 1, "delay": 6.5},
                    "stream_mode": ["custom"]}) as resp:
                return await _until_heartbeat(resp)

        async def thread_stream() -> list[str]:
            async with http.stream("GET", f"/threads/{idle}/stream") as resp:
                assert resp.status_code == 200
                return await _until_heartbeat(resp)

        async def protocol_stream() -> list[str]:
            async with http.stream("POST", f"/threads/{idle_v2}/stream/events",
                                   json={"channels": ["lifecycle"]}) as resp:
                assert resp.status_code == 200
                return await _until_heartbeat(resp)

        ran, idled, idled_v2 = await asyncio.gather(run_stream(), thread_stream(),
                                                    protocol_stream())
    assert ran[-1] == ": heartbeat" and "event: metadata" in ran, ran
    assert "event: custom" not in ran, ran  # it came while the graph was quiet
    assert idled == [": heartbeat"], idled
    assert idled_v2 == [": heartbeat"], idled_v2


def test_the_js_sdk_reads_kept_alive_answers(kept: Any) -> None:
    """@langchain/langgraph-sdk's runs.wait and runs.join parse the body after the
    keep-alive newlines."""
    from test_js_sdk import JS_DIR, _install, _tools

    node, npm = _tools()
    _install(npm)
    proc = subprocess.run([node, str(JS_DIR / "wait_check.mjs"), kept.url], check=False,
                          cwd=JS_DIR, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    answers = json.loads(proc.stdout)
    assert answers["waited"] == {**LONG, "ticks": 8}, answers
    assert answers["joined"]["ticks"] == 16, answers


# ------------------------------------------------------------------ connections

def _get_ok(sock: socket.socket, host: str) -> bytes:
    """One GET /ok on an open keep-alive connection; its whole answer ('' on EOF)."""
    sock.sendall(f"GET /ok HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        if not chunk:
            return answer
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])  # type: ignore[index]
    while len(body) < length:
        body += sock.recv(65536)
    return answer


def test_an_idle_keep_alive_connection_is_still_served(server: ServerProcess) -> None:
    """A client that keeps its connection idle longer than uvicorn's own 5 s default
    (a pool's reuse, or a client that lags between creating a thread and asking for
    its run's stream) is answered on it, not reset."""
    host = server.url.removeprefix("http://")  # a cluster's: its first worker
    port = int(host.rpartition(":")[2])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        assert _get_ok(sock, host).startswith(b"HTTP/1.1 200 ")
        time.sleep(6.5)
        assert _get_ok(sock, host).startswith(b"HTTP/1.1 200 ")


def test_keep_alive_timeout_and_backlog_settings(tmp_path: Path) -> None:
    """--keep-alive-timeout closes an idle connection after that many seconds;
    --backlog is the listening socket's queue (as the kernel reports it)."""
    proc = ServerProcess(tmp_path, "--keep-alive-timeout", "1", "--backlog", "77").start()
    try:
        host = proc.url.removeprefix("http://")
        with socket.create_connection(("127.0.0.1", proc.port), timeout=30) as sock:
            assert _get_ok(sock, host).startswith(b"HTTP/1.1 200 ")
            assert sock.recv(65536) == b""  # closed by the server, well before 30 s
        if shutil.which("ss") is not None:
            listing = subprocess.run(["ss", "-ltnH", f"sport = :{proc.port}"], check=True,
                                     capture_output=True, text=True).stdout
            # A listening socket's Send-Q is its backlog.
            assert listing.split()[2] == "77", listing
    finally:
        proc.stop()
