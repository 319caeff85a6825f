"""Authentication and per-owner isolation.

A request passes through `AuthMiddleware` (middleware.py), which asks the configured
`Authenticator` who is calling (API keys: api_keys.py, JWT: jwt_tokens.py, a
langgraph_sdk `Auth` named by langgraph.json: custom.py). The caller's identity
becomes `request.state.owner`; `runlane.owners` turns that into the WHERE clause
every query applies. Authorization handlers (`@auth.on...`) run in the routes
through `authorize()` (authorization.py).
"""

from runlane.api.auth.identity import Authenticator, Identity

__all__ = ["Authenticator", "Identity"]
