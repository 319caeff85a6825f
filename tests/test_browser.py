"""runlane the way a user meets it: a React chat page on the official `useStream` hook
(@langchain/langgraph-sdk/react, tests/browser/app), in Debian's Chromium driven by
Playwright, served from another origin than the server, on every backend.

The agent is tests/graphs/browser_graphs.py: it answers `reply_for(text, tokens)`, one
token per `delay` seconds, and pauses at interrupt() for a message starting "/approve".
Every token of an answer is distinct, so a lost or repeated token shows in its text.
Each test works in threads of its own (a metadata tag of its own on the page), so the
session server's other threads never show in its thread list.
"""

from __future__ import annotations

import itertools
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from langgraph_sdk import get_sync_client

from browser_support import (
    CHROMIUM,
    ChatPage,
    artefact_stem,
    build_app,
    clear_artefacts,
    require_tools,
    static_server,
)

pytestmark = pytest.mark.timeout(180)

def reply_for(text: str, tokens: int) -> str:
    """The agent's whole answer to `text` (tests/graphs/browser_graphs.py)."""
    return " ".join([f"You said: {text}.", *(f"w{i}" for i in range(1, tokens + 1))])


WAIT_MS = 30_000  # any one condition in the page; a cluster on a busy machine is slow


@pytest.fixture(scope="session")
def chat_origin() -> Iterator[str]:
    """The built chat page, served from an origin of its own."""
    require_tools()
    clear_artefacts()  # what is there after the session is this session's
    with static_server(build_app()) as origin:
        yield origin


@pytest.fixture(scope="module")
def browser(chat_origin: str) -> Iterator[Any]:
    """One Chromium (the system's, never a download) for this module's tests, a page
    per test. Not for the session: while Playwright's sync API is up it marks its event
    loop as running, and the asyncio tests of other modules could not start theirs.
    (pytest groups tests by backend, so this may start once per backend.)"""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM)
        yield instance
        instance.close()


@pytest.fixture
def chat(browser: Any, chat_origin: str, server: Any,
         request: pytest.FixtureRequest) -> Iterator[ChatPage]:
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    context = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    page = ChatPage(context.new_page(), chat_origin, server.url,
                    artefact_stem(request.node.nodeid))
    yield page
    context.close()


def _tag() -> str:
    return uuid.uuid4().hex[:12]


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _wait_run_status(client: Any, thread_id: str, run_id: str, wanted: str,
                     timeout: float = 30.0) -> dict:
    """The run once it reached `wanted`; fails naming the status it stayed in."""
    deadline = time.monotonic() + timeout
    run = client.runs.get(thread_id, run_id)
    while run["status"] != wanted and time.monotonic() < deadline:
        time.sleep(0.05)
        run = client.runs.get(thread_id, run_id)
    assert run["status"] == wanted, f"run {run_id} is {run['status']!r}, expected {wanted!r}"
    return run


def _wait_tokens(chat: ChatPage, count: int) -> None:
    """Until the last AI message shows at least `count` tokens ("w1" .. "wN")."""
    chat.page.wait_for_function(
        """n => {
          const all = document.querySelectorAll(
            '[data-testid=message][data-type=ai] [data-testid=message-text]');
          return all.length > 0 && (all[all.length - 1].textContent.match(/ w\\d+/g) || [])
            .length >= n;
        }""", arg=count)


def _assert_growing_prefixes(states: list[str], final: str) -> None:
    """Each recorded state a prefix of the next and of the final text."""
    for before, after in itertools.pairwise(states):
        assert after.startswith(before), f"the answer went back from {before!r} to {after!r}"
    assert all(final.startswith(state) for state in states), states


def test_send_streams_tokens(chat: ChatPage, server: Any) -> None:
    expect = _expect()
    answer = reply_for("hello", 12)
    with chat.step("open"):
        chat.open(tag=_tag(), tokens=12, delay=0.08)
        chat.record_ai_text()
    with chat.step("send and stream"):
        chat.send("hello")
        expect(chat.tid("status")).to_have_text("streaming")
        expect(chat.messages("ai").last.get_by_test_id("message-text")).to_have_text(answer)
        expect(chat.tid("status")).to_have_text("idle")
    with chat.step("what streamed"):
        states = chat.recorded()
        # Tokens arrive one by one: several states short of the answer, then the answer.
        assert states[-1] == answer
        assert len(states) >= 5, f"too few intermediate states: {states}"
        _assert_growing_prefixes(states, answer)
        assert chat.texts() == [("human", "hello"), ("ai", answer)]
    with chat.step("the server's record"):
        client = get_sync_client(url=server.url)
        thread_id = chat.tid("thread-id").inner_text()
        run_id = chat.tid("run-id").inner_text()
        assert _wait_run_status(client, thread_id, run_id, "success")
        state = client.threads.get_state(thread_id)
        shown = chat.page.eval_on_selector_all(
            "[data-testid=message]", "els => els.map(e => e.dataset.messageId)")
        assert [m["id"] for m in state["values"]["messages"]] == shown
        assert [m["content"] for m in state["values"]["messages"]] == ["hello", answer]


