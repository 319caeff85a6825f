"""The agent workload's graph: one chat turn of a streaming model, as most agents spend
most of their time.

The model is the corpus's deterministic `FakeChatModel` (a `langchain_core`
`BaseChatModel` whose `_astream` sleeps `token_delay` between tokens): no key, no
network. The run's context sets the load: how many tokens, how far apart, and how long
the model waits before its first token (a slow first token or a tool call), drawn per
run between `first_wait_min` and `first_wait_max` seconds.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from fake_chat import FakeChatModel
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.runtime import Runtime


@dataclass
class ChatLoad:
    tokens: int = 100
    token_delay: float = 0.05
    first_wait_min: float = 0.0
    first_wait_max: float = 0.0


async def chat(state: MessagesState, runtime: Runtime[ChatLoad]) -> dict:
    load = runtime.context or ChatLoad()
    if load.first_wait_max > 0:
        await asyncio.sleep(random.uniform(load.first_wait_min, load.first_wait_max))
    model = FakeChatModel(token_delay=load.token_delay, reply_tokens=load.tokens)
    return {"messages": [await model.ainvoke(state["messages"])]}


graph = (
    StateGraph(MessagesState, context_schema=ChatLoad)
    .add_node("chat", chat)
    .add_edge(START, "chat")
    .compile()
)
