"""An agent built with LangChain 1.x `create_agent`, the fake model and middleware.

- `context_schema=AgentContext`; a dynamic system prompt from the run's context
  (`@dynamic_prompt` middleware); the fake model tuned per run (token delay, answer length)
  by a `wrap_model_call` middleware.
- Human in the loop: `HumanInTheLoopMiddleware` stops before every `send_email` call with
  one interrupt per model turn; resume with `Command(resume={"decisions": [...]})`, one
  decision per gated call: `{"type": "approve"}`, `{"type": "edit", "edited_action":
  {"name": "send_email", "args": {...}}}` or `{"type": "reject", "message": "..."}`.

Try: "email Grace about the launch" (interrupts), "weather in Tokyo", "calculate 2 + 3".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from agent_tools import AgentContext, calculator, context_of, get_weather, send_email
from agent_tools import system_prompt as prompt_of
from fake_chat import model_for
from langchain.agents import create_agent
from langchain.agents.middleware import (
    AgentMiddleware,
    HumanInTheLoopMiddleware,
    ModelRequest,
    ModelResponse,
    dynamic_prompt,
)

TOOLS = [get_weather, calculator, send_email]


@dynamic_prompt
def prompt_from_context(request: ModelRequest) -> str:
    return prompt_of(context_of(request.runtime.context))


class ModelFromContext(AgentMiddleware):
    """Swaps in a fake model tuned by this run's context (as one would pick a model per user)."""

    def _tuned(self, request: ModelRequest) -> ModelRequest:
        return request.override(model=model_for(context_of(request.runtime.context)))

    def wrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]
    ) -> ModelResponse:
        return handler(self._tuned(request))

    async def awrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], Awaitable[ModelResponse]],
    ) -> ModelResponse:
        return await handler(self._tuned(request))


def build(name: str = "lc_agent") -> Any:
    return create_agent(
        model_for(None),
        TOOLS,
        context_schema=AgentContext,
        middleware=[
            ModelFromContext(),
            prompt_from_context,
            HumanInTheLoopMiddleware(
                interrupt_on={"send_email": {"allowed_decisions": ["approve", "edit", "reject"]}},
                description_prefix="Sending an email needs your approval",
            ),
        ],
        name=name,
    )


graph = build()
