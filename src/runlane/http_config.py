"""The `http` entry of langgraph.json, checked at start-up so a mistake is one clear
line, not a server that silently serves something else: CORS, the project's own app,
the route groups it turns off, a mount prefix, and which request headers reach a
run's config and the access log. (What runlane does with each: docs/configuration.md.)"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable
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


# What each `http.disable_*` flag removes (the reference's route groups; see
# runlane.api.app.ROUTE_GROUPS for the routers each one names).
DISABLE_FLAGS = ("disable_assistants", "disable_threads", "disable_runs", "disable_store",
                 "disable_meta", "disable_mcp", "disable_a2a", "disable_ui", "disable_webhooks",
                 "disable_event_streaming")
MIDDLEWARE_ORDERS = ("middleware_first", "auth_first")
HTTP_KEYS = ("app", *DISABLE_FLAGS, "cors", "mount_prefix", "configurable_headers",
             "logging_headers", "enable_custom_route_auth", "middleware_order")
# Never handed to a run, whatever `configurable_headers` says: credentials (the
# reference's list; runlane's API key travels in x-api-key or Authorization).
NEVER_CONFIGURABLE = frozenset({"authorization", "x-api-key", "x-service-key", "x-tenant-id"})


@dataclasses.dataclass(frozen=True)
class HeaderFilter:
    """`http.configurable_headers` / `http.logging_headers`: header names a request's
    headers are kept by. A name is kept when it matches an `includes` pattern and no
    `excludes` one; with no `includes`, none is (the reference's default). Patterns
    are exact names or `*` wildcards, matched against lower-cased names."""

    includes: tuple[re.Pattern[str], ...] = ()
    excludes: tuple[re.Pattern[str], ...] = ()

    def keeps(self, name: str) -> bool:
        if any(p.match(name) for p in self.excludes):
            return False
        return any(p.match(name) for p in self.includes)

    def select(self, headers: Iterable[tuple[str, str]]) -> dict[str, str]:
        """The kept ones of (lower-cased name, value) pairs."""
        return {name: value for name, value in headers if self.keeps(name)}


@dataclasses.dataclass(frozen=True)
class HttpConfig:
    """langgraph.json's `http` entry, checked. Defaults: the reference's without one."""

    cors: CorsConfig = dataclasses.field(default_factory=CorsConfig)
    # "./app.py:app" or "package.module:app": a Starlette/FastAPI app served beside
    # runlane's routes (runlane.api.custom_app loads it).
    app: str | None = None
    disabled: frozenset[str] = frozenset()  # the `disable_*` flags set to true
    mount_prefix: str | None = None  # "/my-api": every route under it (probes at / too)
    configurable_headers: HeaderFilter = HeaderFilter()
    logging_headers: HeaderFilter | None = None  # None: no access log
    enable_custom_route_auth: bool = False
    middleware_order: str = "middleware_first"

    def disables(self, flag: str) -> bool:
        """Is `disable_<flag>` set (flag: "runs", "meta", "mcp" ...)?"""
        return f"disable_{flag}" in self.disabled


def parse_http(raw: Any, where: str, environ: Any = os.environ) -> HttpConfig:
    """langgraph.json's `http` entry (None: absent); `where` names the file in errors.
    One check per key, each failing with one line that says what is accepted.
    MOUNT_PREFIX / LANGGRAPH_MOUNT_PREFIX in the environment win over `mount_prefix`,
    as on the reference server."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: 'http' must be an object such as "
                          '{"cors": {"allow_origins": ["https://app.example.com"]}}')
    unknown = sorted(set(raw) - set(HTTP_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(f'http.{k}' for k in unknown)}"
                          f"; accepted: {', '.join(HTTP_KEYS)}")
    flags = {key: _flag(raw[key], f"{where}: http.{key}")
             for key in (*DISABLE_FLAGS, "enable_custom_route_auth") if key in raw}
    app = raw.get("app")
    if app is not None and (not isinstance(app, str) or ":" not in app
                            or not app.rpartition(":")[2].isidentifier()):
        raise ConfigError(f"{where}: http.app must be 'path/to/file.py:app' or "
                          f"'package.module:app' (a Starlette or FastAPI app), got {app!r}")
    order = raw.get("middleware_order") or "middleware_first"
    if order not in MIDDLEWARE_ORDERS:
        raise ConfigError(f"{where}: http.middleware_order must be one of "
                          f"{', '.join(map(repr, MIDDLEWARE_ORDERS))}, got {order!r}")
    prefix = (environ.get("MOUNT_PREFIX") or environ.get("LANGGRAPH_MOUNT_PREFIX")
              or raw.get("mount_prefix"))
    logging_headers = raw.get("logging_headers")
    return HttpConfig(
        cors=parse_cors(raw.get("cors"), f"{where}: http.cors"),
        app=app,
        disabled=frozenset(key for key in DISABLE_FLAGS if flags.get(key)),
        mount_prefix=parse_mount_prefix(prefix, f"{where}: http.mount_prefix"),
        configurable_headers=parse_headers(raw.get("configurable_headers"),
                                           f"{where}: http.configurable_headers"),
        logging_headers=None if logging_headers is None else parse_headers(
            logging_headers, f"{where}: http.logging_headers"),
        enable_custom_route_auth=flags.get("enable_custom_route_auth", False),
        middleware_order=order,
    )


