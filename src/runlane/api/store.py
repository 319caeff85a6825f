"""Store routes (`/store/...`): the langgraph store graphs use, seen through the
caller's owner (store.items.ItemStore.for_owner).

With custom auth, each operation first passes the `store.<action>` handler (put,
get, delete, search, list_namespaces; api/access.store_allowed) with the value the
LangGraph server gives it; the operation is then made with what the handler left in
it (typically a namespace rewritten to start with the user's identity). Owner
isolation applies underneath either way.
"""

from __future__ import annotations

import datetime
import sqlite3
from collections.abc import Awaitable
from typing import Any, TypeVar

import psycopg
from fastapi import APIRouter, Query, Request
from langgraph.store.base import BaseStore, InvalidNamespaceError, Item, SearchItem
from starlette.responses import Response

from runlane.api.access import store_allowed
from runlane.api.responses import JSON, error
from runlane.api.store_models import StoreDelete, StoreListNamespaces, StorePut, StoreSearch
from runlane.contract import parse_bool
from runlane.errors import BadRequest
from runlane.owners import owner_of
from runlane.store.owner_scope import check_namespace

router = APIRouter(tags=["store"])
T = TypeVar("T")


def store(request: Request) -> BaseStore:
    return request.app.state.runtime.items.for_owner(owner_of(request))


def _indexed(request: Request) -> bool:
    """Whether langgraph.json configures semantic search (store.index)."""
    return bool(request.app.state.runtime.items.indexed)


NO_INDEX = ("no semantic search index is configured on this server (langgraph.json "
            "store.index: dims, embed, fields)")


def _utc(value: datetime.datetime) -> datetime.datetime:
    # The SQLite store hands back UTC times without a zone.
    return value.replace(tzinfo=datetime.UTC) if value.tzinfo is None else value


def item_body(item: Item) -> dict[str, Any]:
    body = {
        "namespace": list(item.namespace),
        "key": item.key,
        "value": item.value,
        "created_at": _utc(item.created_at),
        "updated_at": _utc(item.updated_at),
    }
    if isinstance(item, SearchItem):
        body["score"] = item.score
    return body


async def _checked(call: Awaitable[T]) -> T:
    """langgraph refuses some inputs only when it meets them (a reserved root label,
    a filter key it cannot query): those are the caller's mistakes, BadRequest (422)."""
    try:
        return await call
    except InvalidNamespaceError as exc:
        raise BadRequest(f"invalid namespace: {exc}") from None
    except (ValueError, TypeError) as exc:  # e.g. "Unsupported operator", "exceeds 64-bit"
        raise BadRequest(str(exc)) from None
    except (psycopg.DataError, sqlite3.InterfaceError, sqlite3.ProgrammingError) as exc:
        # A value the database cannot take or bind (a number out of range, a filter
        # operand of the wrong kind): still the request's fault.
        raise BadRequest(f"the store cannot take this value: {exc}") from None


def _reserved(namespace: list[str] | tuple[str, ...] | None) -> Response | None:
    try:
        check_namespace(namespace or ())
    except InvalidNamespaceError as exc:
        return error(422, f"invalid namespace: {exc}")
    return None


def _namespace(value: dict[str, Any], field: str = "namespace") -> tuple[str, ...]:
    """The namespace a handler left in `value` (it may have made it a list, or None)."""
    return tuple(value.get(field) or ())


@router.put("/store/items", status_code=204)
async def put_item(body: StorePut, request: Request) -> Response:
    if (bad := _reserved(body.namespace)) is not None:
        return bad
    if isinstance(body.index, list) and not _indexed(request):
        return error(422, f"index: {NO_INDEX}, so index fields cannot be set; omit index "
                          "(or send false)")
    value: dict[str, Any] = {"namespace": tuple(body.namespace), "key": body.key,
                             "value": body.value, "index": body.index}
    await store_allowed(request, "put", value)
    await _checked(store(request).aput(
        _namespace(value), value["key"], value["value"], index=body.index,
        **({"ttl": body.ttl} if body.ttl is not None else {}),
    ))
    return Response(status_code=204)


@router.get("/store/items")
async def get_item(
    request: Request,
    key: str | None = Query(None),
    namespace: str | None = Query(None),
    refresh_ttl: str | None = Query(None),
) -> Response:
    problems = []
    if not key:
        problems.append("key is required (GET /store/items?namespace=a.b&key=k)")
    elif "\x00" in key:
        problems.append("key cannot contain NUL characters")
    labels = (namespace or "").split(".")
    if not namespace:
        problems.append("namespace is required: its labels joined by '.', e.g. "
                        "namespace=users.alice")
    elif any(not label for label in labels) or "\x00" in namespace:
        problems.append(f"namespace {namespace!r} has an empty label or a NUL character; "
                        "labels are joined by single '.'")
    refresh: bool | None = None
    if refresh_ttl is not None:
        try:
            refresh = parse_bool(refresh_ttl)
        except ValueError as exc:
            problems.append(f"refresh_ttl: {exc}")
    if problems:
        return error(422, "; ".join(problems))
    if (bad := _reserved(labels)) is not None:
        return bad
    value: dict[str, Any] = {"namespace": tuple(labels), "key": key}
    await store_allowed(request, "get", value)
    item = await _checked(store(request).aget(_namespace(value), value["key"],
                                              refresh_ttl=refresh))
    # As the reference server: a missing item is `null`, which the SDKs return as None.
    return JSON(None if item is None else item_body(item))


@router.delete("/store/items", status_code=204)
async def delete_item(body: StoreDelete, request: Request) -> Response:
    if (bad := _reserved(body.namespace)) is not None:
        return bad
    value: dict[str, Any] = {"namespace": tuple(body.namespace), "key": body.key}
    await store_allowed(request, "delete", value)
    await _checked(store(request).adelete(_namespace(value), value["key"]))
    return Response(status_code=204)


@router.post("/store/items/search")
async def search_items(body: StoreSearch, request: Request) -> Response:
    if (bad := _reserved(body.namespace_prefix)) is not None:
        return bad
    if body.query and not _indexed(request):
        return error(422, f"query: natural-language search needs a semantic index: "
                          f"{NO_INDEX}; search with namespace_prefix and filter instead")
    value: dict[str, Any] = {"namespace": tuple(body.namespace_prefix), "filter": body.filter,
                             "limit": body.limit, "offset": body.offset, "query": body.query}
    await store_allowed(request, "search", value)
    # Ranked by similarity to `query` (best first, each with its `score`); without
    # one, in the store's own order.
    items = await _checked(store(request).asearch(
        _namespace(value), query=value.get("query") or None, filter=value.get("filter"),
        limit=value["limit"], offset=value["offset"], refresh_ttl=body.refresh_ttl,
    ))
    return JSON({"items": [item_body(i) for i in items]})


@router.post("/store/namespaces")
async def list_namespaces(body: StoreListNamespaces, request: Request) -> Response:
    if (bad := _reserved(body.prefix)) is not None:
        return bad
    value: dict[str, Any] = {
        "namespace": tuple(body.prefix) if body.prefix else None,
        "suffix": tuple(body.suffix) if body.suffix else None,
        "max_depth": body.max_depth, "limit": body.limit, "offset": body.offset,
    }
    await store_allowed(request, "list_namespaces", value)
    namespaces = await _checked(store(request).alist_namespaces(
        prefix=_namespace(value) or None, suffix=_namespace(value, "suffix") or None,
        max_depth=value.get("max_depth"), limit=value["limit"], offset=value["offset"],
    ))
    return JSON({"namespaces": [list(ns) for ns in namespaces]})
