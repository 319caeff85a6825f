"""A deterministic chat model for the agent corpus: no key, no network, real shapes.

`FakeChatModel` is a `langchain_core` `BaseChatModel`, so LangGraph's prebuilt agent,
LangChain's `create_agent` and plain nodes use it as they would use a provider's model.
It streams its reply word by word (`AIMessageChunk`s, `token_delay` seconds apart) and
streams tool calls as `tool_call_chunks` (name and id first, then the JSON arguments in
pieces), as providers do; langchain gives every message its `lc_run-...` id.

What it answers is decided by `plan()`, a small rule-based policy over the conversation:

- the last message is a tool result: answer with text built from this turn's results;
- otherwise the last human message's keywords pick tools among those bound with
  `bind_tools` (several keywords, several calls in one message):
  "weather" -> get_weather(city), "search"/"research" -> slow_search(query),
  a sum such as "12 * 7" or "calculate" -> calculator(expression),
  "email" -> send_email(to, subject, body), "transfer" -> transfer_money(amount, to);
- a "research" question keeps calling slow_search for `research_rounds` rounds;
- "instructions" -> the system prompt, verbatim (shows a prompt taken from context);
- "long" (or `reply_tokens` > 0) -> a long answer of that many words, to cancel mid-stream;
- anything else -> a short echo.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool

DEFAULT_TOKEN_DELAY = 0.02
LONG_REPLY_TOKENS = 300
MODEL_NAME = "fake-chat-1"

# The long answer: these words, cycled, numbered every tenth word so a reader (and a
# test) can see where a cancelled stream stopped.
_STORY_TEXT = (
    "Once upon a time a small agent lived on a server and answered every question it "
    "was asked, one word after another, slowly enough that anyone watching could press "
    "Stop whenever they had read enough of the story."
)
_STORY = _STORY_TEXT.split()


@dataclass(frozen=True)
class ToolCallPlan:
    name: str
    args: dict[str, Any]
    id: str


@dataclass(frozen=True)
class Reply:
    """What the model says next: text, tool calls, or both (text first)."""

    text: str = ""
    tool_calls: tuple[ToolCallPlan, ...] = field(default_factory=tuple)


def long_text(tokens: int) -> str:
    words = []
    for i in range(tokens):
        word = _STORY[i % len(_STORY)]
        words.append(f"{word}({i + 1})" if (i + 1) % 10 == 0 else word)
    return " ".join(words)


def _text_of(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    # Content blocks: keep the text ones.
    return " ".join(
        block if isinstance(block, str) else str(block.get("text", ""))
        for block in content
        if isinstance(block, str) or block.get("type") == "text"
    )


_CITY = re.compile(r"\b(?:in|for|at)\s+([A-Z][a-zA-Z]+(?:\s[A-Z][a-zA-Z]+)?)")
_SUM = re.compile(r"\d+(?:\.\d+)?(?:\s*[-+*/]\s*\d+(?:\.\d+)?)+")
_AMOUNT = re.compile(r"\b(\d+(?:\.\d+)?)\b")
_RECIPIENT = re.compile(r"\bto\s+([A-Z][a-z]+)")
_ADDRESSEE = re.compile(r"\b(?:to|email|mail)\s+([A-Z][a-z]+)")


def _tool_calls_for(text: str, tools: Sequence[str], turn: int) -> list[ToolCallPlan]:
    lowered = text.lower()
    wanted: list[tuple[str, dict[str, Any]]] = []
    if "weather" in lowered and "get_weather" in tools:
        match = _CITY.search(text)
        wanted.append(("get_weather", {"city": match.group(1) if match else "Paris"}))
    if ("search" in lowered or "research" in lowered) and "slow_search" in tools:
        wanted.append(("slow_search", {"query": text.strip()}))
    if "calculator" in tools and ("calculate" in lowered or _SUM.search(text)):
        match = _SUM.search(text)
        wanted.append(("calculator", {"expression": match.group(0) if match else "6 * 7"}))
    if "email" in lowered and "send_email" in tools:
        match = _ADDRESSEE.search(text)
        to = f"{(match.group(1) if match else 'ada').lower()}@example.com"
        wanted.append(("send_email", {"to": to, "subject": "Hello", "body": text.strip()}))
    if "transfer" in lowered and "transfer_money" in tools:
        amount = _AMOUNT.search(text)
        recipient = _RECIPIENT.search(text)
        wanted.append(("transfer_money", {
            "amount": float(amount.group(1)) if amount else 100.0,
            "to": recipient.group(1) if recipient else "Bob",
        }))
    # Ids unique within a thread (the turn number) and the same on every run.
    return [ToolCallPlan(name, args, f"call_{turn}_{i}") for i, (name, args) in enumerate(wanted)]


def plan(
    messages: Sequence[BaseMessage],
    tools: Sequence[str] = (),
    *,
    reply_tokens: int = 0,
    long_reply_tokens: int = LONG_REPLY_TOKENS,
    research_rounds: int = 1,
) -> Reply:
    """The next reply for this conversation: the model's whole "policy", deterministic."""
    system = next((_text_of(m) for m in messages if isinstance(m, SystemMessage)), "")
    humans = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)]
    last_human = _text_of(messages[humans[-1]]) if humans else ""
    since_human = messages[humans[-1] + 1:] if humans else messages
    turn = sum(isinstance(m, AIMessage) for m in messages)
    if messages and isinstance(messages[-1], ToolMessage):
        rounds = sum(isinstance(m, AIMessage) and bool(m.tool_calls) for m in since_human)
        if "research" in last_human.lower() and rounds < research_rounds and (
            "slow_search" in tools
        ):
            # A research question: search again, a new angle per round, saying so first.
            step = rounds + 1
            query = f"{last_human.strip()} (angle {step})"
            return Reply(text=f"Step {step} of {research_rounds}: searching more.",
                         tool_calls=(ToolCallPlan("slow_search", {"query": query},
                                                  f"call_{turn}_0"),))
        results = [m for m in since_human if isinstance(m, ToolMessage)]
        lines = [f"{m.name or 'tool'}: {_text_of(m)}" for m in results]
        return Reply(text="Here is what I found. " + " ".join(lines))
    calls = _tool_calls_for(last_human, tools, turn)
    lowered = last_human.lower()
    if calls and "research" in lowered and research_rounds > 1:
        return Reply(text=f"Step 1 of {research_rounds}: searching.", tool_calls=tuple(calls))
    if calls:
        return Reply(tool_calls=tuple(calls))
    if "instructions" in lowered:
        return Reply(text=f"My instructions are: {system}" if system else "I have none.")
    if reply_tokens > 0:
        return Reply(text=long_text(reply_tokens))
    if "long" in lowered:
        return Reply(text=long_text(long_reply_tokens))
    return Reply(text=f"You said: {last_human}")


