"""Credentials for runlane's own clients (`runlane runs/threads ...`, `runlane check`)
against a secured server: an API key, a bearer token, or any header.

Secrets are best passed through the environment (RUNLANE_API_KEY, RUNLANE_TOKEN):
flags show up in `ps` and shell history.
"""

from __future__ import annotations

import argparse
import os

from runlane.errors import CredentialError


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--api-key", default=None,
                        help="API key, sent as X-Api-Key (default $RUNLANE_API_KEY)")
    parser.add_argument("--token", default=None,
                        help="bearer token (a JWT, or what a custom auth handler expects), "
                             "sent as Authorization: Bearer (default $RUNLANE_TOKEN)")
    if not any("--header" in action.option_strings
               for action in getattr(parser, "_actions", [])):
        parser.add_argument("--header", action="append", default=[],
                            help="extra request header 'Name: value', repeatable")


def headers_from(args: argparse.Namespace) -> dict[str, str]:
    """The headers every request carries: --header ones, then the key and token."""
    headers: dict[str, str] = {}
    for item in getattr(args, "header", None) or []:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise CredentialError(f"--header {item!r}: expected 'Name: value'")
        headers[name.strip()] = value.strip()
    api_key = getattr(args, "api_key", None) or os.environ.get("RUNLANE_API_KEY")
    token = getattr(args, "token", None) or os.environ.get("RUNLANE_TOKEN")
    if api_key:
        headers["X-Api-Key"] = api_key
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers
