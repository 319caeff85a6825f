"""runlane the way a user meets it: a React chat page on the official `useStream` hook
(@langchain/langgraph-sdk/react, tests/browser/app), in Debian's Chromium driven by
Playwright, served from another origin than the server, on every backend.

The agents are the corpus's (examples/agents, docs/agents.md): `react_agent` answers
"You said: <message>", or with `reply_tokens` in the run's context a story of that many
words streamed `token_delay` seconds apart (long enough to press Stop); `hitl_agent`'s
transfer_money tool asks for approval with interrupt(). Each test works in threads of
its own (a metadata tag of its own on the page), so the session server's other threads
never show in its thread list.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from langgraph_sdk import get_sync_client

from browser_support import (
    ChatPage,
    assert_growing,
    build_app,
    clear_artefacts,
    playwright_expect,
    require_tools,
    static_server,
)

# browser and chat, on the page served at page_origin.
pytest_plugins = ("browser_fixtures",)


@pytest.fixture(scope="session")
def page_origin() -> Iterator[str]:
    """The built chat page, served from an origin of its own."""
    require_tools()
    clear_artefacts()  # what is there after the session is this session's
    with static_server(build_app()) as origin:
        yield origin


def _tag() -> str:
    return uuid.uuid4().hex[:12]


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


def _story(count: int, delay: float) -> str:
    """The page's `context` parameter for a story of `count` words, `delay` s apart."""
    return json.dumps({"reply_tokens": count, "token_delay": delay})


QUICK = json.dumps({"token_delay": 0.01})  # "You said: <message>", at once


def _ai_contents(client: Any, thread_id: str) -> list[tuple[str, str]]:
    """(type, content) of the thread's messages, as the server kept them."""
    values = client.threads.get_state(thread_id)["values"]
    return [(m["type"], m["content"]) for m in values.get("messages", [])]


def test_send_streams_tokens(chat: ChatPage, server: Any) -> None:
    expect = playwright_expect()
    words = 12
    with chat.step("open"):
        chat.open(tag=_tag(), context=_story(words, 0.08))
        chat.record_ai_text()
    with chat.step("send and stream"):
        chat.send("tell me a story")
        expect(chat.tid("status")).to_have_text("streaming")
        chat.wait_words(words)
        expect(chat.tid("status")).to_have_text("idle")
    with chat.step("what streamed"):
        client = get_sync_client(url=server.url)
        thread_id = chat.tid("thread-id").inner_text()
        run_id = chat.tid("run-id").inner_text()
        _wait_run_status(client, thread_id, run_id, "success")
        kept = _ai_contents(client, thread_id)
        assert [kind for kind, _ in kept] == ["human", "ai"], kept
        answer = kept[1][1]
        assert len(answer.split()) == words, answer
        assert chat.texts() == kept
        # Word by word: several states short of the answer, each growing, then the answer.
        states = chat.recorded()
        assert states[-1] == answer
        assert len(states) >= 5, f"too few intermediate states: {states}"
        assert_growing(states, answer)
        shown = chat.page.eval_on_selector_all(
            "[data-testid=message]", "els => els.map(e => e.dataset.messageId)")
        values = client.threads.get_state(thread_id)["values"]
        assert [m["id"] for m in values["messages"]] == shown


@pytest.mark.parametrize("mode", ["resumable", "disconnect"])
def test_stop_mid_answer(chat: ChatPage, server: Any, mode: str) -> None:
    """Stop by the cancel route (useStream with reconnectOnMount calls runs.cancel) and
    by aborting a stream made with on_disconnect=cancel: either way the run ends
    interrupted, the answer stops short, and the next message works."""
    expect = playwright_expect()
    words = 50  # 5 s: Stop lands mid-answer even on a busy machine
    with chat.step("open and send"):
        chat.open(tag=_tag(), mode=mode, context=_story(words, 0.1))
        chat.record_ai_text()
        chat.send("stop me")
        chat.wait_words(3)
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
        assert states and len(states[-1].split()) < words, f"not cut short: {states}"
        assert_growing(states, states[-1])
        # The model's node never finished, so the thread kept no part of the answer;
        # after Stop the page shows what the server kept.
        assert _ai_contents(client, thread_id) == [("human", "stop me")]
        expect(chat.messages()).to_have_count(1)
    with chat.step("next message"):
        chat.send("and now?")
        expect(chat.tid("run-id")).not_to_have_text(run_id)
        expect(chat.messages("ai")).to_have_count(1)
        chat.wait_words(words)
        expect(chat.tid("status")).to_have_text("idle")
        _wait_run_status(client, thread_id, chat.tid("run-id").inner_text(), "success")
        kept = _ai_contents(client, thread_id)
        assert [kind for kind, _ in kept] == ["human", "human", "ai"], kept
        assert len(kept[-1][1].split()) == words
        assert chat.texts() == kept


