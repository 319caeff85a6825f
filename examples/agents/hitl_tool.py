"""A ReAct agent whose `transfer_money` tool calls `interrupt()` to ask for approval.

The run stops inside the tool with the question as the interrupt's value; resume it
with `Command(resume=True)` (or "approve", or {"approved": true}) to go ahead, anything
else to cancel. The tool then runs again from its start, as LangGraph replays an
interrupted node, and gets the answer from `interrupt()`.
Try: "transfer 50 to Alice".
"""

from __future__ import annotations

from agent_tools import get_weather, transfer_money
from react_agent import build

graph = build([transfer_money, get_weather], name="hitl_agent")
