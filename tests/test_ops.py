"""Operability: readiness, structured logs, graceful shutdown on SIGTERM.

Real `runlane serve` processes: a SQLite one, and PostgreSQL workers whose Redis and
database the test takes away (a TCP relay to Redis that it closes; the database
dropped under the worker)."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import ServerProcess

LONG = {"steps": 100_000, "delay": 0.02}


def wait_for(probe, what: str, timeout: float = 30.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


def run_status(http: httpx.Client, thread_id: str, run_id: str) -> str:
    return http.get(f"/threads/{thread_id}/runs/{run_id}").json()["status"]


def wait_run(http: httpx.Client, thread_id: str, run_id: str, *statuses: str) -> dict:
    def probe() -> dict | None:
        run = http.get(f"/threads/{thread_id}/runs/{run_id}").json()
        return run if run["status"] in statuses else None

    return wait_for(probe, f"run {run_id} to be {'/'.join(statuses)}")


def create_run(http: httpx.Client, thread_id: str, graph: str, graph_input: dict,
               **options: object) -> dict:
    resp = http.post(f"/threads/{thread_id}/runs",
                     json={"assistant_id": graph, "input": graph_input, **options})
    assert resp.status_code == 200, resp.text
    return resp.json()


def new_thread(http: httpx.Client) -> str:
    return http.post("/threads", json={}).json()["thread_id"]


def json_lines(text: str) -> list[dict]:
    """Every non-empty line, parsed: each one must be a JSON object."""
    entries = []
    for line in text.splitlines():
        if line.strip():
            try:
                entries.append(json.loads(line))
            except ValueError:
                raise AssertionError(f"a log line is not JSON: {line!r}") from None
    return entries


def status_changes(entries: list[dict]) -> dict[str, list[dict]]:
    changes: dict[str, list[dict]] = defaultdict(list)
    for entry in entries:
        if entry.get("event") == "run_status":
            changes[entry["run_id"]].append(entry)
    return changes


def transitions(changes: list[dict]) -> list[tuple[str | None, str]]:
    return sorted(((c.get("from_status"), c["status"]) for c in changes),
                  key=lambda t: ["new", "pending", "running"].index(t[0] or "new"))


# ------------------------------------------------------------------ readiness


def test_ready_when_everything_is_up(server: ServerProcess) -> None:
    for url in getattr(server, "urls", [server.url]):
        resp = httpx.get(f"{url}/ready", timeout=30)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["status"] == "ready"
        assert body["checks"]["database"] == "ok"
        if getattr(server, "urls", None):
            assert body["checks"]["redis"] == "ok"
        else:
            assert "redis" not in body["checks"]
        assert httpx.get(f"{url}/ok", timeout=30).status_code == 200


class TcpRelay:
    """A TCP relay (to Redis) that the test can take down: closes its listener and
    every connection it carried."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() under way
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            for sock in self.sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()


@pytest.fixture
def postgres_worker(tmp_path: Path) -> Iterator[tuple[ServerProcess, TcpRelay, str]]:
    from cluster import REDIS_URL, create_database, drop_database, require_services

    require_services()
    host_port = httpx.URL(REDIS_URL.replace("redis://", "http://"))
    relay = TcpRelay((host_port.host, host_port.port or 6379))
    database = create_database()
    worker = ServerProcess(tmp_path, "--redis-url", f"redis://127.0.0.1:{relay.port}/0",
                           database_url=database)
    try:
        worker.start()
        yield worker, relay, database
    finally:
        worker.stop()
        relay.close()
        drop_database(database)


def test_not_ready_names_redis_then_the_database(postgres_worker) -> None:
    worker, relay, database = postgres_worker
    ready = httpx.get(f"{worker.url}/ready", timeout=30)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}

    relay.close()  # Redis unreachable
    resp = httpx.get(f"{worker.url}/ready", timeout=30)
    assert resp.status_code == 503, resp.text
    body = resp.json()
    assert body["down"] == ["redis"], body
    assert body["checks"]["database"] == "ok"
    assert "redis" in body["detail"]
    assert httpx.get(f"{worker.url}/ok", timeout=30).status_code == 200  # still alive

    from cluster import drop_database

    drop_database(database)  # the database goes away under the worker
    resp = httpx.get(f"{worker.url}/ready", timeout=30)
    assert resp.status_code == 503, resp.text
    body = resp.json()
    assert set(body["down"]) == {"database", "redis"}, body
    assert body["checks"]["database"] != "ok"
    assert "database" in body["detail"]
    metrics = httpx.get(f"{worker.url}/metrics", timeout=30).text
    errors = [line for line in metrics.splitlines()
              if line.startswith("runlane_store_errors_total") and not line.endswith(" 0.0")]
    assert errors, metrics  # the failed transactions were counted


