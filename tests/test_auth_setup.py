"""Setting auth up: `runlane serve` flags and env, refusing unusable configurations
at start-up, the warning when serving beyond loopback without auth, HS256 JWTs with
a secret from the environment, and runlane's own clients (`runlane runs/threads`,
`runlane check`) with credentials."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest

from auth_support import API_KEYS, secured_server
from conftest import GRAPHS_CONFIG, ServerProcess

SECRET = "s" * 40


def _serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
           config: Path = GRAPHS_CONFIG) -> subprocess.CompletedProcess[str]:
    """`runlane serve` that is expected to refuse to start."""
    return subprocess.run(
        [sys.executable, "-m", "runlane.cli", "serve", "--config", str(config), "--port", "1",
         "--database-url", f"sqlite:///{tmp_path / 'db.sqlite'}", *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
        check=False)


@pytest.mark.parametrize(("args", "env", "mentions"), [
    (["--auth", "api-key"], {}, "RUNLANE_API_KEYS"),
    (["--auth", "api-key"], {"RUNLANE_API_KEYS": "alice=short"}, "16 characters"),
    (["--auth", "api-key"], {"RUNLANE_API_KEYS": "no-equals-sign-here-at-all"}, "identity=key"),
    (["--auth", "api-key", "--api-keys-file", "/nonexistent/keys"], {}, "does not exist"),
    (["--auth", "jwt"], {}, "RUNLANE_JWT_SECRET"),
    (["--auth", "jwt"], {"RUNLANE_JWT_SECRET": "short"}, "32 bytes"),
    (["--auth", "jwt", "--jwt-algorithms", "RS256"], {"RUNLANE_JWT_SECRET": SECRET}, "RS256"),
    (["--auth", "jwt", "--jwt-public-key", "/nonexistent.pem"], {}, "neither PEM"),
    (["--auth", "custom"], {}, "langgraph.json"),
    (["--auth", "bogus"], {}, "invalid choice"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_unusable_auth_config_stops_start_up(tmp_path: Path, args: list[str],
                                             env: dict[str, str], mentions: str) -> None:
    done = _serve(tmp_path, *args, env=env)
    assert done.returncode == 2, done.stderr
    assert mentions in " ".join(done.stderr.split()), done.stderr


def test_bad_custom_auth_entry_stops_start_up(tmp_path: Path) -> None:
    graphs = GRAPHS_CONFIG.parent
    cases = {
        "not_auth.py": ("value = 1\n", "not a langgraph_sdk.Auth"),
        "no_authenticate.py": ("from langgraph_sdk import Auth\nauth = Auth()\n",
                               "no @auth.authenticate"),
        "odd_params.py": (("from langgraph_sdk import Auth\nauth = Auth()\n"
                           "@auth.authenticate\nasync def who(cookie): return 'x'\n"),
                          "cookie"),
    }
    for name, (source, mentions) in cases.items():
        (tmp_path / name).write_text(source)
        attribute = "value" if name == "not_auth.py" else "auth"
        config = tmp_path / f"{name}.json"
        config.write_text(json.dumps({
            "dependencies": [str(graphs)], "graphs": {"echo": f"{graphs}/graphs.py:echo"},
            "auth": {"path": f"./{name}:{attribute}"}}))
        done = _serve(tmp_path, config=config)
        said = " ".join(done.stderr.split())  # the console wraps long lines
        assert done.returncode == 2 and mentions in said, (name, done.stderr)


def test_no_auth_beyond_loopback_warns(tmp_path: Path) -> None:
    """0.0.0.0 without auth: a loud warning on stderr and in the log; with auth, or
    on 127.0.0.1, none."""
    loud = ServerProcess(tmp_path / "open", "--host", "0.0.0.0")
    try:
        loud.start()
        assert httpx.post(f"{loud.url}/threads/search", json={}).status_code == 200  # no auth
        said = " ".join(loud.log().split())
        assert "without authentication" in said and "--auth api-key" in said, said
    finally:
        loud.stop()
    keys = tmp_path / "keys"
    keys.write_text(f"alice={API_KEYS['alice']}\n")
    quiet = ServerProcess(tmp_path / "secured", "--host", "0.0.0.0", "--auth", "api-key",
                          "--api-keys-file", str(keys))
    local = ServerProcess(tmp_path / "local")
    try:
        quiet.start()
        local.start()
        assert "without authentication" not in quiet.log()
        assert "without authentication" not in local.log()
        # No auth on loopback: everything works as before, no credentials needed.
        assert httpx.post(f"{local.url}/threads", json={}).status_code == 200
    finally:
        quiet.stop()
        local.stop()


def test_jwt_secret_from_env_and_identity_claim(tmp_path: Path) -> None:
    """HS256 with RUNLANE_JWT_SECRET; the identity from a configured claim; a token
    signed with another secret, or with alg none, is refused."""
    server = ServerProcess(tmp_path, "--auth", "jwt", "--jwt-identity-claim", "email",
                           env={"RUNLANE_JWT_SECRET": SECRET})
    try:
        server.start()
        def token(secret: str = SECRET, **claims: object) -> dict[str, str]:
            body = {"email": "alice@example.com", "exp": int(time.time()) + 600, **claims}
            return {"authorization": f"Bearer {jwt.encode(body, secret, algorithm='HS256')}"}

        ok = httpx.post(f"{server.url}/threads", json={}, headers=token())
        assert ok.status_code == 200, ok.text
        tid = ok.json()["thread_id"]
        assert httpx.get(f"{server.url}/threads/{tid}", headers=token()).status_code == 200
        other = token(email="bob@example.com")
        assert httpx.get(f"{server.url}/threads/{tid}", headers=other).status_code == 404
        for bad in (token("t" * 40), {"authorization": "Bearer " + jwt.encode(
                {"email": "alice@example.com", "exp": int(time.time()) + 600}, None,
                algorithm="none")}, token(email=None)):
            resp = httpx.get(f"{server.url}/threads/{tid}", headers=bad)
            assert resp.status_code == 401, resp.text
            assert resp.headers["www-authenticate"].startswith("Bearer"), resp.headers
    finally:
        server.stop()


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("RUNLANE_API_KEY", "RUNLANE_TOKEN")}
    return subprocess.run([sys.executable, "-m", "runlane.cli", *args], capture_output=True,
                          text=True, timeout=180, env={**clean, **(env or {})}, check=False)


def test_client_cli_and_check_with_credentials() -> None:
    with secured_server("api-key", "sqlite") as secured:
        url = secured.url
        with secured.http("alice") as alice:
            tid = alice.post("/threads", json={}).json()["thread_id"]
        refused = _cli("threads", "list", "--url", url)
        assert refused.returncode == 2 and "--api-key" in refused.stderr, refused.stderr
        mine = _cli("threads", "get", tid, "--url", url, "--api-key", API_KEYS["alice"])
        assert mine.returncode == 0 and tid in mine.stdout, mine.stderr
        by_env = _cli("threads", "get", tid, "--url", url, "--json",
                      env={"RUNLANE_API_KEY": API_KEYS["alice"]})
        assert by_env.returncode == 0 and json.loads(by_env.stdout)["thread_id"] == tid
        theirs = _cli("threads", "get", tid, "--url", url,
                      "--header", f"x-api-key: {API_KEYS['bob']}")
        assert theirs.returncode == 3, theirs.stderr
        listed = _cli("runs", "list", "--url", url, env={"RUNLANE_API_KEY": API_KEYS["bob"]})
        assert listed.returncode == 0 and tid not in listed.stdout, listed.stderr
        bad_header = _cli("threads", "list", "--url", url, "--header", "no-colon")
        assert bad_header.returncode == 2 and "Name: value" in bad_header.stderr
        check = _cli("check", url, "--trials", "4", "--concurrency", "2",
                     "--timed-graph", "", "--cleanup", env={"RUNLANE_API_KEY": API_KEYS["bob"]})
        assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-2000:]
        unauthenticated = _cli("check", url, "--trials", "1", "--timed-graph", "")
        assert unauthenticated.returncode != 0