# What the reference's schema (pydantic, lax) reads as a boolean besides true/false.
_TRUE = frozenset({1, "1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({0, "0", "false", "f", "no", "n", "off"})


def _flag(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    key = value.lower() if isinstance(value, str) else value
    if isinstance(key, str | int) and key in _TRUE:
        return True
    if isinstance(key, str | int) and key in _FALSE:
        return False
    raise ConfigError(f"{where} must be true or false, got {value!r}")


def parse_mount_prefix(raw: Any, where: str) -> str | None:
    """"/my-api" (a trailing slash is dropped); None, "" or "/" for none (the
    reference reads "/" as no prefix too)."""
    if raw is None or raw in ("", "/"):
        return None
    if not isinstance(raw, str) or not raw.startswith("/") or (
            not re.fullmatch(r"(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+/?", raw)):
        raise ConfigError(f"{where} must be a path such as '/my-api' or '/api/v1' (starting "
                          f"with '/', no spaces, query or '//'), got {raw!r}")
    prefix = raw.rstrip("/")
    if prefix == "/noauth" or prefix.startswith("/noauth/"):
        raise ConfigError(f"{where}: '/noauth' is reserved (the reference server's "
                          f"in-process loopback); choose another prefix, got {raw!r}")
    return prefix


_HEADER_PATTERN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def parse_headers(raw: Any, where: str) -> HeaderFilter:
    """{"includes": [...], "excludes": [...]} (or the aliases `include`, `exclude`)."""
    if raw is None:
        return HeaderFilter()
    keys = ("includes", "excludes", "include", "exclude")
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be an object such as "
                          '{"includes": ["x-user-*"], "excludes": ["x-user-secret"]}')
    unknown = sorted(set(raw) - set(keys))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                          f"accepted: {', '.join(keys)}")
    lists: dict[str, tuple[re.Pattern[str], ...]] = {}
    for key in ("includes", "excludes"):
        alias = key[:-1]
        if raw.get(key) is not None and raw.get(alias) is not None:
            raise ConfigError(f"{where}: give {key!r} or its alias {alias!r}, not both")
        name = key if raw.get(key) is not None else alias
        patterns = raw.get(name)
        if patterns is None:
            patterns = []
        if not isinstance(patterns, list) or not all(
                isinstance(p, str) and _HEADER_PATTERN.fullmatch(p) for p in patterns):
            raise ConfigError(f"{where}.{name} must be a list of header names or patterns "
                              f"with '*' (such as \"x-user-*\"), got {patterns!r}")
        lists[key] = tuple(_pattern(p) for p in patterns)
    return HeaderFilter(lists["includes"], lists["excludes"])


def _pattern(pattern: str) -> re.Pattern[str]:
    """Only literals and `*` (no other regex: no ReDoS), as the reference translates
    them; lower-cased, since header names arrive lower-cased."""
    body = ".*".join(re.escape(part) for part in pattern.lower().split("*"))
    return re.compile(rf"(?s:{body})\Z")


def configurable_headers(headers: Iterable[tuple[str, str]],
                         rule: HeaderFilter) -> dict[str, str]:
    """The request headers a run's `config["configurable"]` receives: those the rule
    keeps, never credentials, and LangSmith's `langsmith-trace` always (as the
    reference forwards it for tracing)."""
    kept: dict[str, str] = {}
    for name, value in headers:
        if name == "langsmith-trace" or (name not in NEVER_CONFIGURABLE and rule.keeps(name)):
            kept[name] = value
    return kept


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
