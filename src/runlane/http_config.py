"""The `http` entry of langgraph.json that runlane honours: `http.cors`, checked at
start-up so a mistake is one clear line, not a browser that silently cannot connect."""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any

from runlane.errors import ConfigError

# Response headers a browser may read by default. The JS SDK reads the run id from
# Content-Location (Stop and rejoin need it) and pages with the pagination headers; an
# MCP client in a browser reads its session from Mcp-Session-Id (docs/mcp.md).
DEFAULT_EXPOSE_HEADERS = ("x-pagination-total", "x-pagination-next", "content-location",
                          "mcp-session-id")


@dataclasses.dataclass(frozen=True)
class CorsConfig:
    """Starlette CORSMiddleware's arguments, as runlane applies them. The defaults are
    the reference server's when langgraph.json has no `http.cors`: any origin, method
    and header, no credentials."""

    allow_origins: tuple[str, ...] = ("*",)
    allow_methods: tuple[str, ...] = ("*",)
    allow_headers: tuple[str, ...] = ("*",)
    allow_credentials: bool = False
    allow_origin_regex: str | None = None
    expose_headers: tuple[str, ...] = DEFAULT_EXPOSE_HEADERS
    max_age: int = 600
    # Chrome's Private Network Access: a page on a public origin (a hosted chat UI)
    # may reach a server on localhost or the LAN once the preflight allows it.
    allow_private_network: bool = True


_LISTS = ("allow_origins", "allow_methods", "allow_headers", "expose_headers")
_BOOLS = ("allow_credentials", "allow_private_network")
KEYS = (*_LISTS, *_BOOLS, "allow_origin_regex", "max_age")


def parse_http(raw: Any, where: str) -> CorsConfig:
    """The CORS policy of langgraph.json's `http` entry (None: absent). `where` names
    the file in errors."""
    if raw is None:
        return CorsConfig()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: 'http' must be an object such as "
                          '{"cors": {"allow_origins": ["https://app.example.com"]}}')
    ignored = sorted(set(raw) - {"cors"})
    if ignored:
        # The reference's other `http` keys (a custom app, disabled routes, a mount
        # prefix ...): runlane does not do them, and says so rather than pretend.
        logging.getLogger("runlane").warning(
            "%s: http.%s not supported by runlane: ignored (only http.cors is read)",
            where, ", http.".join(ignored))
    return parse_cors(raw.get("cors"), f"{where}: http.cors")


def parse_cors(raw: Any, where: str) -> CorsConfig:  # noqa: C901 - one check per key
    """A key left out keeps its default (any origin, method and header), unlike the
    reference, which falls back to Starlette's (GET only, no headers): a config that
    only narrows the origins should not also break POST. The default exposed headers
    are always exposed: without Content-Location the JS SDK cannot stop a run."""
    if raw is None:
        return CorsConfig()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be an object with any of: {', '.join(KEYS)}")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                          f"accepted: {', '.join(KEYS)}")
    values: dict[str, Any] = {}
    for key in _LISTS:
        if key in raw:
            items = raw[key]
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise ConfigError(f"{where}.{key} must be a list of strings, got {items!r}")
            values[key] = tuple(items)
    for key in _BOOLS:
        if key in raw:
            if not isinstance(raw[key], bool):
                raise ConfigError(f"{where}.{key} must be true or false, got {raw[key]!r}")
            values[key] = raw[key]
    regex = raw.get("allow_origin_regex")
    if regex is not None:
        if not isinstance(regex, str):
            raise ConfigError(f"{where}.allow_origin_regex must be a string, got {regex!r}")
        try:
            re.compile(regex)
        except re.error as exc:
            raise ConfigError(f"{where}.allow_origin_regex {regex!r} is not a valid regular "
                              f"expression ({exc})") from None
        values["allow_origin_regex"] = regex
        # A regex is there to narrow the origins: it does not add to "any".
        values.setdefault("allow_origins", ())
    if "max_age" in raw:
        max_age = raw["max_age"]
        if not isinstance(max_age, int) or isinstance(max_age, bool) or max_age < 0:
            raise ConfigError(f"{where}.max_age must be a whole number of seconds (0 or "
                              f"more), got {max_age!r}")
        values["max_age"] = max_age
    exposed = values.get("expose_headers", ())
    values["expose_headers"] = tuple(dict.fromkeys(
        [*DEFAULT_EXPOSE_HEADERS, *(h.lower() for h in exposed)]))
    config = CorsConfig(**values)
    if config.allow_credentials and "*" in config.allow_origins:
        raise ConfigError(
            f"{where}: allow_credentials needs the origins named (allow_origins: "
            '["https://app.example.com"] or allow_origin_regex), not "*": browsers '
            "would send cookies and credentials from any site")
    return config