def test_reload_rejoins_the_stream(chat: ChatPage, server: Any) -> None:
    """A reload mid-answer rejoins the run's stream (reconnectOnMount): the answer
    completes with every word exactly once. On the cluster the reloaded page talks to
    another worker than the one that started the run."""
    expect = playwright_expect()
    words = 60  # 6 s: the reloaded page rejoins before the answer ends
    with chat.step("send"):
        chat.open(tag=_tag(), context=_story(words, 0.1))
        chat.send("keep going")
        chat.wait_words(4)
        run_id = chat.tid("run-id").inner_text()
        thread_id = chat.tid("thread-id").inner_text()
    with chat.step("reload"):
        chat.record_ai_text_on_load()
        chat.requests.clear()
        urls = getattr(server, "urls", None)
        chat.reload(api=urls[1] if urls else None)
        expect(chat.tid("thread-id")).to_have_text(thread_id)
        expect(chat.messages("ai")).to_have_count(1)
        chat.wait_words(words)
        expect(chat.tid("status")).to_have_text("idle")
    with chat.step("rejoined, nothing lost or repeated"):
        joins = [r for r in chat.requests
                 if r.startswith(f"GET /threads/{thread_id}/runs/{run_id}/stream")]
        assert joins, f"the page did not rejoin run {run_id}: {chat.requests}"
        client = get_sync_client(url=server.url)
        _wait_run_status(client, thread_id, run_id, "success")
        kept = _ai_contents(client, thread_id)
        assert [kind for kind, _ in kept] == ["human", "ai"], kept
        answer = kept[1][1]
        assert len(answer.split()) == words
        assert chat.texts() == kept  # the whole answer, once: no word lost or repeated
        states = chat.recorded()
        assert any(len(state) < len(answer) for state in states), (
            f"the run had ended before the page rejoined it: {states}")
        assert_growing(states, answer)


def test_reopen_a_past_thread(chat: ChatPage) -> None:
    expect = playwright_expect()
    tag = _tag()
    with chat.step("two threads"):
        chat.open(tag=tag, context=QUICK)
        chat.send("first thread")
        expect(chat.messages("ai")).to_have_count(1)
        expect(chat.tid("status")).to_have_text("idle")
        first = chat.tid("thread-id").inner_text()
        chat.tid("new-thread").click()
        expect(chat.messages()).to_have_count(0)
        chat.send("second thread")
        expect(chat.tid("thread-id")).not_to_have_text(first)
        expect(chat.messages("ai").last.get_by_test_id("message-text")).to_have_text(
            "You said: second thread")
        expect(chat.tid("status")).to_have_text("idle")
    with chat.step("reopen from the thread list"):
        chat.open(tag=tag, context=QUICK)  # a fresh page: no thread open
        expect(chat.tid("thread-item")).to_have_count(2)
        chat.page.locator(f"[data-testid=thread-item][data-thread-id='{first}']").click()
        expect(chat.tid("thread-id")).to_have_text(first)
        expect(chat.messages()).to_have_count(2)
        assert chat.texts() == [("human", "first thread"), ("ai", "You said: first thread")]


