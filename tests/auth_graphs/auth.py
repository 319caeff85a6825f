"""The custom auth the tests serve (langgraph.json "auth"): bearer tokens from a fixed
table, and authorization handlers that exercise every kind of answer a handler gives
(change the value, filter, deny)."""

from langgraph_sdk import Auth

auth = Auth()

# token -> who; "admin" may delete assistants (see below).
TOKENS = {
    "alice-token-0123456789abcdef": {"identity": "alice", "permissions": ["read", "write"]},
    "bob-token-0123456789abcdef": {"identity": "bob", "permissions": ["read", "write"]},
    "carol-token-0123456789abcdef": {"identity": "carol", "permissions": ["admin"],
                                     "display_name": "Carol"},
}


BLOCKED_THREAD = "00000000-0000-4000-8000-00000000dead"


@auth.authenticate
async def authenticate(authorization: str | None, path: str, method: str, path_params: dict,
                       query_params: dict, headers: dict, body: bytes) -> dict:
    # path_params and body are read before routing: the route still gets the body.
    if path_params.get("thread_id") == BLOCKED_THREAD:
        raise Auth.exceptions.HTTPException(status_code=403, detail="this thread is blocked")
    if b"forbidden-by-auth" in body:
        raise Auth.exceptions.HTTPException(status_code=403, detail="forbidden body")
    assert isinstance(headers, dict) and isinstance(query_params, dict) and path.startswith("/")
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Auth.exceptions.HTTPException(status_code=401, detail="send Authorization: "
                                            "Bearer <token>",
                                            headers={"WWW-Authenticate": "Bearer"})
    if token == "suspended-token-0123456789abcdef":
        raise Auth.exceptions.HTTPException(status_code=403, detail="account suspended")
    user = TOKENS.get(token)
    if user is None:
        raise Auth.exceptions.HTTPException(status_code=401, detail="unknown token")
    return user


@auth.on.threads.create
async def tag_new_threads(ctx: Auth.types.AuthContext, value: dict) -> None:
    # The value may be changed: the server stores what the handler leaves.
    value.setdefault("metadata", {})
    value["metadata"]["created_by"] = ctx.user.identity


@auth.on.threads.search
async def only_tagged_threads(ctx: Auth.types.AuthContext, value: dict) -> dict:
    # A filter: search and count see only threads created through threads.create.
    return {"created_by": ctx.user.identity}


@auth.on.assistants.delete
async def only_admins_delete_assistants(ctx: Auth.types.AuthContext, value: dict) -> bool:
    return "admin" in ctx.permissions


@auth.on.threads.update
async def no_hidden_threads_update(ctx: Auth.types.AuthContext, value: dict) -> dict | None:
    # Threads whose metadata says "locked" cannot be updated, patched or cancelled.
    return {"locked": {"$eq": False}} if ctx.user.identity == "carol" else None


@auth.on.assistants.search
async def carol_sees_tagged_assistants(ctx: Auth.types.AuthContext, value: dict) -> dict | None:
    # A $contains filter: carol's searches show assistants tagged with her name.
    return {"tags": {"$contains": "carol"}} if ctx.user.identity == "carol" else None


# ------------------------------------------------------------- crons and the store


@auth.on.crons.create
async def tag_new_crons(ctx: Auth.types.AuthContext, value: dict) -> None:
    value.setdefault("metadata", {})
    value["metadata"]["created_by"] = ctx.user.identity


@auth.on(resources="crons", actions=["search", "update", "delete"])
async def carol_leaves_locked_crons_alone(ctx: Auth.types.AuthContext, value: dict) -> dict | None:
    # A filter on the crons' metadata: carol neither sees nor changes locked crons.
    return {"locked": {"$eq": False}} if ctx.user.identity == "carol" else None


@auth.on.store
async def carol_stores_in_her_folder(ctx: Auth.types.AuthContext, value: dict) -> None:
    # The documented way to scope the store: rewrite the namespace (here for carol).
    if ctx.user.identity == "carol":
        value["namespace"] = ("carol-folder", *(value.get("namespace") or ()))


@auth.on.store.delete
async def carol_cannot_delete_items(ctx: Auth.types.AuthContext, value: dict) -> bool:
    return ctx.user.identity != "carol"
