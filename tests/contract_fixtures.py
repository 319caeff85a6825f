"""Fixtures of the end-to-end run-contract suites. Test modules load them with
`pytest_plugins = ("contract_fixtures",)` (helpers live in contract_support)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from contract_support import assert_no_server_failures


@pytest.fixture
async def ahttp(server: Any):
    """Raw async HTTP against the session server: status codes and bodies as sent."""
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as session:
        yield session


@pytest.fixture
async def new_thread(client: Any):
    """Create threads; at teardown cancel whatever is still active on them, so a
    failing test never leaves long runs behind on the shared server."""
    created: list[str] = []

    async def make(**kwargs: Any) -> str:
        thread_id = (await client.threads.create(**kwargs))["thread_id"]
        created.append(thread_id)
        return thread_id

    yield make
    for thread_id in created:
        try:
            await client.runs.cancel_many(thread_id=thread_id)
        except httpx.HTTPError:
            pass


@pytest.fixture(scope="module")
def no_server_errors(server: Any):
    """Invariant 6 (no 5xx), module-wide: the session server logged no internal failure
    while this module's tests ran. Use with `pytest.mark.usefixtures`."""
    start = len(server.log())
    yield
    assert_no_server_failures(server.log()[start:])
