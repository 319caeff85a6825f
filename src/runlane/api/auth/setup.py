"""Choosing the authenticator from settings and langgraph.json, at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runlane.api.auth.api_keys import ApiKeys, load_keys
from runlane.api.auth.custom import CustomAuth, load_auth
from runlane.api.auth.identity import Authenticator
from runlane.api.auth.jwt_tokens import JwtOptions, JwtTokens
from runlane.errors import AuthConfigError

MODES = ("none", "api-key", "jwt", "custom")
LOOPBACK = {"127.0.0.1", "::1", "localhost", "[::1]"}


def effective_mode(mode: str | None, langgraph_auth: Any) -> str:
    """--auth as given; when not given, custom if langgraph.json names an auth object."""
    if mode is None:
        return "custom" if langgraph_auth else "none"
    if mode not in MODES:
        raise AuthConfigError(f"unknown auth mode {mode!r}: use one of {', '.join(MODES)}")
    if mode == "custom" and not langgraph_auth:
        raise AuthConfigError("--auth custom needs an \"auth\": {\"path\": \"./auth.py:auth\"} "
                              "entry in langgraph.json")
    return mode


def build_authenticator(settings: Any, config_path: Path,
                        langgraph_auth: Any) -> tuple[Authenticator | None, Any]:
    """(authenticator or None for no auth, the langgraph_sdk Auth object or None).
    Every failure is an AuthConfigError (ApiKeyError, JwtConfigError, CustomAuthError
    are kinds of it)."""
    mode = effective_mode(settings.auth, langgraph_auth)
    if mode == "api-key":
        return ApiKeys(load_keys(settings.api_keys, settings.api_keys_file)), None
    if mode == "jwt":
        algorithms = [a.strip() for a in (settings.jwt_algorithms or "").split(",")
                      if a.strip()]
        return JwtTokens(JwtOptions(
            secret=settings.jwt_secret, public_key=settings.jwt_public_key,
            algorithms=algorithms, issuer=settings.jwt_issuer,
            audience=settings.jwt_audience, identity_claim=settings.jwt_identity_claim,
        )), None
    if mode == "custom":
        auth = load_auth(config_path.resolve().parent, langgraph_auth)
        return CustomAuth(auth), auth
    return None, None


def is_loopback(host: str) -> bool:
    return host in LOOPBACK or host.startswith("127.")


NO_AUTH_WARNING = (
    "runlane is listening on {host} without authentication: anyone who can reach this "
    "port can read, run and delete every thread. Enable auth with --auth api-key "
    "(RUNLANE_API_KEYS='alice=KEY'), --auth jwt (RUNLANE_JWT_SECRET or "
    "RUNLANE_JWT_PUBLIC_KEY), or an \"auth\" entry in langgraph.json; or listen on "
    "127.0.0.1."
)
