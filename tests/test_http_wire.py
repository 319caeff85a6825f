"""The HTTP details browsers, proxies and web apps depend on, against real servers:
CORS (defaults, preflights on every route, errors readable by the page, Private
Network Access, `http.cors` from langgraph.json), JSON bodies labelled `text/plain`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import GRAPHS_CONFIG, ServerProcess
from runlane.api.app import create_app
from runlane.settings import Settings

PAGE = "http://localhost:3000"  # a chat UI served from its own origin
ORIGIN = {"Origin": PAGE}
EXPOSED = {"content-location", "x-pagination-next", "x-pagination-total"}


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
