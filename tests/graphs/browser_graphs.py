"""The chat agent the browser suite (tests/test_browser.py) talks to: deterministic,
no network, and slow enough per token for a person (or a test) to press Stop.

A message answers with `reply_for(text, tokens)`, streamed one token at a time with
`delay` seconds between tokens (both from the run's `configurable`). A message that
starts with "/approve" first pauses at interrupt() and answers with the decision.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any, TypedDict

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, AnyMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import interrupt

APPROVE_PREFIX = "/approve"


def reply_for(text: str, tokens: int) -> str:
    """The whole answer to `text`: every token distinct, so a lost or repeated token
    shows in the final text."""
    return " ".join([f"You said: {text}.", *(f"w{i}" for i in range(1, tokens + 1))])


def _tokens(answer: str) -> list[str]:
    words = answer.split(" ")
    return [words[0], *(" " + word for word in words[1:])]


class SlowEcho(BaseChatModel):
    """Answers with a fixed text (set per call), one token per `delay` seconds."""

    answer: str = ""
    delay: float = 0.0

    @property
    def _llm_type(self) -> str:
        return "runlane-slow-echo"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self.answer))])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        for token in _tokens(self.answer):
            yield ChatGenerationChunk(message=AIMessageChunk(content=token))

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        for index, token in enumerate(_tokens(self.answer)):
            if index:
                await asyncio.sleep(self.delay)  # cancellable: Stop lands mid-answer
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=token))
            if run_manager is not None:
                await run_manager.on_llm_new_token(token, chunk=chunk)
            yield chunk


class ChatState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    decision: str


def _last_human_text(state: ChatState) -> str:
    for message in reversed(state["messages"]):
        if message.type == "human":
            return message.text() if callable(getattr(message, "text", None)) else str(
                message.content)
    return ""


def _route(state: ChatState) -> str:
    return "gate" if _last_human_text(state).startswith(APPROVE_PREFIX) else "answer"


def gate(state: ChatState) -> dict:
    text = _last_human_text(state)
    decision = interrupt({"question": f"Run {text[len(APPROVE_PREFIX):].strip()!r}?"})
    return {"decision": str(decision)}


async def answer(state: ChatState, config: RunnableConfig) -> dict:
    configurable = config.get("configurable") or {}
    tokens = int(configurable.get("tokens", 12))
    delay = float(configurable.get("delay", 0.05))
    text = _last_human_text(state)
    if text.startswith(APPROVE_PREFIX):
        text = f"{text} ({state.get('decision', '')})"
    model = SlowEcho(answer=reply_for(text, tokens), delay=delay)
    return {"messages": [await model.ainvoke(state["messages"], config)]}


browser_chat = (
    StateGraph(ChatState)
    .add_node("gate", gate)
    .add_node("answer", answer)
    .add_conditional_edges(START, _route, ["gate", "answer"])
    .add_edge("gate", "answer")
    .add_edge("answer", END)
    .compile()
)
