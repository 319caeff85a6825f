"""RUNLANE_V2_URL: the v2 protocol's end-to-end tests (test_v2_reconnect.py,
test_browser_v2.py) against a server already running there instead of runlane's,
e.g. the reference serving tests/graphs (how those harnesses were proven on it):

    cp -rL tests/graphs /tmp/ref-graphs && cd /tmp/ref-graphs && \\
      benchmarks/.venv-ref/bin/langgraph dev --no-browser --no-reload --port 8765 \\
      --config langgraph.json --n-jobs-per-worker 10 &
    RUNLANE_V2_URL=http://127.0.0.1:8765 pytest tests/test_v2_reconnect.py

A test module takes these fixtures in when the variable is set:

    if EXTERNAL:
        from v2_external import client, server  # noqa: F401 - the conftest's, overridden
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from langgraph_sdk import get_client

EXTERNAL = os.environ.get("RUNLANE_V2_URL")


class External:
    """The server at RUNLANE_V2_URL, shaped as the conftest's (one worker)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.urls = [url]


@pytest.fixture(scope="module")
def server() -> Any:
    assert EXTERNAL, "RUNLANE_V2_URL is not set"
    return External(EXTERNAL)


@pytest.fixture
def client(server: Any) -> Any:
    return get_client(url=server.url, timeout=60)
