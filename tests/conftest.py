"""Test fixtures: a real `runlane serve` process on a free port, driven by langgraph_sdk."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client

GRAPHS_CONFIG = Path(__file__).parent / "graphs" / "langgraph.json"
COMPAT_DIR = Path(__file__).parent / "compat"  # its conftest has servers of its own


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that restart the machine's services run last, after everything else."""
    items.sort(key=lambda item: item.get_closest_marker("outage") is not None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """One `runlane serve` process; `restart()` keeps its database."""

    def __init__(self, workdir: Path, *extra_args: str, env: dict[str, str] | None = None,
                 database_url: str | None = None, config: Path = GRAPHS_CONFIG) -> None:
        self.workdir = workdir
        self.config = config
        workdir.mkdir(parents=True, exist_ok=True)
        self.database_url = database_url or f"sqlite:///{workdir / 'runlane.sqlite'}"
        self.extra_args = list(extra_args)
        # A copy: what a test changes in one server's environment is that server's
        # alone (a cluster's workers are built from one `env`).
        self.env = dict(env or {})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "server.log"
        # Seconds until /ok answers. Generous: a start imports langgraph and migrates,
        # and three cluster workers do it at once on this 2-core machine, often while
        # other suites run; a slow start is not what these tests are about.
        self.start_timeout = 90.0

    def start(self) -> ServerProcess:
        with open(self.log_path, "ab") as log:  # the server writes to its own copy
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "runlane.cli", "serve", "--config", str(self.config),
                 "--port", str(self.port), "--database-url", self.database_url,
                 *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env},
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"runlane exited at start:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/ok", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"runlane did not start:\n{self.log_path.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> ServerProcess:
        self.stop()
        return self.start()

    def log(self) -> str:
        return self.log_path.read_text()


# The e2e suite runs against every backend: one process on SQLite, and three workers on
# PostgreSQL + Redis with requests spread across them. RUNLANE_TEST_BACKENDS narrows it.
BACKENDS = [b.strip() for b in os.environ.get("RUNLANE_TEST_BACKENDS", "sqlite,postgres").split(",")
            if b.strip()]


# A session server stops once the last test using it is done, not at the end of the
# session. pytest groups the tests by session server and runs those that use none
# after every group; many of them start servers of their own, and a PostgreSQL cluster
# left idle meanwhile would hold ~21 of the database's 100 connections. No test
# moves: the stop waits until the module run holding that last test has been torn
# down (its module fixtures may still read the server's log).
_running: dict[str, Callable[[], None]] = {}  # backend -> how to stop its session server
_stop_after: dict[str, str] = {}  # nodeid of the test after which a backend's server stops


def _session_backend(item: pytest.Item) -> str | None:
    """The backend of the session `server` (this conftest's) that `item` uses, if any."""
    callspec = getattr(item, "callspec", None)
    if callspec is None or "server" not in item.fixturenames or COMPAT_DIR in item.path.parents:
        return None
    return callspec.params.get("server")


def pytest_collection_finish(session: pytest.Session) -> None:
    items = session.items
    _stop_after.clear()
    for backend in BACKENDS:
        users = [index for index, item in enumerate(items) if _session_backend(item) == backend]
        if not users:
            continue
        last = users[-1]
        while last + 1 < len(items) and items[last + 1].path == items[last].path:
            last += 1
        _stop_after[items[last].nodeid] = backend


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    yield
    backend = _stop_after.get(item.nodeid)
    stop = _running.pop(backend, None) if backend is not None else None
    if stop is not None:
        stop()


@pytest.fixture(scope="session", params=BACKENDS)
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    backend: str = request.param
    with tempfile.TemporaryDirectory(prefix="runlane-test-") as tmp:
        if backend == "sqlite":
            proc = ServerProcess(Path(tmp)).start()
            _running[backend] = proc.stop
            yield proc
            _running.pop(backend, None)
            proc.stop()  # a no-op if it stopped after its last test
            return
        from cluster import Cluster, require_services

        require_services()
        cluster = Cluster(Path(tmp), 3)
        _running[backend] = cluster.close
        try:
            # Inside the try: workers that did start are stopped (and their database
            # dropped) even when another one fails to start.
            cluster.start()
            yield cluster  # type: ignore[misc]
        finally:
            stop = _running.pop(backend, None)  # None: stopped after its last test
            if stop is not None:
                stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of the test's own, for restarts and kills."""
    proc = ServerProcess(tmp_path).start()
    yield proc
    proc.stop()


@pytest.fixture
def client(server: ServerProcess):
    return sdk_client(server)


def sdk_client(server: ServerProcess):
    """langgraph_sdk's client of `server`; on a cluster every request to the next worker."""
    client = get_client(url=server.url, timeout=60)
    urls = getattr(server, "urls", None)
    if urls:
        from cluster import RoundRobinTransport

        client.http.client._transport = RoundRobinTransport(urls)
    return client


@pytest.fixture
async def spread_http(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    """Raw async HTTP; on a cluster each request to the next worker (a command, a cancel,
    the stream and each reconnect are served by different workers)."""
    urls = getattr(server, "urls", None)
    transport = None
    if urls:
        from cluster import RoundRobinTransport

        transport = RoundRobinTransport(urls)
    async with httpx.AsyncClient(base_url=server.url, timeout=60,
                                 transport=transport) as session:
        yield session


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    urls = getattr(server, "urls", None)
    transport = None
    if urls:
        from cluster import SyncRoundRobinTransport

        transport = SyncRoundRobinTransport(urls)
    with httpx.Client(base_url=server.url, timeout=60, transport=transport) as session:
        yield session