# ---------------------------------------------------------------------- logs


def test_json_logs_one_status_line_per_transition(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, "--log-format", "json").start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            thread = new_thread(http)
            done = http.post(f"/threads/{thread}/runs/wait",
                             json={"assistant_id": "echo", "input": {"text": "hi"}})
            assert done.status_code == 200
            done_id = done.headers["Content-Location"].rsplit("/", 1)[1]
            cancelled = create_run(http, thread, "sleepy", LONG)
            wait_run(http, thread, cancelled["run_id"], "running")
            cancel = f"/threads/{thread}/runs/{cancelled['run_id']}/cancel"
            assert http.post(cancel, params={"wait": "1"}).status_code == 200
            assert http.post(cancel).status_code == 202  # a duplicate changes nothing
            superseded = create_run(http, thread, "sleepy", LONG)
            wait_run(http, thread, superseded["run_id"], "running")
            queued = create_run(http, thread, "sleepy", {"steps": 1})  # pending behind it
            newer = create_run(http, thread, "echo", {"text": "x"}, multitask_strategy="interrupt")
            wait_run(http, thread, newer["run_id"], "success")
            wait_run(http, thread, superseded["run_id"], "interrupted")
    finally:
        server.stop()
    entries = json_lines(server.log())
    assert entries, "nothing logged"
    for entry in entries:
        assert {"ts", "level", "logger", "message"} <= set(entry), entry
        if entry.get("run_id"):
            assert entry.get("thread_id") and entry.get("worker_id"), entry
    worker_ids = {e["worker_id"] for e in entries if e.get("worker_id")}
    assert len(worker_ids) == 1, worker_ids
    changes = status_changes(entries)
    full = [(None, "pending"), ("pending", "running")]
    assert transitions(changes[done_id]) == [*full, ("running", "success")]
    assert [c["cause"] for c in changes[done_id]] == ["created", "claimed", "completed"]
    assert transitions(changes[cancelled["run_id"]]) == [*full, ("running", "interrupted")]
    assert changes[cancelled["run_id"]][-1]["cancel_reason"] == "user"
    assert transitions(changes[superseded["run_id"]]) == [*full, ("running", "interrupted")]
    assert changes[superseded["run_id"]][-1]["cancel_reason"] == "multitask_interrupt"
    # The queued run never started: the multitask interrupt stopped it while pending.
    assert transitions(changes[queued["run_id"]]) == [(None, "pending"),
                                                      ("pending", "interrupted")]
    assert changes[queued["run_id"]][-1]["superseded_by"] == newer["run_id"]
    assert transitions(changes[newer["run_id"]]) == [*full, ("running", "success")]
    for run_changes in changes.values():
        for change in run_changes:
            assert change["thread_id"] == thread and change["worker_id"] in worker_ids


def test_worker_processes_get_the_same_logging(tmp_path: Path) -> None:
    """`--workers N`: uvicorn starts the processes; each logs JSON with its own id."""
    from cluster import REDIS_URL, create_database, drop_database, require_services

    require_services()
    database = create_database()
    server = ServerProcess(tmp_path, "--redis-url", REDIS_URL, "--workers", "2",
                           "--log-format", "json", database_url=database)
    server.start_timeout = 120  # three processes import langgraph, one after the other
    try:
        server.start()

        def serving_workers() -> set[str]:
            return {e["worker_id"] for e in json_lines(server.log())
                    if "serving graphs" in e["message"]}

        workers = wait_for(lambda: len(serving_workers()) == 2 and serving_workers(),
                           "both worker processes to start", timeout=60)
        with httpx.Client(base_url=server.url, timeout=60) as http:
            thread = new_thread(http)
            run = create_run(http, thread, "echo", {"text": "x"})
            wait_run(http, thread, run["run_id"], "success")
    finally:
        server.stop()
        drop_database(database)
    entries = json_lines(server.log())
    changes = status_changes(entries)[run["run_id"]]
    assert sorted(c["status"] for c in changes) == ["pending", "running", "success"]
    assert {c["worker_id"] for c in changes} <= workers
    assert {e.get("worker_id") for e in entries if e.get("run_id")} <= workers


# ------------------------------------------------------------------ shutdown


