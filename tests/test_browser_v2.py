"""The v2-native `useStream` of `@langchain/react` (1.1, tests/browser/app_v2) in Debian's
Chromium, driven by Playwright, served from another origin than the server: the hook
speaks the thread streaming protocol (`POST /threads/{id}/commands`,
`POST /threads/{id}/stream/events`, or a WebSocket), not the classic run routes that
tests/test_browser.py drives.

Send and stream (SSE and WebSocket), Stop mid-answer (a server-side cancel), a reload
mid-answer that re-attaches to the run and resumes its stream, and an interrupt
answered with Approve. The agents are the corpus's: `react_agent` answers "You said:
<message>", or to a message with "long" in it a long answer streamed word by word;
`hitl_agent`'s transfer_money tool asks for approval with interrupt(). (The protocol's
`run.start` carries no run context, so the agents run with their default knobs.)

RUNLANE_V2_URL runs it against another server, e.g. the reference serving tests/graphs
(how this page was proven there; tests/v2_external.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_sync_client

from browser_support import (
    BROWSER_DIR,
    ChatPage,
    assert_growing,
    build_app,
    playwright_expect,
    require_tools,
    static_server,
)
from v2_external import EXTERNAL

# browser and chat, on the page served at page_origin.
pytest_plugins = ("browser_fixtures",)

APP_V2_DIR = BROWSER_DIR / "app_v2"

if EXTERNAL:
    from v2_external import server  # noqa: F401 - the conftest's, overridden


@pytest.fixture(scope="session")
def page_origin() -> Iterator[str]:
    """The built v2 chat page, served from an origin of its own."""
    require_tools()
    with static_server(build_app(APP_V2_DIR)) as origin:
        yield origin


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, dict)
                   and p.get("type") == "text")


def _kept(client: Any, thread_id: str) -> list[tuple[str, str]]:
    """(type, text) of the thread's messages, as the server kept them."""
    values = client.threads.get_state(thread_id)["values"]
    return [(m["type"], _text(m["content"])) for m in values.get("messages", [])]


def _runs(client: Any, thread_id: str) -> list[dict]:
    return client.runs.list(thread_id)