def tokens(text: str) -> list[str]:
    """Word-sized pieces, each with its leading space: joined, they give `text` back."""
    return re.findall(r"\s*\S+", text) or ([text] if text else [])


def reply_chunks(reply: Reply, usage_in: int = 0) -> Iterator[AIMessageChunk]:
    """The chunks a provider would stream for `reply`, the last one closing the message.

    Made one at a time as the stream asks for them, as a provider's client makes each
    from the bytes it just received: building a long reply's chunks up front would
    spend the whole reply's CPU in one burst before the first token."""
    pieces = tokens(reply.text)
    for piece in pieces:
        yield AIMessageChunk(content=piece)
    for index, call in enumerate(reply.tool_calls):
        # The name and id first, then the JSON arguments in a few pieces.
        yield AIMessageChunk(content="", tool_call_chunks=[
            tool_call_chunk(name=call.name, args="", id=call.id, index=index)])
        args = json.dumps(call.args)
        step = max(1, len(args) // 3)
        for start in range(0, len(args), step):
            yield AIMessageChunk(content="", tool_call_chunks=[
                tool_call_chunk(name=None, args=args[start:start + step], id=None,
                                index=index)])
    out_tokens = len(pieces) + 10 * len(reply.tool_calls)
    yield AIMessageChunk(
        content="",
        chunk_position="last",
        response_metadata={
            "model_name": MODEL_NAME,
            "finish_reason": "tool_calls" if reply.tool_calls else "stop",
        },
        usage_metadata={"input_tokens": usage_in, "output_tokens": out_tokens,
                        "total_tokens": usage_in + out_tokens},
    )


class FakeChatModel(BaseChatModel):
    """A scripted chat model that streams like a real one. See the module docstring."""

    token_delay: float = DEFAULT_TOKEN_DELAY
    """Seconds between two streamed chunks."""
    reply_tokens: int = 0
    """When > 0, every text answer (but tool summaries) is this many words long."""
    long_reply_tokens: int = LONG_REPLY_TOKENS
    """Length of the answer to a message that says "long"."""
    research_rounds: int = 1
    """How many rounds of `slow_search` a "research" question gets before the answer."""

    @property
    def _llm_type(self) -> str:
        return "runlane-fake-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": MODEL_NAME, "token_delay": self.token_delay}

    def bind_tools(
        self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        # As providers do: the tools travel with each call as OpenAI-style schemas.
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        return self.bind(tools=formatted, **kwargs)

    def _reply(self, messages: list[BaseMessage], tools: Sequence[Any] | None) -> Reply:
        names = [t["function"]["name"] for t in tools or () if isinstance(t, dict)]
        return plan(messages, names, reply_tokens=self.reply_tokens,
                    long_reply_tokens=self.long_reply_tokens,
                    research_rounds=self.research_rounds)

    def _chunks(self, messages: list[BaseMessage], kwargs: dict[str, Any]
                ) -> Iterator[AIMessageChunk]:
        usage_in = sum(len(tokens(_text_of(m))) for m in messages)
        return reply_chunks(self._reply(messages, kwargs.get("tools")), usage_in)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for i, chunk in enumerate(self._chunks(messages, kwargs)):
            if i and self.token_delay:
                await asyncio.sleep(self.token_delay)
            generation = ChatGenerationChunk(message=chunk)
            if run_manager is not None and isinstance(chunk.content, str):
                await run_manager.on_llm_new_token(chunk.content, chunk=generation)
            yield generation

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for i, chunk in enumerate(self._chunks(messages, kwargs)):
            if i and self.token_delay:
                time.sleep(self.token_delay)
            generation = ChatGenerationChunk(message=chunk)
            if run_manager is not None and isinstance(chunk.content, str):
                run_manager.on_llm_new_token(chunk.content, chunk=generation)
            yield generation

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # The same message, after the same delays, as the stream would give.
        merged: ChatGenerationChunk | None = None
        async for generation in self._astream(messages, stop, None, **kwargs):
            merged = generation if merged is None else merged + generation
        assert merged is not None
        return ChatResult(generations=[_final(merged)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        merged: ChatGenerationChunk | None = None
        for generation in self._stream(messages, stop, None, **kwargs):
            merged = generation if merged is None else merged + generation
        assert merged is not None
        return ChatResult(generations=[_final(merged)])


def _final(merged: ChatGenerationChunk) -> ChatGeneration:
    chunk = merged.message
    assert isinstance(chunk, AIMessageChunk)
    message = AIMessage(
        content=chunk.content,
        tool_calls=chunk.tool_calls,
        response_metadata=chunk.response_metadata,
        usage_metadata=chunk.usage_metadata,
    )
    return ChatGeneration(message=message)


def model_for(context: Any = None) -> FakeChatModel:
    """A model tuned by a run's context (any object or dict with the knobs, or None)."""
    def knob(name: str, default: Any) -> Any:
        if context is None:
            return default
        if isinstance(context, dict):
            return context.get(name, default)
        return getattr(context, name, default)

    return FakeChatModel(token_delay=float(knob("token_delay", DEFAULT_TOKEN_DELAY)),
                         reply_tokens=int(knob("reply_tokens", 0) or 0),
                         research_rounds=int(knob("research_steps", 1) or 1))
