"""A node that streams a few tokens, then raises `ValueError("the weather service is down")`.

The run ends with status `error`; the tokens streamed before the failure were sent.
Input: {"messages": [{"role": "user", "content": "weather?"}]} (any message will do).
"""

from __future__ import annotations

from typing import Annotated, Any

from fake_chat import FakeChatModel
from langchain_core.messages import AnyMessage, HumanMessage
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

ERROR_MESSAGE = "the weather service is down"


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


async def answer(state: State) -> dict[str, Any]:
    # Some tokens reach the client (messages stream mode) before the failure.
    model = FakeChatModel(token_delay=0.01)
    await model.ainvoke([HumanMessage("Let me check the weather for you")])
    raise ValueError(ERROR_MESSAGE)


graph = StateGraph(State).add_node("answer", answer).add_edge(START, "answer").compile(
    name="raising_agent")
