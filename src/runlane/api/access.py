"""Who may touch what, for the routes: the caller's owner (runlane.owners) and the
custom auth's authorization handlers (runlane.api.auth.authorization).

Owner isolation is applied by the store on every statement (`owned(...)`); the
helpers here add what the handlers decide: deny (403), or a metadata filter the
row must pass, else it looks missing (404, like another owner's row).
Crons use them as threads do (`allowed(request, "crons", action, value)`; the
filters go into the cron store's WHERE). Store routes use `store_allowed`: a store
handler may deny or rewrite the operation (its namespace above all), never filter.
"""

from __future__ import annotations

from starlette.requests import Request

from runlane.api.auth.authorization import authorize
from runlane.errors import BadFilter, NotFound
from runlane.owners import Filters, matches, owner_of
from runlane.serde import JSONObject


def has_handlers(request: Request) -> bool:
    """Whether custom authorization handlers are configured (else `allowed` is None)."""
    return getattr(request.app.state, "auth_handlers", None) is not None


def caller_user(request: Request) -> JSONObject | None:
    """The authenticated caller as a run records it (identity, permissions and the
    auth's other fields): what its runs' graphs see as `langgraph_auth_user`. None
    with auth off."""
    user = getattr(request.state, "user", None)
    return {k: user[k] for k in user} if user is not None else None


async def allowed(request: Request, resource: str, action: str,
                  value: JSONObject) -> Filters | None:
    """Run the authorization handler for (resource, action) on `value` (which it may
    change); the filters it returned. No custom auth: None, at no cost."""
    handlers = getattr(request.app.state, "auth_handlers", None)
    if handlers is None:
        return None
    user = getattr(request.state, "user", None)
    return await authorize(handlers, user, resource, action, value)


async def check_thread(request: Request, thread_id: str, action: str,
                       value: JSONObject) -> None:
    """The thread passes the handler for `threads.<action>`, else NotFound. Owner
    isolation is the store's: this reads the thread only when a handler filters."""
    filters = await allowed(request, "threads", action, value)
    if filters is None:
        return
    svc = request.app.state.runlane
    thread = await svc.store.get_thread(thread_id, owner=owner_of(request))
    if thread is None or not matches(thread.metadata, filters):
        raise NotFound(f"thread {thread_id} not found")


async def store_allowed(request: Request, action: str, value: JSONObject) -> None:
    """Run the `store.<action>` handler on `value`, which the route then uses as the
    handler left it (as the LangGraph server does: a handler scopes a user by
    rewriting `value["namespace"]`). Owner isolation still applies underneath: the
    rewritten namespace lives in the caller's own space. Store items carry no
    metadata to filter on, so a handler that returns a filter is a bug in it (500,
    never a silently unscoped answer)."""
    filters = await allowed(request, "store", action, value)
    if filters:
        raise BadFilter(f"the authorization handler for store.{action} returned a filter "
                        f"({sorted(filters)}); store handlers may only allow, deny, or "
                        "rewrite value['namespace']")
