"""Store items per owner: a `BaseStore` that shows one owner only its own items.

The langgraph store has no owner column, so ownership is a namespace: every item of
owner X lives under a hidden leading label `runlane-owner:<X, base64url>`. The
wrapper adds that label to every operation's namespace and strips it from every
answer, so the owner sees (and can reach) nothing outside it, and its namespaces
look exactly as it wrote them. The same wrapper serves the HTTP routes and the
graph runs made on the owner's behalf (`get_store()`, `store: BaseStore`), so both
see the same items.

With owner None (auth off) callers get the store itself and see everything, as
`owners.owned` does for rows. The label is reserved: no caller may write or read a
namespace that starts with it directly (`check_namespace`).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import cast

from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)

from runlane.owners import Owner

OWNER_LABEL_PREFIX = "runlane-owner:"


def owner_label(owner: str) -> str:
    """The hidden first namespace label of `owner`'s items. base64url has no '.', the
    one character a label cannot hold, and distinct owners get distinct labels."""
    encoded = base64.urlsafe_b64encode(owner.encode()).decode().rstrip("=")
    return f"{OWNER_LABEL_PREFIX}{encoded}"


def check_namespace(namespace: tuple[str, ...] | list[str]) -> None:
    """A namespace given by a caller must not reach into the owners' reserved space."""
    if namespace and isinstance(namespace[0], str) and namespace[0].startswith(OWNER_LABEL_PREFIX):
        raise InvalidNamespaceError(
            f"namespace labels starting with {OWNER_LABEL_PREFIX!r} are reserved by the server")


class OwnerScopedStore(BaseStore):
    """`inner`, as `owner` sees it: only the namespaces under `owner_label(owner)`."""

    def __init__(self, inner: BaseStore, owner: str) -> None:
        self.inner = inner
        self.owner = owner
        self.label = owner_label(owner)
        # BaseStore reads these to apply TTL defaults before building operations.
        self.supports_ttl = inner.supports_ttl
        self.ttl_config = inner.ttl_config

    # ------------------------------------------------------ namespace mapping

    def _into(self, namespace: tuple[str, ...]) -> tuple[str, ...]:
        check_namespace(namespace)
        return (self.label, *namespace)

    def _out(self, namespace: tuple[str, ...]) -> tuple[str, ...]:
        # Every answer of the inner store to a scoped operation is under the label.
        assert namespace[:1] == (self.label,), namespace
        return tuple(namespace[1:])

    def _scope(self, op: Op) -> Op:
        if isinstance(op, GetOp):
            return op._replace(namespace=self._into(op.namespace))
        if isinstance(op, PutOp):
            return op._replace(namespace=self._into(op.namespace))
        if isinstance(op, SearchOp):
            return op._replace(namespace_prefix=self._into(op.namespace_prefix))
        if isinstance(op, ListNamespacesOp):
            conditions = list(op.match_conditions or ())
            prefixes = [c for c in conditions if c.match_type == "prefix"]
            others = [c for c in conditions if c.match_type != "prefix"]
            if prefixes:
                for condition in prefixes:
                    check_namespace(condition.path)
                scoped = [MatchCondition("prefix", (self.label, *c.path)) for c in prefixes]
            else:
                scoped = [MatchCondition("prefix", (self.label,))]
            depth = None if op.max_depth is None else op.max_depth + 1
            return op._replace(match_conditions=tuple(scoped + others), max_depth=depth)
        raise TypeError(f"unknown store operation {type(op).__name__}")

    def _unscope(self, op: Op, result: Result) -> Result:
        if isinstance(op, (GetOp, PutOp)):
            if isinstance(result, Item):
                result.namespace = self._out(result.namespace)
            return result
        # `Result` is the union of every operation's; each branch knows its own.
        if isinstance(op, SearchOp):
            for item in cast("list[SearchItem] | None", result) or []:
                item.namespace = self._out(item.namespace)
            return result
        if isinstance(op, ListNamespacesOp):
            # The owner's root itself (max_depth cut everything to the label) is no
            # namespace of the owner's.
            namespaces = cast("list[tuple[str, ...]] | None", result)
            return [self._out(ns) for ns in namespaces or [] if len(ns) > 1]
        return result

    # ------------------------------------------------------------- BaseStore

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        results = self.inner.batch([self._scope(op) for op in ops])
        return [self._unscope(op, result) for op, result in zip(ops, results, strict=True)]

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        results = await self.inner.abatch([self._scope(op) for op in ops])
        return [self._unscope(op, result) for op, result in zip(ops, results, strict=True)]


def scoped(store: BaseStore, owner: Owner) -> BaseStore:
    """The store as `owner` sees it (the whole store for owner None)."""
    return store if owner is None else OwnerScopedStore(store, owner)