def test_sigterm_finishes_or_interrupts_active_runs_sqlite(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, "--shutdown-grace", "3",
                           env={"RUNLANE_LOG_FORMAT": "json"}).start()
    with httpx.Client(base_url=server.url, timeout=60) as http:
        busy = new_thread(http)
        long = create_run(http, busy, "sleepy", LONG)
        queued = create_run(http, busy, "sleepy", {"steps": 1})
        other = new_thread(http)
        short = create_run(http, other, "sleepy", {"steps": 4, "delay": 0.25})
        wait_run(http, busy, long["run_id"], "running")
        wait_run(http, other, short["run_id"], "running")
        # A client streaming the long run sees its stream end, not a cut connection.
        ended: list[bytes] = []

        def follow() -> None:
            with httpx.Client(base_url=server.url, timeout=60) as streamer, streamer.stream(
                    "GET", f"/threads/{busy}/runs/{long['run_id']}/stream") as stream:
                ended.append(b"".join(stream.iter_bytes()))

        follower = threading.Thread(target=follow)
        follower.start()
        wait_for(lambda: "runlane_sse_streams 1.0" in http.get("/metrics").text, "the stream")
    assert server.proc is not None
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(timeout=30)
    took = time.monotonic() - started
    follower.join(timeout=10)
    assert ended and b"event: values" in ended[0]
    assert took < 3 + 5 + 5, f"shutdown took {took:.1f}s"
    log_before_restart = server.log()

    server.proc = None
    server.start()  # the same database
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            got = {r["run_id"]: r for r in http.get(f"/threads/{busy}/runs").json()}
            got.update({r["run_id"]: r for r in http.get(f"/threads/{other}/runs").json()})
            for run in (long, queued):
                final = got[run["run_id"]]
                assert final["status"] == "interrupted", final
                assert final["stop_reason"] == "cancelled"
                assert final["cancel_reason"] == "shutdown"
            assert got[short["run_id"]]["status"] == "success"  # finished within the grace
            for thread in (busy, other):
                assert http.get(f"/threads/{thread}").json()["status"] == "idle"
            metrics = http.get("/metrics").text
            assert 'runlane_runs{status="running"} 0.0' in metrics
            assert 'runlane_runs{status="pending"} 0.0' in metrics
    finally:
        server.stop()
    changes = status_changes(json_lines(log_before_restart))
    assert changes[long["run_id"]][-1]["cancel_reason"] == "shutdown"
    assert transitions(changes[queued["run_id"]])[-1] == ("pending", "interrupted")
    assert changes[short["run_id"]][-1]["status"] == "success"
    # Nothing was left for the restart to recover.
    after = json_lines(server.log()[len(log_before_restart):])
    assert not status_changes(after), status_changes(after)


def test_sigterm_on_postgres_interrupts_own_runs_and_leaves_the_queue_to_others(
        tmp_path: Path) -> None:
    from cluster import REDIS_URL, create_database, drop_database, require_services

    require_services()
    database = create_database()
    first = ServerProcess(tmp_path / "w1", "--redis-url", REDIS_URL, "--shutdown-grace", "1",
                          database_url=database, env={"RUNLANE_WORKER_NAME": "first"})
    second = ServerProcess(tmp_path / "w2", "--redis-url", REDIS_URL, database_url=database,
                           env={"RUNLANE_WORKER_NAME": "second"})
    try:
        first.start()
        with httpx.Client(base_url=first.url, timeout=60) as http:
            thread = new_thread(http)
            long = create_run(http, thread, "sleepy", LONG)
            wait_run(http, thread, long["run_id"], "running")
            queued = create_run(http, thread, "sleepy", {"steps": 1})
        second.start()
        assert first.proc is not None
        started = time.monotonic()
        first.proc.send_signal(signal.SIGTERM)
        first.proc.wait(timeout=30)
        took = time.monotonic() - started
        with httpx.Client(base_url=second.url, timeout=60) as http:
            final = wait_run(http, thread, long["run_id"], "interrupted", "error", "success")
            assert final["status"] == "interrupted", final
            assert (final["stop_reason"], final["cancel_reason"]) == ("cancelled", "shutdown")
            # The run queued behind it was not the stopping worker's: another one ran it.
            assert wait_run(http, thread, queued["run_id"], "success", "error",
                            "interrupted")["status"] == "success"
            assert http.get(f"/threads/{thread}").json()["status"] == "idle"
        # Well within the lease (6 s + grace): interrupted by its own worker, not reaped.
        assert took < 1 + 5 + 4, f"shutdown took {took:.1f}s"
        assert "worker_lost" not in second.log()
        assert "pending -> running" in second.log()  # the survivor started the queued run
    finally:
        first.stop()
        second.stop()
        drop_database(database)
