"""The corpus's tools and run context: deterministic, no network.

Tools read the run's context (`AgentContext`) through `langgraph.runtime.get_runtime`,
so a test can make `slow_search` short and a demo can make it slow.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import operator
from dataclasses import dataclass
from typing import Any

from langchain_core.tools import tool
from langgraph.runtime import get_runtime
from langgraph.types import interrupt

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant talking to {user_name}."


@dataclass
class AgentContext:
    """The knobs of a run (`context` on the run or the assistant); every field has a default."""

    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    """The system prompt; `{user_name}` is filled in."""
    user_name: str = "a user"
    token_delay: float = 0.02
    """Seconds between two streamed tokens of the fake model."""
    reply_tokens: int = 0
    """When > 0, every text answer is this many words (cancel-mid-stream tests)."""
    search_seconds: float = 1.5
    """How long `slow_search` takes (a cancel can land while it runs)."""


def context_of(raw: Any, schema: type[Any] = AgentContext) -> Any:
    """The run's context as `schema`, whatever the server handed over.

    A server may give no context (None), a dict, or the schema's instance: all three
    become an instance with defaults for what is missing, unknown keys dropped.
    """
    if isinstance(raw, schema):
        return raw
    if isinstance(raw, dict):
        names = {f.name for f in dataclasses.fields(schema)}
        return schema(**{k: v for k, v in raw.items() if k in names})
    return schema()


def current_context(schema: type[Any] = AgentContext) -> Any:
    """The context of the run this code runs in (defaults outside a run)."""
    try:
        raw = get_runtime().context
    except RuntimeError:  # called outside a graph run (a unit test, a script)
        raw = None
    return context_of(raw, schema)


def system_prompt(context: Any) -> str:
    return str(context.system_prompt).replace("{user_name}", str(context.user_name))


WEATHER = {
    "Paris": "sunny, 21 °C",
    "London": "light rain, 14 °C",
    "Tokyo": "clear, 25 °C",
    "New York": "windy, 17 °C",
}


@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"{WEATHER.get(city, 'cloudy, 18 °C')} in {city}"


@tool
async def slow_search(query: str) -> str:
    """Search the web (slowly: it takes the context's `search_seconds`)."""
    await asyncio.sleep(current_context().search_seconds)
    return f"3 results for {query!r}: runlane docs, LangGraph docs, a blog post"


_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
              ast.Div: operator.truediv, ast.USub: operator.neg}


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.operand))
    raise ValueError(f"unsupported expression: {ast.dump(node)}")


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression (+, -, *, / and parentheses)."""
    value = _evaluate(ast.parse(expression, mode="eval"))
    return f"{expression} = {value:g}"


@tool
def send_email(to: str, subject: str, body: str) -> str:
    """Send an email (pretend: nothing leaves the machine)."""
    return f"Email sent to {to} with subject {subject!r}"


@tool
def transfer_money(amount: float, to: str) -> str:
    """Transfer money: asks a human for approval first, with interrupt().

    Resume with `Command(resume=...)`: `True`/"approve"/{"approved": true} to go ahead,
    anything else (`False`, "reject", {"approved": false}) to cancel.
    """
    answer = interrupt({"question": f"Transfer {amount:g} to {to}?", "action": "transfer_money",
                        "args": {"amount": amount, "to": to}})
    if isinstance(answer, dict):
        answer = answer.get("approved", answer.get("type") == "approve")
    if answer is True or answer == "approve":
        return f"Transferred {amount:g} to {to}"
    return f"Transfer of {amount:g} to {to} cancelled by the user"
