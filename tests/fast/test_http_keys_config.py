"""langgraph.json's `http` keys parsed (runlane.http_config): what each accepts, the
reference's defaults, and the one line a bad value stops start-up with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runlane.errors import ConfigError
from runlane.graphs import read_config
from runlane.http_config import (
    DISABLE_FLAGS,
    HttpConfig,
    configurable_headers,
    parse_headers,
    parse_http,
)


def test_no_http_entry_is_the_reference_default() -> None:
    config = parse_http(None, "lg.json", environ={})
    assert config == HttpConfig() == parse_http({}, "lg.json", environ={})
    assert config.app is None and config.mount_prefix is None and not config.disabled
    assert config.logging_headers is None and config.middleware_order == "middleware_first"
    # The reference passes no request header to runs by default (langsmith-trace aside).
    headers = [("x-user-id", "u"), ("user-agent", "ua"), ("langsmith-trace", "t")]
    assert configurable_headers(headers, config.configurable_headers) == {
        "langsmith-trace": "t"}


def test_every_key_read() -> None:
    config = parse_http({
        "app": "./app.py:app", **dict.fromkeys(DISABLE_FLAGS, True),
        "mount_prefix": "/api/v1/", "enable_custom_route_auth": True,
        "middleware_order": "auth_first",
        "configurable_headers": {"includes": ["x-user-*"], "excludes": ["x-user-secret"]},
        "logging_headers": {"include": ["User-Agent"]},
        "cors": {"allow_origins": ["https://a.example"]},
    }, "lg.json", environ={})
    assert config.app == "./app.py:app" and config.mount_prefix == "/api/v1"
    assert all(config.disables(flag.removeprefix("disable_")) for flag in DISABLE_FLAGS)
    assert config.enable_custom_route_auth and config.middleware_order == "auth_first"
    assert config.cors.allow_origins == ("https://a.example",)
    assert config.logging_headers is not None and config.logging_headers.keeps("user-agent")
    assert not parse_http({"disable_runs": False}, "x", environ={}).disables("runs")
    # The reference's schema reads booleans laxly (pydantic): so does runlane.
    lax = parse_http({"disable_runs": "true", "disable_store": 1, "disable_meta": "no",
                      "mount_prefix": "/"}, "x", environ={})
    assert lax.disables("runs") and lax.disables("store") and not lax.disables("meta")
    assert lax.mount_prefix is None


def test_header_patterns() -> None:
    rule = parse_headers({"includes": ["x-user-*", "X-Tenant", "authorization"],
                          "excludes": ["x-user-secret*"]}, "x")
    headers = [("x-user-id", "1"), ("x-user-secret-key", "s"), ("x-tenant", "t"),
               ("x-tenantx", "no"), ("authorization", "Bearer k"), ("x-api-key", "k"),
               ("x-other", "o")]
    # Credentials never reach a run, even when a pattern names them.
    assert configurable_headers(headers, rule) == {"x-user-id": "1", "x-tenant": "t"}
    # Only "*" is special: a dot is a dot.
    dotted = parse_headers({"includes": ["x.y"]}, "x")
    assert dotted.keeps("x.y") and not dotted.keeps("xzy")
    # An exclude list alone keeps nothing (the reference's rule: includes select).
    assert not parse_headers({"excludes": ["x-a"]}, "x").keeps("x-b")


def test_mount_prefix_from_the_environment_wins() -> None:
    config = parse_http({"mount_prefix": "/a"}, "x", environ={"MOUNT_PREFIX": "/b"})
    assert config.mount_prefix == "/b"
    assert parse_http({}, "x", environ={"LANGGRAPH_MOUNT_PREFIX": "/c/"}).mount_prefix == "/c"
    with pytest.raises(ConfigError, match="mount_prefix must be a path"):
        parse_http({}, "x", environ={"MOUNT_PREFIX": "c"})


@pytest.mark.parametrize(("raw", "says"), [
    ([], "'http' must be an object"),
    ({"disable_thread": True}, "unknown key(s) http.disable_thread; accepted: app,"),
    ({"disable_meta": "maybe"}, "http.disable_meta must be true or false"),
    ({"disable_mcp": None}, "http.disable_mcp must be true or false"),
    ({"disable_a2a": 2}, "http.disable_a2a must be true or false"),
    ({"app": 3}, "http.app must be"),
    ({"app": "./app.py"}, "http.app must be"),
    ({"app": "./app.py:not an identifier"}, "http.app must be"),
    ({"mount_prefix": "api"}, "must be a path such as '/my-api'"),
    ({"mount_prefix": "//"}, "must be a path such as '/my-api'"),
    ({"mount_prefix": "/a b"}, "must be a path such as '/my-api'"),
    ({"mount_prefix": "/a//b"}, "must be a path such as '/my-api'"),
    ({"mount_prefix": "/noauth/x"}, "'/noauth' is reserved"),
    ({"mount_prefix": 5}, "must be a path such as '/my-api'"),
    ({"enable_custom_route_auth": "sure"}, "http.enable_custom_route_auth must be true"),
    ({"middleware_order": "auth_last"}, "http.middleware_order must be one of"),
    ({"configurable_headers": ["x-a"]}, "http.configurable_headers must be an object"),
    ({"configurable_headers": {"included": ["x"]}}, "unknown key(s) 'included'"),
    ({"configurable_headers": {"includes": "x-*"}}, "includes must be a list of header"),
    ({"configurable_headers": {"includes": ["x-[a-z]+"]}}, "includes must be a list"),
    ({"configurable_headers": {"include": ["a"], "includes": ["b"]}}, "not both"),
    ({"logging_headers": {"excludes": [1]}}, "http.logging_headers.excludes must be a list"),
    ({"cors": {"allow_origin": []}}, "http.cors: unknown key(s)"),
], ids=str)
def test_a_bad_value_is_one_line_saying_what_to_fix(raw: Any, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_http(raw, "langgraph.json", environ={})
    message = str(caught.value)
    assert says in message and "\n" not in message and message.startswith("langgraph.json")


def test_read_config_keeps_the_http_entry(tmp_path: Path) -> None:
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps({"graphs": {"g": "./g.py:g"},
                                "http": {"disable_store": True, "mount_prefix": "/x",
                                         "cors": {"allow_origins": ["https://a.example"]}}}))
    project = read_config(path)
    assert project.http.disables("store") and project.cors.allow_origins == ("https://a.example",)


@pytest.mark.parametrize(("entry", "says"), [
    ({"encryption": {"path": "./enc.py:encryption"}}, "encryption is not supported"),
    ({"store": {"path": "./store.py:make"}}, "store.path is not supported"),
    ({"checkpointer": {"path": "./cp.py:make"}}, "checkpointer.path is not supported"),
], ids=str)
def test_keys_runlane_refuses_stop_start_up(tmp_path: Path, entry: dict, says: str) -> None:
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps({"graphs": {"g": "./g.py:g"}, **entry}))
    with pytest.raises(ConfigError, match=says) as caught:
        read_config(path)
    assert "\n" not in str(caught.value)
    # The keys it reads or ignores in the same entries do not.
    path.write_text(json.dumps({"graphs": {"g": "./g.py:g"}, "python_version": "3.12",
                                "checkpointer": {"serde": {"pickle_fallback": False}},
                                "ui": {"card": "./ui.tsx"}, "keep_pkg_tools": True}))
    read_config(path)
