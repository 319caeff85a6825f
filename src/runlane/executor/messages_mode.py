"""The `messages` stream mode as the reference server serves it.

langgraph streams `(message chunk, metadata)` tuples; `messages-tuple` forwards them
as they come. `messages` instead sends whole messages, as the JS SDK's older clients
and `useStream` without tuples expect:

- `messages/metadata` once per message id, with the metadata of its first chunk;
- `messages/partial` for every chunk of a streamed message, carrying the message
  accumulated so far (a plain message, `"type": "ai"`, not a chunk);
- `messages/complete` for a message that arrives whole (a tool's result, a model
  called without streaming).

Namespaced (subgraph) chunks keep these names without a `|namespace` suffix, as on
the reference.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import (
    BaseMessage,
    BaseMessageChunk,
    convert_to_messages,
    message_chunk_to_message,
)

Frame = tuple[str, Any]


class MessageAccumulator:
    """Turns one run's message tuples into `messages/*` frames."""

    __slots__ = ("_messages",)

    def __init__(self) -> None:
        self._messages: dict[str | None, BaseMessage] = {}

    def frames(self, chunk: Any) -> list[Frame]:
        message, metadata = chunk
        if isinstance(message, dict):
            message = convert_to_messages([message])[0]
        if not isinstance(message, BaseMessage):
            return []  # not a message: nothing the reference would send either
        frames: list[Frame] = []
        known = self._messages.get(message.id)
        if known is None:
            self._messages[message.id] = message
            frames.append(("messages/metadata", {message.id: {"metadata": metadata}}))
        elif isinstance(known, BaseMessageChunk) and isinstance(message, BaseMessageChunk):
            self._messages[message.id] = known + message
        else:
            # A whole message under an id already seen replaces what was accumulated.
            self._messages[message.id] = message
        accumulated = self._messages[message.id]
        if isinstance(message, BaseMessageChunk):
            return [*frames, ("messages/partial", [message_chunk_to_message(accumulated)])]
        return [*frames, ("messages/complete", [accumulated])]
