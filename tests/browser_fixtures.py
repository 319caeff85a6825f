"""Fixtures of the browser suites (tests/test_browser.py, tests/test_browser_v2.py). A
test module loads them with `pytest_plugins = ("browser_fixtures",)` and defines
`page_origin`: the origin its built page is served from (a session fixture); helpers
live in browser_support."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from browser_support import CHROMIUM, WAIT_MS, ChatPage, artefact_stem, playwright_expect


@pytest.fixture(scope="module")
def browser(page_origin: str) -> Iterator[Any]:
    """The system's Chromium (never a download), for one test module: not for the
    session, as while Playwright's sync API is up it marks its event loop as running,
    and the asyncio tests of other modules could not start theirs. (pytest groups tests
    by backend, so a module's may start once per backend.)"""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM)
        yield instance
        instance.close()


@pytest.fixture
def chat(browser: Any, page_origin: str, server: Any,
         request: pytest.FixtureRequest) -> Iterator[ChatPage]:
    """A tab of its own (a fresh browser context) on the module's page, talking to
    `server`; its artefacts are named after the test."""
    playwright_expect().set_options(timeout=WAIT_MS)
    context = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    yield ChatPage(context.new_page(), page_origin, server.url,
                   artefact_stem(request.node.nodeid))
    context.close()
