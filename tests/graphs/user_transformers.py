"""A graph whose module exports `stream_transformers` (docs/v2-streaming.md), as the
reference server reads it: a zero-arg callable giving each v2 protocol run a fresh list
of StreamTransformer factories or instances, whose channels reach `custom:<name>`
subscribers.

- `picker`: a toy graph whose node writes `count` custom events
  `{"to": "progress" | "note", "i": n}` (alternating) and returns the count. The
  module's transformers put each on the channel it names: `progress` by a class (a
  factory of itself), `note` by an instance.

user_transformers_ignored.py and user_transformers_raising.py serve the same graph
with a `stream_transformers` that is not a callable and one that raises."""

from __future__ import annotations

from typing import Any

from langgraph.config import get_stream_writer
from langgraph.graph import START, StateGraph
from langgraph.stream._types import StreamTransformer
from langgraph.stream.stream_channel import StreamChannel
from typing_extensions import TypedDict


class PickState(TypedDict, total=False):
    count: int
    picked: int


def pick(state: PickState) -> dict[str, Any]:
    write = get_stream_writer()
    count = state.get("count", 6)
    for i in range(count):
        write({"to": "progress" if i % 2 == 0 else "note", "i": i})
    return {"picked": count}


class PickTransformer(StreamTransformer):
    """Pushes the root custom events addressed `to` its channel onto it."""

    channel_name = "progress"

    def __init__(self, scope: tuple[str, ...] = (), name: str | None = None) -> None:
        super().__init__(scope)
        self._name = name or self.channel_name
        self._channel: StreamChannel[Any] = StreamChannel(self._name)
        self._scope = list(scope)

    def init(self) -> dict[str, Any]:
        return {self._name: self._channel}

    def process(self, event: Any) -> bool:
        params = event["params"]
        data = params.get("data")
        if (event["method"] == "custom" and params["namespace"] == self._scope
                and isinstance(data, dict) and data.get("to") == self._name):
            self._channel.push({"i": data["i"]})
        return True


def stream_transformers() -> list[Any]:
    # A class is a factory of itself; an instance is used for the whole run.
    return [PickTransformer, PickTransformer(name="note")]


picker = (StateGraph(PickState).add_node("pick", pick).add_edge(START, "pick")
          .compile(name="picker"))
