"""`runlane runs ...` / `runlane threads ...`, run as a subprocess against a real
server, as a script would: output and exit codes (0 done, 2 usage/connection,
3 not found, 4 already finished)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from conftest import BACKENDS, ServerProcess, free_port

LONG = {"steps": 100_000, "delay": 0.02}
# The client CLI only talks HTTP: what it prints and how it exits do not depend on the
# backend behind the server, so its tests run against one session server (SQLite,
# unless RUNLANE_TEST_BACKENDS leaves it out).
ONE_BACKEND = ["sqlite"] if "sqlite" in BACKENDS else BACKENDS[:1]


def cli(*args: str, url: str | None = None, env: dict[str, str] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "runlane.cli", *args]
    if url is not None:
        command += ["--url", url]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})})


def wait_status(http: httpx.Client, thread_id: str, run_id: str, status: str) -> None:
    deadline = time.monotonic() + 30
    while http.get(f"/threads/{thread_id}/runs/{run_id}").json()["status"] != status:
        assert time.monotonic() < deadline, f"run {run_id} never became {status}"
        time.sleep(0.05)


@pytest.fixture
def runs(server: ServerProcess) -> dict[str, str]:
    """A thread with a finished run and a running one (all on one worker's URL)."""
    with httpx.Client(base_url=server.url, timeout=60) as http:
        thread = http.post("/threads", json={"metadata": {"cli": "test"}}).json()["thread_id"]
        done = http.post(f"/threads/{thread}/runs",
                         json={"assistant_id": "echo", "input": {"text": "x"}}).json()
        assert http.get(f"/threads/{thread}/runs/{done['run_id']}/join").status_code == 200
        long = http.post(f"/threads/{thread}/runs",
                         json={"assistant_id": "sleepy", "input": LONG}).json()
        wait_status(http, thread, long["run_id"], "running")
    return {"thread": thread, "done": done["run_id"], "long": long["run_id"]}


@pytest.mark.parametrize("server", ONE_BACKEND, indirect=True)
def test_runs_list_get_watch_cancel(server: ServerProcess, runs: dict[str, str]) -> None:
    url, thread, done, long = server.url, runs["thread"], runs["done"], runs["long"]

    listed = cli("runs", "list", "--thread", thread, url=url)
    assert listed.returncode == 0, listed.stderr
    assert done in listed.stdout and long in listed.stdout
    assert "success" in listed.stdout and "running" in listed.stdout
    across = cli("runs", "list", "--limit", "50", url=url)  # no thread: recent threads
    assert across.returncode == 0, across.stderr
    assert done in across.stdout and long in across.stdout
    as_json = cli("runs", "list", "--thread", thread, "--json", url=url)
    assert {r["run_id"] for r in json.loads(as_json.stdout)} == {done, long}

    got = cli("runs", "get", thread, done, url=url)
    assert got.returncode == 0, got.stderr
    assert done in got.stdout and "success" in got.stdout and "completed" in got.stdout
    assert json.loads(cli("runs", "get", thread, done, "--json", url=url).stdout)["status"] == \
        "success"
    missing = cli("runs", "get", thread, str(uuid.uuid4()), url=url)
    assert missing.returncode == 3, missing
    assert "not found" in missing.stderr

    started = time.monotonic()
    watched = cli("runs", "watch", "--for", "2", url=url)
    assert watched.returncode == 0, watched.stderr
    assert 2 <= time.monotonic() - started < 30
    assert long in watched.stdout and "running" in watched.stdout
    assert done not in watched.stdout  # finished runs are not active
    one = cli("runs", "watch", "--for", "1", "--thread", thread, "--interval", "0.3", url=url)
    assert one.returncode == 0 and long in one.stdout

    cancelled = cli("runs", "cancel", thread, long, "--wait", url=url)
    assert cancelled.returncode == 0, cancelled.stderr
    assert "interrupted" in cancelled.stdout and "user" in cancelled.stdout
    again = cli("runs", "cancel", thread, long, url=url)  # idempotent: 202
    assert again.returncode == 0, again.stderr
    assert "interrupted" in again.stdout
    finished = cli("runs", "cancel", thread, done, url=url)
    assert finished.returncode == 4, finished
    assert f"run {done} already finished: success" in finished.stderr
    unknown = cli("runs", "cancel", thread, str(uuid.uuid4()), url=url)
    assert unknown.returncode == 3, unknown
    invalid = cli("runs", "cancel", thread, "not-a-uuid", url=url)
    assert invalid.returncode == 2, invalid
    assert "not a UUID" in invalid.stderr

    after = cli("runs", "watch", "--for", "1", "--thread", thread, url=url)
    assert after.returncode == 0 and "no active runs" in after.stdout


@pytest.mark.parametrize("server", ONE_BACKEND, indirect=True)
def test_threads_list_get_delete(server: ServerProcess, runs: dict[str, str]) -> None:
    url, thread = server.url, runs["thread"]
    listed = cli("threads", "list", "--limit", "50", url=url)
    assert listed.returncode == 0, listed.stderr
    assert thread in listed.stdout
    busy = cli("threads", "list", "--status", "busy", "--json", "--limit", "100", url=url)
    assert thread in {t["thread_id"] for t in json.loads(busy.stdout)}

    got = cli("threads", "get", thread, env={"RUNLANE_URL": url})  # the URL from the env
    assert got.returncode == 0, got.stderr
    assert thread in got.stdout and "busy" in got.stdout and '"cli": "test"' in got.stdout

    deleted = cli("threads", "delete", thread, url=url)
    assert deleted.returncode == 0, deleted.stderr
    assert "deleted" in deleted.stdout
    assert cli("threads", "get", thread, url=url).returncode == 3
    gone = cli("threads", "delete", thread, url=url)
    assert gone.returncode == 3 and "not found" in gone.stderr
    assert cli("runs", "get", thread, runs["done"], url=url).returncode == 3


def test_usage_and_connection_errors() -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    down = cli("runs", "list", url=nobody)
    assert down.returncode == 2
    assert "cannot reach" in down.stderr and nobody in down.stderr
    assert cli("threads", "get", str(uuid.uuid4()), url=nobody).returncode == 2
    assert cli("runs").returncode == 2  # a subcommand is required
    assert cli("runs", "cancel", "only-a-thread").returncode == 2
    assert cli("runs", "cancel", "t", "r", "--action", "bogus").returncode == 2
    helped = cli("runs", "--help")
    assert helped.returncode == 0
    for line in ("0  done", "2  usage error", "3  not found", "4  already finished"):
        assert line in helped.stdout
