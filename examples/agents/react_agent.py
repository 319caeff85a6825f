"""A ReAct agent built with LangGraph's prebuilt `create_react_agent` and the fake model.

Tools: get_weather(city), slow_search(query) (awaits the context's `search_seconds`, so
a cancel can land while a tool runs), calculator(expression). The system prompt, the
user's name, the token delay and the answer length come from the run's context
(`AgentContext`). Try: "what's the weather in Paris?", "search for runlane",
"calculate 12 * 7", "tell me a long story", "what are your instructions?".
"""

from __future__ import annotations

from typing import Any

from agent_tools import (
    AgentContext,
    calculator,
    context_of,
    current_context,
    get_weather,
    slow_search,
)
from agent_tools import system_prompt as prompt_of
from fake_chat import model_for
from langchain_core.messages import SystemMessage
from langgraph.prebuilt import create_react_agent
from langgraph.runtime import Runtime

TOOLS = [get_weather, slow_search, calculator]


def build(tools: list[Any] = TOOLS, name: str = "react_agent") -> Any:
    """The agent with these tools (factories build variants of it)."""

    def select_model(state: Any, runtime: Runtime[AgentContext]) -> Any:
        # A model per call: the context's token delay and answer length apply per run.
        return model_for(context_of(runtime.context)).bind_tools(tools)

    def prompt(state: Any) -> list[Any]:
        # The prebuilt agent hands a prompt function the state only: the run's
        # context comes from the runtime of the run this call belongs to.
        return [SystemMessage(prompt_of(current_context())), *state["messages"]]

    return create_react_agent(select_model, tools, prompt=prompt,
                              context_schema=AgentContext, name=name)


graph = build()
