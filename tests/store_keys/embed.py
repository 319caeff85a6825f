"""A deterministic local embedding function for the store.index tests: a bag of words
hashed into DIMS buckets, normalized, so texts sharing words are similar and the
ranking is the same on every machine, without any model or network."""

from __future__ import annotations

import hashlib
import math
import re

DIMS = 32


def _vector(text: str) -> list[float]:
    vector = [0.0] * DIMS
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % DIMS] += 1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def embed(texts: list[str]) -> list[list[float]]:
    """langgraph.json: "store": {"index": {"embed": "./embed.py:embed", "dims": 32}}."""
    return [_vector(text) for text in texts]