def _wait_runs(client: Any, thread_id: str, wanted: list[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    statuses = [r["status"] for r in _runs(client, thread_id)]
    while statuses != wanted and time.monotonic() < deadline:
        time.sleep(0.05)
        statuses = [r["status"] for r in _runs(client, thread_id)]
    assert statuses == wanted, f"runs of {thread_id}: {statuses}, expected {wanted}"


def _protocol_requests(chat: ChatPage, thread_id: str) -> list[str]:
    return [r for r in chat.requests if r.startswith(f"POST /threads/{thread_id}/")]


@pytest.mark.parametrize("transport", ["sse", "websocket"])
def test_v2_send_streams_tokens(chat: ChatPage, transport: str) -> None:
    expect = playwright_expect()
    sockets: list[str] = []
    chat.page.on("websocket", lambda ws: sockets.append(ws.url))
    with chat.step("open"):
        chat.open(transport=transport)
        chat.record_ai_text()
    with chat.step("send and stream"):
        chat.send("a long answer please")
        expect(chat.tid("status")).to_have_text("streaming")
        chat.wait_words(30)
        expect(chat.tid("status")).to_have_text("idle")
    with chat.step("what streamed"):
        thread_id = chat.tid("thread-id").inner_text()
        client = get_sync_client(url=chat.api)
        _wait_runs(client, thread_id, ["success"])
        kept = _kept(client, thread_id)
        assert [kind for kind, _ in kept] == ["human", "ai"], kept
        assert chat.texts() == kept
        states = chat.recorded()
        assert states[-1] == kept[1][1]
        assert len(states) >= 5, f"too few intermediate states: {states}"
        assert_growing(states, kept[1][1])
        # the protocol's routes, not the run routes
        sent = _protocol_requests(chat, thread_id)
        if transport == "sse":
            assert f"POST /threads/{thread_id}/commands" in sent, chat.requests
            assert f"POST /threads/{thread_id}/stream/events" in sent, chat.requests
        else:  # commands and events over the socket
            assert any(url.endswith(f"/threads/{thread_id}/stream/events")
                       for url in sockets), sockets
        assert not [r for r in chat.requests if "/runs/stream" in r], chat.requests


def test_v2_stop_mid_answer(chat: ChatPage) -> None:
    expect = playwright_expect()
    with chat.step("send"):
        chat.open()
        chat.record_ai_text()
        chat.send("tell me a long story")
        chat.wait_words(5)
        thread_id = chat.tid("thread-id").inner_text()
    with chat.step("stop"):
        chat.tid("stop").click()
        expect(chat.tid("status")).to_have_text("idle")
        client = get_sync_client(url=chat.api)
        _wait_runs(client, thread_id, ["interrupted"])
        states = chat.recorded()
        assert_growing(states, states[-1])
        shown = states[-1]
        time.sleep(1)  # the answer would have grown by ~50 words: it must not
        assert chat.recorded()[-1] == shown, "the answer kept growing after Stop"
    with chat.step("next message"):
        chat.send("hello")
        # (the hook keeps showing the stopped answer, which the server never kept, after
        # the new one: not checked here, a client-side matter)
        expect(chat.messages("ai").get_by_test_id("message-text").filter(
            has_text="You said: hello")).to_have_count(1)
        expect(chat.tid("status")).to_have_text("idle")
        _wait_runs(client, thread_id, ["success", "interrupted"])
        kept = _kept(client, thread_id)
        assert kept == [("human", "tell me a long story"), ("human", "hello"),
                        ("ai", "You said: hello")], kept


def test_v2_reload_resumes_the_stream(chat: ChatPage) -> None:
    """A reload mid-answer: the hook re-attaches to the thread's run and resumes its
    stream; the answer completes, every word once."""
    expect = playwright_expect()
    with chat.step("send"):
        chat.open()
        chat.send("tell me a long story")
        chat.wait_words(5)
        thread_id = chat.tid("thread-id").inner_text()
    with chat.step("reload"):
        chat.record_ai_text_on_load()
        chat.requests.clear()
        chat.reload()
        expect(chat.tid("thread-id")).to_have_text(thread_id)
        client = get_sync_client(url=chat.api)
        _wait_runs(client, thread_id, ["success"], timeout=60)
        expect(chat.tid("status")).to_have_text("idle")
    with chat.step("resumed, nothing lost or repeated"):
        kept = _kept(client, thread_id)
        assert [kind for kind, _ in kept] == ["human", "ai"], kept
        expect(chat.messages("ai").last.get_by_test_id("message-text")).to_have_text(kept[1][1])
        assert chat.texts() == kept
        states = chat.recorded()
        assert any(len(s) < len(kept[1][1]) for s in states), (
            f"the run had ended before the page re-attached: {states}")
        assert_growing(states, kept[1][1])
        assert _protocol_requests(chat, thread_id), chat.requests


def test_v2_approve_an_interrupt(chat: ChatPage) -> None:
    expect = playwright_expect()
    with chat.step("ask"):
        chat.open(assistant="hitl_agent")
        chat.send("transfer 50 to Alice")
        expect(chat.tid("interrupt-question")).to_have_text("Transfer 50 to Alice?")
        thread_id = chat.tid("thread-id").inner_text()
        client = get_sync_client(url=chat.api)
        assert client.threads.get(thread_id)["status"] == "interrupted"
    with chat.step("approve"):
        chat.tid("approve").click()
        expect(chat.messages("ai").last.get_by_test_id("message-text")).to_contain_text(
            "Transferred 50 to Alice")
        expect(chat.tid("interrupt")).to_have_count(0)
        expect(chat.tid("status")).to_have_text("idle")
        kept = _kept(client, thread_id)
        assert [kind for kind, _ in kept] == ["human", "ai", "tool", "ai"], kept
        assert client.threads.get(thread_id)["status"] == "idle"


def test_app_v2_pins_a_v2_native_hook() -> None:
    """The page depends on @langchain/react (the v2-native hook), not the classic one."""
    import json

    package = json.loads((APP_V2_DIR / "package.json").read_text())
    assert "@langchain/react" in package["dependencies"]
    assert "@langchain/langgraph-sdk" not in package["dependencies"]
    assert Path(APP_V2_DIR / "package-lock.json").exists()
