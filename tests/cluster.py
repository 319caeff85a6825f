"""A scale-out deployment for tests: several real `runlane serve` worker processes on
their own ports, sharing a fresh PostgreSQL database and the machine's Redis, and a
client transport that spreads requests across them (as a load balancer would)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from conftest import ServerProcess

POSTGRES_ADMIN_URL = os.environ.get("RUNLANE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("RUNLANE_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def missing_services(*, redis: bool = True) -> list[str]:
    """What the scale-out tests need and cannot reach here (`redis=False`: tests that
    need PostgreSQL only)."""
    missing = []
    if not _reachable("127.0.0.1", 5432):
        missing.append("PostgreSQL at 127.0.0.1:5432")
    if redis and not _reachable("127.0.0.1", 6379):
        missing.append("Redis at 127.0.0.1:6379")
    return missing


def require_services(*, redis: bool = True, tests: str = "scale-out tests") -> None:
    """Skip (saying plainly what and how) when PostgreSQL or Redis is missing; fail
    instead where they are required (CI sets RUNLANE_REQUIRE_SERVICES=1). `tests`
    names what is skipped; `redis=False` for tests that need PostgreSQL only."""
    import pytest

    missing = missing_services(redis=redis)
    if not missing:
        return
    message = (f"{tests} skipped: no {' and no '.join(missing)}. Start them "
               "(see docs/testing.md) to run these tests.")
    if os.environ.get("RUNLANE_REQUIRE_SERVICES"):
        pytest.fail(message.replace("skipped", "cannot run"), pytrace=False)
    pytest.skip(message)


def create_database(admin_url: str = POSTGRES_ADMIN_URL) -> str:
    """A fresh, empty database for one test session; its URL."""
    import psycopg

    name = f"runlane_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0]
    return f"{base}/{name}"


def drop_database(url: str, admin_url: str = POSTGRES_ADMIN_URL) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Cluster:
    """N workers on one PostgreSQL database. Looks like a ServerProcess to tests:
    `url` is the first worker; `urls`/`workers` are all of them. Each worker gets its
    own copy of `env`: change one worker's (`workers[i].env`) to set it alone."""

    def __init__(self, workdir: Path, size: int = 3, *extra_args: str,
                 admin_url: str = POSTGRES_ADMIN_URL, redis_url: str = REDIS_URL,
                 env: dict[str, str] | None = None, config: Path | None = None) -> None:
        self.workdir = workdir
        self.admin_url = admin_url
        self.database_url = create_database(admin_url)
        self.workers = [
            ServerProcess(workdir / f"worker{i}", "--redis-url", redis_url, *extra_args,
                          database_url=self.database_url, env=env,
                          **({"config": config} if config is not None else {}))
            for i in range(size)
        ]
        self.url = self.workers[0].url
        self.urls = [w.url for w in self.workers]

    def start(self) -> Cluster:
        # All at once, as a deployment starts them: migrations and default assistants
        # must survive workers racing each other on a fresh database.
        with concurrent.futures.ThreadPoolExecutor(len(self.workers)) as pool:
            for started in pool.map(lambda worker: worker.start(), self.workers):
                assert started is not None
        return self

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()

    def close(self) -> None:
        self.stop()
        drop_database(self.database_url, self.admin_url)

    def log(self) -> str:
        return "\n".join(f"--- worker {i}\n{w.log()}" for i, w in enumerate(self.workers))


def serve(backend: str, workdir: Path, config: Path,
          env: dict[str, str] | None = None) -> Iterator[Any]:
    """runlane serving `config` on `backend` for the duration of a fixture (`yield
    from`): one process on SQLite, or three workers on PostgreSQL + Redis; stopped
    (the cluster's database dropped) afterwards, also when starting failed."""
    if backend == "sqlite":
        server = ServerProcess(workdir / "server", config=config, env=env)
        try:
            yield server.start()
        finally:
            server.stop()
        return
    require_services()
    cluster = Cluster(workdir / "cluster", 3, config=config, env=env)
    try:
        yield cluster.start()
    finally:
        cluster.close()


async def wait_status(client: Any, thread_id: str, run_id: str, statuses: set[str],
                      timeout: float = 30) -> dict:
    """Poll a run (through any worker) until its status is one of `statuses`."""
    deadline = time.monotonic() + timeout
    while True:
        run = await client.runs.get(thread_id, run_id)
        if run["status"] in statuses:
            return run
        assert time.monotonic() < deadline, f"run stayed {run['status']}: {run}"
        await asyncio.sleep(0.05)


class RoundRobinTransport(httpx.AsyncBaseTransport):
    """Sends each request to the next worker in turn; like a load balancer, it skips a
    worker that refuses connections (killed or restarting)."""

    def __init__(self, urls: list[str]) -> None:
        self._count = len(urls)
        self._ports = itertools.cycle([httpx.URL(u).port for u in urls])
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(self._count):
            request.url = request.url.copy_with(port=next(self._ports))
            try:
                return await self._inner.handle_async_request(request)
            except httpx.ConnectError:
                if attempt == self._count - 1:
                    raise
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await self._inner.aclose()


class SyncRoundRobinTransport(httpx.BaseTransport):
    def __init__(self, urls: list[str]) -> None:
        self._ports = itertools.cycle([httpx.URL(u).port for u in urls])
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(port=next(self._ports))
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()
