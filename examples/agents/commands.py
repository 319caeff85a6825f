"""`Command(goto=...)` routing and an `interrupt()` resumed with `Command(resume=...)`.

`triage` reads the last user message and routes with `Command(goto=...)`:
"weather" -> `weather`, "refund" -> `approval` (which interrupts, asking a human),
anything else -> `chitchat`. Resume the approval with `Command(resume="approve")` (or
True) to reach `refund`, anything else to reach `decline`. `route` in the state records
the path taken.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal

from agent_tools import WEATHER
from langchain_core.messages import AIMessage, AnyMessage
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    route: Annotated[list[str], operator.add]


def _last_text(state: State) -> str:
    messages = state.get("messages") or []
    return str(messages[-1].content) if messages else ""


def triage(state: State) -> Command[Literal["weather", "approval", "chitchat"]]:
    text = _last_text(state).lower()
    goto = "weather" if "weather" in text else "approval" if "refund" in text else "chitchat"
    return Command(goto=goto, update={"route": ["triage"]})


def weather(state: State) -> dict[str, Any]:
    return {"messages": [AIMessage(f"Paris: {WEATHER['Paris']}")], "route": ["weather"]}


def chitchat(state: State) -> dict[str, Any]:
    return {"messages": [AIMessage(f"You said: {_last_text(state)}")], "route": ["chitchat"]}


def approval(state: State) -> Command[Literal["refund", "decline"]]:
    answer = interrupt({"question": "Issue a refund?", "request": _last_text(state)})
    approved = answer is True or answer == "approve" or (
        isinstance(answer, dict) and answer.get("approved") is True)
    return Command(goto="refund" if approved else "decline", update={"route": ["approval"]})


def refund(state: State) -> dict[str, Any]:
    return {"messages": [AIMessage("Your refund is on its way.")], "route": ["refund"]}


def decline(state: State) -> dict[str, Any]:
    return {"messages": [AIMessage("The refund was not approved.")], "route": ["decline"]}


graph = (
    StateGraph(State)
    .add_node("triage", triage)
    .add_node("weather", weather)
    .add_node("chitchat", chitchat)
    .add_node("approval", approval)
    .add_node("refund", refund)
    .add_node("decline", decline)
    .add_edge(START, "triage")
    .compile(name="commands")
)
