"""Authorization handlers (`@auth.on`, `@auth.on.threads.create` ...), run the way the
LangGraph server documents them.

The most specific handler runs: (resource, action), then (resource, any action),
then (any resource, action), then the global `@auth.on`. It receives
`ctx` (user, permissions, resource, action) and the mutable `value` the route is
about to act on. It may:
- return None or True: allowed;
- return False: denied, 403;
- raise Auth.exceptions.HTTPException: that status and detail;
- return a filter dict: the caller only sees rows whose metadata matches it
  (`{"k": v}` or `{"k": {"$eq": v}}`: equal; `{"k": {"$contains": v or [v, ...]}}`:
  the list at k holds v). Filters come on top of owner isolation, never instead.
- change `value` (e.g. add metadata on create): the route uses what it left there.

With no custom auth, or no handler for the resource, everything is allowed.
"""

from __future__ import annotations

import inspect
from typing import Any

from langgraph_sdk.auth.exceptions import HTTPException as AuthHTTPException
from langgraph_sdk.auth.types import AuthContext

from runlane.errors import BadFilter, Denied
from runlane.owners import Filters


def handler_for(auth: Any, resource: str, action: str) -> Any:
    for key in ((resource, action), (resource, "*"), ("*", action)):
        handlers = auth._handlers.get(key)
        if handlers:
            return handlers[-1]
    return auth._global_handlers[-1] if auth._global_handlers else None


async def authorize(auth: Any, user: Any, resource: str, action: str,
                    value: dict[str, Any]) -> Filters | None:
    """Run the handler for (resource, action) on `value`; the filters it returned."""
    if auth is None or user is None:
        return None
    handler = handler_for(auth, resource, action)
    if handler is None:
        return None
    ctx = AuthContext(permissions=list(user.permissions), user=user,
                      # the SDK types resource and action as literals, plain str here:
                      resource=resource, action=action)  # type: ignore[arg-type]
    try:
        result = handler(ctx=ctx, value=value)
        if inspect.isawaitable(result):
            result = await result
    except AuthHTTPException as exc:
        raise Denied(str(exc.detail), status_code=exc.status_code,
                     headers=exc.headers) from None
    if result is None or result is True:
        return None
    if result is False:
        raise Denied(f"not allowed: {action} on {resource}")
    if isinstance(result, dict):
        return normalize(result)
    raise BadFilter(f"the authorization handler for {resource}.{action} returned "
                    f"{type(result).__name__}; expected None, a boolean or a filter dict")


def normalize(filters: dict[str, Any]) -> Filters:
    """Every filter as {key: ("$eq", value)} or {key: ("$contains", [values])}."""
    out: Filters = {}
    for key, spec in filters.items():
        if isinstance(spec, dict):
            if set(spec) == {"$eq"}:
                out[key] = ("$eq", spec["$eq"])
            elif set(spec) == {"$contains"}:
                wanted = spec["$contains"]
                out[key] = ("$contains", list(wanted) if isinstance(wanted, list) else [wanted])
            else:
                raise BadFilter(f"filter on {key!r} uses {sorted(spec)}; supported: $eq, "
                                "$contains")
        else:
            out[key] = ("$eq", spec)
    return out