@pytest.mark.parametrize("mode", ["resumable", "disconnect"])
def test_stop_mid_answer(chat: ChatPage, server: Any, mode: str) -> None:
    """Stop by the cancel route (useStream with reconnectOnMount calls runs.cancel) and
    by aborting a stream made with on_disconnect=cancel: either way the run ends
    interrupted, the answer stops short, and the next message works."""
    expect = _expect()
    tokens = 40
    full = reply_for("stop me", tokens)
    with chat.step("open and send"):
        chat.open(tag=_tag(), mode=mode, tokens=tokens, delay=0.1)
        chat.record_ai_text()
        chat.send("stop me")
        _wait_tokens(chat, 3)
        run_id = chat.tid("run-id").inner_text()
        thread_id = chat.tid("thread-id").inner_text()
        assert run_id and thread_id
    with chat.step("stop"):
        chat.tid("stop").click()
        expect(chat.tid("status")).to_have_text("idle")
        client = get_sync_client(url=server.url)
        _wait_run_status(client, thread_id, run_id, "interrupted")
        cancels = [r for r in chat.requests if re.fullmatch(
            rf"POST /threads/{thread_id}/runs/{run_id}/cancel(\?.*)?", r)]
        if mode == "resumable":
            assert len(cancels) == 1, chat.requests
        else:  # nothing but the stream's end told the server
            assert cancels == [], chat.requests
        states = chat.recorded()
        assert states and len(states[-1]) < len(full), f"the answer was not cut short: {states}"
        _assert_growing_prefixes(states, full)
        # The answer's node never finished, so the thread kept no part of it; after
        # Stop the page shows what the server kept.
        messages = client.threads.get_state(thread_id)["values"]["messages"]
        assert [m["content"] for m in messages] == ["stop me"]
        expect(chat.messages()).to_have_count(1)
    with chat.step("next message"):
        answer = reply_for("and now?", tokens)
        chat.send("and now?")
        expect(chat.tid("run-id")).not_to_have_text(run_id)
        expect(chat.messages("ai").last.get_by_test_id("message-text")).to_have_text(
            answer, timeout=60_000)
        expect(chat.tid("status")).to_have_text("idle")
        _wait_run_status(client, thread_id, chat.tid("run-id").inner_text(), "success")
        messages = client.threads.get_state(thread_id)["values"]["messages"]
        assert [m["content"] for m in messages][-2:] == ["and now?", answer]


def test_reload_rejoins_the_stream(chat: ChatPage, server: Any) -> None:
    """A reload mid-answer rejoins the run's stream (reconnectOnMount): the answer
    completes with every token exactly once. On the cluster the reloaded page talks to
    another worker than the one that started the run."""
    expect = _expect()
    tokens = 40
    answer = reply_for("keep going", tokens)
    with chat.step("send"):
        chat.open(tag=_tag(), tokens=tokens, delay=0.1)
        chat.send("keep going")
        _wait_tokens(chat, 4)
        run_id = chat.tid("run-id").inner_text()
        thread_id = chat.tid("thread-id").inner_text()
    with chat.step("reload"):
        chat.record_ai_text_on_load()
        chat.requests.clear()
        urls = getattr(server, "urls", None)
        chat.reload(api=urls[1] if urls else None)
        expect(chat.tid("thread-id")).to_have_text(thread_id)
        expect(chat.messages("ai").last.get_by_test_id("message-text")).to_have_text(answer)
        expect(chat.tid("status")).to_have_text("idle")
    with chat.step("rejoined, nothing lost or repeated"):
        joins = [r for r in chat.requests
                 if r.startswith(f"GET /threads/{thread_id}/runs/{run_id}/stream")]
        assert joins, f"the page did not rejoin run {run_id}: {chat.requests}"
        states = chat.recorded()
        assert any(len(state) < len(answer) for state in states), (
            f"the run had ended before the page rejoined it: {states}")
        _assert_growing_prefixes(states, answer)
        assert chat.texts() == [("human", "keep going"), ("ai", answer)]
        client = get_sync_client(url=server.url)
        _wait_run_status(client, thread_id, run_id, "success")
        messages = client.threads.get_state(thread_id)["values"]["messages"]
        assert [m["content"] for m in messages] == ["keep going", answer]


