"""A long-running research agent: many model turns and tool calls over tens of seconds.

Built with `create_react_agent`; the fake model answers a question that says "research"
with `research_steps` rounds of `slow_search` (each round: a short streamed sentence, a
tool call, a search of `search_seconds`), then a report. With the defaults (10 rounds of
2 s) a run lasts about 20 s: long enough to cancel, reload, join or double-text in the
middle. Tests make it short with context {"research_steps": 2, "search_seconds": 0.1}.
Try: "research the history of cancellation".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent_tools import AgentContext, context_of, current_context, get_weather, slow_search
from agent_tools import system_prompt as prompt_of
from fake_chat import model_for
from langchain_core.messages import SystemMessage
from langgraph.prebuilt import create_react_agent
from langgraph.runtime import Runtime


@dataclass
class ResearchContext(AgentContext):
    system_prompt: str = "You are a meticulous researcher. Search before you answer."
    research_steps: int = 10
    """Rounds of slow_search before the report."""
    search_seconds: float = 2.0


TOOLS = [slow_search, get_weather]


def select_model(state: Any, runtime: Runtime[ResearchContext]) -> Any:
    return model_for(context_of(runtime.context, ResearchContext)).bind_tools(TOOLS)


def prompt(state: Any) -> list[Any]:
    return [SystemMessage(prompt_of(current_context(ResearchContext))), *state["messages"]]


graph = create_react_agent(select_model, TOOLS, prompt=prompt, context_schema=ResearchContext,
                           name="research_agent")
