"""What the store-search suites share (test_store_keys.py against runlane,
compat/test_store_search.py side by side with the reference): the project of
tests/store_keys (a deterministic embedding function and a `recall` graph), the
documents they search. (A server of each backend for a langgraph.json:
cluster.serve.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PROJECT = Path(__file__).parent / "store_keys"
# Three documents on three subjects: a query about one ranks it first.
DOCS = {
    "fruit": "Fresh apples and ripe pears from the orchard",
    "cars": "A fast red car racing on the highway",
    "sea": "Whales swimming in the deep blue ocean",
}


async def put_docs(client: Any, ns: list[str]) -> None:
    """DOCS as items of `ns`: the document as `text`, and a `title` naming its key."""
    for key, text in DOCS.items():
        await client.store.put_item(ns, key, {"text": text, "title": f"about {key}"})
