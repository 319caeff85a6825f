"""Bearer tokens from a fixed table (langgraph.json "auth")."""

from langgraph_sdk import Auth

auth = Auth()
TOKENS = {"alice-token-0123456789abcdef": {"identity": "alice", "permissions": ["read"]}}


@auth.authenticate
async def authenticate(authorization: str | None) -> dict:
    scheme, _, token = (authorization or "").partition(" ")
    user = TOKENS.get(token) if scheme.lower() == "bearer" else None
    if user is None:
        raise Auth.exceptions.HTTPException(status_code=401, detail="send a valid bearer token")
    return user
