"""`picker` (user_transformers.py) in a module whose `stream_transformers` is a list, not
a callable: ignored with a warning at start-up, as on the reference."""

from __future__ import annotations

from user_transformers import PickTransformer, picker

stream_transformers = [PickTransformer]

__all__ = ["picker", "stream_transformers"]
