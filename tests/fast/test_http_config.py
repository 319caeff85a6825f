"""langgraph.json's `http.cors`, parsed (runlane.http_config), and the CORS layer
around the app in process: on every answer, the server-error handler's included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from runlane.api.app import create_app
from runlane.errors import ConfigError
from runlane.graphs import read_config
from runlane.http_config import DEFAULT_EXPOSE_HEADERS, CorsConfig, parse_cors, parse_http
from runlane.settings import Settings


def test_defaults_are_the_reference_servers() -> None:
    for config in (parse_http(None, "x").cors, parse_http({}, "x").cors, parse_cors(None, "x")):
        assert config == CorsConfig()
    assert config.allow_origins == ("*",) and config.allow_methods == ("*",)
    assert config.allow_headers == ("*",) and not config.allow_credentials
    # The reference's three, and Mcp-Session-Id so that a browser MCP client keeps its
    # /mcp session (the reference's /mcp is stateless: it has none to expose).
    assert set(config.expose_headers) == {"content-location", "x-pagination-next",
                                          "x-pagination-total", "mcp-session-id"}


def test_a_narrowing_config_keeps_the_other_defaults() -> None:
    config = parse_cors({"allow_origins": ["https://app.example.com"],
                         "allow_credentials": True, "expose_headers": ["X-Request-Id"],
                         "max_age": 60}, "x")
    assert config.allow_origins == ("https://app.example.com",)
    assert config.allow_methods == ("*",) and config.allow_headers == ("*",)
    assert config.allow_credentials and config.max_age == 60
    assert config.expose_headers == (*DEFAULT_EXPOSE_HEADERS, "x-request-id")


def test_a_regex_alone_narrows_the_origins() -> None:
    config = parse_cors({"allow_origin_regex": r"https://.*\.example\.com"}, "x")
    assert config.allow_origins == ()
    assert config.allow_origin_regex == r"https://.*\.example\.com"


@pytest.mark.parametrize(("raw", "mentions"), [
    ("*", "must be an object"),
    ({"allow_origin": ["x"]}, "unknown key(s) 'allow_origin'"),
    ({"allow_origins": "https://a.example"}, "allow_origins must be a list of strings"),
    ({"allow_methods": ["GET", 1]}, "allow_methods must be a list of strings"),
    ({"allow_credentials": "yes"}, "allow_credentials must be true or false"),
    ({"allow_origin_regex": "https://(a"}, "not a valid regular expression"),
    ({"allow_origin_regex": 3}, "allow_origin_regex must be a string"),
    ({"max_age": -1}, "max_age must be a whole number"),
    ({"max_age": "600"}, "max_age must be a whole number"),
    ({"allow_credentials": True}, 'not "*"'),
], ids=str)
def test_bad_cors_is_one_clear_line(raw: Any, mentions: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_cors(raw, "langgraph.json: http.cors")
    message = str(caught.value)
    assert mentions in message and "http.cors" in message and "\n" not in message


def test_read_config_reads_http_cors(tmp_path: Path) -> None:
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps({"graphs": {"g": "./g.py:g"},
                                "http": {"cors": {"allow_origins": ["https://a.example"]}}}))
    assert read_config(path).cors.allow_origins == ("https://a.example",)
    path.write_text(json.dumps({"graphs": {"g": "./g.py:g"}, "http": []}))
    with pytest.raises(ConfigError, match="'http' must be an object"):
        read_config(path)


def _app(cors: CorsConfig | None = None) -> httpx.AsyncClient:
    app = create_app(Settings(), {}, None, cors)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://runlane.test")


async def test_cors_wraps_server_errors_and_unknown_routes() -> None:
    origin = {"Origin": "http://localhost:3000"}
    async with _app() as client:
        for path, status in (("/boom", 500), ("/no/such/route", 404)):
            resp = await client.get(path, headers=origin)
            assert resp.status_code == status, resp.text
            assert resp.headers["access-control-allow-origin"] == "*"
            assert "content-location" in resp.headers["access-control-expose-headers"]


async def test_preflight_with_private_network() -> None:
    asks = {"Origin": "https://chat.example.com", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-api-key",
            "Access-Control-Request-Private-Network": "true"}
    async with _app() as client:
        resp = await client.options("/threads", headers=asks)
        assert resp.status_code == 200, resp.text
        assert resp.headers["access-control-allow-private-network"] == "true"
        assert resp.headers["access-control-allow-headers"] == "content-type, x-api-key"
    narrowed = parse_cors({"allow_origins": ["https://chat.example.com"],
                           "allow_private_network": False}, "x")
    async with _app(narrowed) as client:
        resp = await client.options("/threads", headers=asks)
        assert resp.status_code == 400 and "private-network" in resp.text
        other = {**asks, "Origin": "https://evil.example"}
        del other["Access-Control-Request-Private-Network"]
        resp = await client.options("/threads", headers=other)
        assert resp.status_code == 400 and "origin" in resp.text
        assert "access-control-allow-origin" not in resp.headers
