"""Who may touch what, for the routes: the caller's owner (runlane.owners) and the
custom auth's authorization handlers (runlane.auth.authorization).

Owner isolation is applied by the store on every statement (`owned(...)`); the
helpers here add what the handlers decide: deny (403), or a metadata filter the
row must pass, else it looks missing (404, like another owner's row).
Crons and store routes use them the same way: `await allowed(request, "crons",
"read", value)` and `owner_of(request)` into the store call.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from runlane.auth.authorization import Filters, authorize, matches
from runlane.owners import owner_of
from runlane.store import NotFound

Row = dict[str, Any]


def has_handlers(request: Request) -> bool:
    """Whether custom authorization handlers are configured (else `allowed` is None)."""
    return getattr(request.app.state, "auth_handlers", None) is not None


async def allowed(request: Request, resource: str, action: str, value: Row) -> Filters | None:
    """Run the authorization handler for (resource, action) on `value` (which it may
    change); the filters it returned. No custom auth: None, at no cost."""
    handlers = getattr(request.app.state, "auth_handlers", None)
    if handlers is None:
        return None
    user = getattr(request.state, "user", None)
    return await authorize(handlers, user, resource, action, value)


async def check_thread(request: Request, thread_id: str, action: str, value: Row) -> None:
    """The thread passes the handler for `threads.<action>`, else NotFound. Owner
    isolation is the store's: this reads the thread only when a handler filters."""
    filters = await allowed(request, "threads", action, value)
    if filters is None:
        return
    svc = request.app.state.runlane
    thread = await svc.store.get_thread(thread_id, owner=owner_of(request))
    if thread is None or not matches(thread.get("metadata"), filters):
        raise NotFound(f"thread {thread_id} not found")