def test_regenerate_and_edit_make_branches(chat: ChatPage, server: Any) -> None:
    expect = playwright_expect()

    def settled(count: int) -> None:
        expect(chat.messages()).to_have_count(count)
        expect(chat.tid("status")).to_have_text("idle")

    with chat.step("a conversation"):
        chat.open(tag=_tag(), context=QUICK)
        chat.send("hello")
        settled(2)
        chat.send("how are you")
        expect(chat.messages("ai").nth(1).get_by_test_id("message-text")).to_have_text(
            "You said: how are you")
        settled(4)
        first_answer = chat.messages("ai").last.get_attribute("data-message-id") or ""
    with chat.step("regenerate the last answer"):
        chat.messages("ai").last.get_by_test_id("regenerate").click()
        last = chat.messages("ai").last
        expect(last).not_to_have_attribute("data-message-id", first_answer)
        settled(4)
        expect(last.get_by_test_id("branch")).to_have_text("2/2")
        expect(last.get_by_test_id("message-text")).to_have_text("You said: how are you")
        second_answer = last.get_attribute("data-message-id") or ""
        last.get_by_test_id("branch-prev").click()
        expect(chat.messages("ai").last).to_have_attribute("data-message-id", first_answer)
        expect(chat.messages("ai").last.get_by_test_id("branch")).to_have_text("1/2")
        chat.messages("ai").last.get_by_test_id("branch-next").click()
        expect(chat.messages("ai").last).to_have_attribute("data-message-id", second_answer)
    with chat.step("edit the first message"):
        chat.messages("human").first.get_by_test_id("edit").click()
        chat.tid("edit-input").fill("howdy")
        chat.tid("edit-save").click()
        expect(chat.messages("human").first.get_by_test_id("message-text")).to_have_text("howdy")
        settled(2)
        assert chat.texts() == [("human", "howdy"), ("ai", "You said: howdy")]
        expect(chat.messages("human").first.get_by_test_id("branch")).to_have_text("2/2")
        chat.messages("human").first.get_by_test_id("branch-prev").click()
        settled(4)
        assert chat.texts()[0] == ("human", "hello")
    with chat.step("the server's record"):
        client = get_sync_client(url=server.url)
        thread_id = chat.tid("thread-id").inner_text()
        assert _ai_contents(client, thread_id) == [("human", "howdy"), ("ai", "You said: howdy")]
        history = client.threads.get_history(thread_id, limit=50)
        answers = {m["id"] for state in history for m in state["values"].get("messages", [])
                   if m["type"] == "ai" and m["content"] == "You said: how are you"}
        assert answers == {first_answer, second_answer}


def test_approve_an_interrupt(chat: ChatPage, server: Any) -> None:
    """hitl_agent's transfer_money tool asks with interrupt(); Approve resumes it."""
    expect = playwright_expect()
    with chat.step("ask"):
        chat.open(tag=_tag(), assistant="hitl_agent", context=QUICK)
        chat.send("transfer 50 to Alice")
        expect(chat.tid("interrupt-question")).to_have_text("Transfer 50 to Alice?")
        expect(chat.messages("ai").get_by_test_id("tool-call")).to_have_attribute(
            "data-name", "transfer_money")
        expect(chat.messages("tool")).to_have_count(0)
        thread_id = chat.tid("thread-id").inner_text()
        client = get_sync_client(url=server.url)
        assert client.threads.get(thread_id)["status"] == "interrupted"
    with chat.step("approve"):
        chat.tid("approve").click()
        expect(chat.messages("tool").get_by_test_id("message-text")).to_have_text(
            "Transferred 50 to Alice")
        expect(chat.messages()).to_have_count(4)
        expect(chat.messages("ai").last.get_by_test_id("message-text")).to_contain_text(
            "Transferred 50 to Alice")
        expect(chat.tid("interrupt")).to_have_count(0)
        expect(chat.tid("status")).to_have_text("idle")
        _wait_run_status(client, thread_id, chat.tid("run-id").inner_text(), "success")
        assert client.threads.get(thread_id)["status"] == "idle"
        kept = _ai_contents(client, thread_id)
        assert [kind for kind, _ in kept] == ["human", "ai", "tool", "ai"], kept
        assert chat.texts() == kept
