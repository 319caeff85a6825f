"""`picker` (user_transformers.py) in a module whose `stream_transformers` raises: each
v2 run logs it and streams with the built-in transformers only, as on the reference."""

from __future__ import annotations

from typing import Any

from user_transformers import picker


def stream_transformers() -> list[Any]:
    raise RuntimeError("stream_transformers is broken on purpose")


__all__ = ["picker", "stream_transformers"]
