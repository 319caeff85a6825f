"""The graph the http_projects serve: an assistant that answers with what it was
configured with (the headers langgraph.json's http.configurable_headers passes
through land in config["configurable"])."""

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, MessagesState, StateGraph


def respond(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
    configurable = config.get("configurable") or {}
    seen = sorted(k for k in configurable if not k.startswith(("__", "langgraph_")))
    headers = {k: configurable[k] for k in seen if k.startswith("x-") or k == "user-agent"}
    return {"messages": [{"role": "assistant",
                          "content": f"configured with {', '.join(seen) or 'nothing'}",
                          "additional_kwargs": {"headers": headers}}]}


builder = StateGraph(MessagesState)
builder.add_node("respond", respond)
builder.add_edge(START, "respond")
builder.add_edge("respond", END)
graph = builder.compile()
