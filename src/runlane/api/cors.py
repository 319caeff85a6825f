"""CORS for browser clients, from langgraph.json's `http.cors` (runlane.http_config).

Starlette's CORSMiddleware does the work: it answers every preflight itself, before
routing and auth (a preflight carries no credentials by design), and adds the
headers to every other response that has an Origin, errors included."""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from runlane.http_config import CorsConfig


def cors(app: ASGIApp, config: CorsConfig) -> ASGIApp:
    return CORSMiddleware(
        app,
        allow_origins=config.allow_origins,
        allow_methods=config.allow_methods,
        allow_headers=config.allow_headers,
        allow_credentials=config.allow_credentials,
        allow_origin_regex=config.allow_origin_regex,
        allow_private_network=config.allow_private_network,
        expose_headers=config.expose_headers,
        max_age=config.max_age,
    )