def test_reopen_a_past_thread(chat: ChatPage) -> None:
    expect = _expect()
    tag = _tag()
    with chat.step("two threads"):
        chat.open(tag=tag, tokens=3, delay=0.01)
        chat.send("first thread")
        expect(chat.messages("ai")).to_have_count(1)
        expect(chat.tid("status")).to_have_text("idle")
        first = chat.tid("thread-id").inner_text()
        chat.tid("new-thread").click()
        expect(chat.messages()).to_have_count(0)
        chat.send("second thread")
        expect(chat.tid("thread-id")).not_to_have_text(first)
        expect(chat.messages("ai").last.get_by_test_id("message-text")).to_have_text(
            reply_for("second thread", 3))
        expect(chat.tid("status")).to_have_text("idle")
    with chat.step("reopen from the thread list"):
        chat.open(tag=tag, tokens=3, delay=0.01)  # a fresh page: no thread open
        items = chat.tid("thread-item")
        expect(items).to_have_count(2)
        chat.page.locator(f"[data-testid=thread-item][data-thread-id='{first}']").click()
        expect(chat.tid("thread-id")).to_have_text(first)
        expect(chat.messages()).to_have_count(2)
        assert chat.texts() == [("human", "first thread"),
                                ("ai", reply_for("first thread", 3))]


def test_regenerate_and_edit_make_branches(chat: ChatPage, server: Any) -> None:
    expect = _expect()
    tokens = 3

    def settled(count: int) -> None:
        expect(chat.messages()).to_have_count(count)
        expect(chat.tid("status")).to_have_text("idle")

    with chat.step("a conversation"):
        chat.open(tag=_tag(), tokens=tokens, delay=0.01)
        chat.send("hello")
        settled(2)
        chat.send("how are you")
        expect(chat.messages("ai").nth(1).get_by_test_id("message-text")).to_have_text(
            reply_for("how are you", tokens))
        settled(4)
        first_answer = chat.messages("ai").last.get_attribute("data-message-id")
    with chat.step("regenerate the last answer"):
        chat.messages("ai").last.get_by_test_id("regenerate").click()
        last = chat.messages("ai").last
        expect(last).not_to_have_attribute("data-message-id", first_answer or "")
        settled(4)
        expect(last.get_by_test_id("branch")).to_have_text("2/2")
        expect(last.get_by_test_id("message-text")).to_have_text(reply_for("how are you", tokens))
        second_answer = last.get_attribute("data-message-id")
        last.get_by_test_id("branch-prev").click()
        expect(chat.messages("ai").last).to_have_attribute("data-message-id", first_answer or "")
        expect(chat.messages("ai").last.get_by_test_id("branch")).to_have_text("1/2")
        chat.messages("ai").last.get_by_test_id("branch-next").click()
        expect(chat.messages("ai").last).to_have_attribute("data-message-id", second_answer or "")
    with chat.step("edit the first message"):
        first = chat.messages("human").first
        first.get_by_test_id("edit").click()
        chat.tid("edit-input").fill("howdy")
        chat.tid("edit-save").click()
        expect(chat.messages("human").first.get_by_test_id("message-text")).to_have_text("howdy")
        settled(2)
        assert chat.texts() == [("human", "howdy"), ("ai", reply_for("howdy", tokens))]
        expect(chat.messages("human").first.get_by_test_id("branch")).to_have_text("2/2")
        chat.messages("human").first.get_by_test_id("branch-prev").click()
        settled(4)
        assert chat.texts()[0] == ("human", "hello")
    with chat.step("the server's record"):
        client = get_sync_client(url=server.url)
        thread_id = chat.tid("thread-id").inner_text()
        head = client.threads.get_state(thread_id)
        assert [m["content"] for m in head["values"]["messages"]] == [
            "howdy", reply_for("howdy", tokens)]
        history = client.threads.get_history(thread_id, limit=50)
        answers = {m["id"] for state in history for m in state["values"].get("messages", [])
                   if m["type"] == "ai" and m["content"] == reply_for("how are you", tokens)}
        assert answers == {first_answer, second_answer}


def test_approve_an_interrupt(chat: ChatPage, server: Any) -> None:
    expect = _expect()
    with chat.step("ask"):
        chat.open(tag=_tag(), tokens=3, delay=0.01)
        chat.send("/approve deploy")
        expect(chat.tid("interrupt-question")).to_have_text("Run 'deploy'?")
        expect(chat.messages("ai")).to_have_count(0)
        thread_id = chat.tid("thread-id").inner_text()
        client = get_sync_client(url=server.url)
        assert client.threads.get(thread_id)["status"] == "interrupted"
    with chat.step("approve"):
        chat.tid("approve").click()
        answer = reply_for("/approve deploy (approve)", 3)
        expect(chat.messages("ai").last.get_by_test_id("message-text")).to_have_text(answer)
        expect(chat.tid("interrupt")).to_have_count(0)
        expect(chat.tid("status")).to_have_text("idle")
        run_id = chat.tid("run-id").inner_text()
        _wait_run_status(client, thread_id, run_id, "success")
        assert client.threads.get(thread_id)["status"] == "idle"
