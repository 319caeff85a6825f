"""The webhook policy (runlane.webhook_policy): which URLs are refused, before and after
DNS, on every redirect hop (the sender's transport), and the delivery signature. DNS
answers come from a fake resolver, and hops are answered by httpx's MockTransport:
nothing here leaves the process."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from runlane.background.webhook_transport import PolicyTransport
from runlane.errors import ConfigError
from runlane.settings import Settings
from runlane.webhook_policy import (
    UrlPolicy,
    WebhookConfig,
    WebhookRefused,
    check_url,
    override,
    parse_webhooks,
    sign,
)

DOCS = Path(__file__).parents[2] / "docs" / "run-options.md"
# What the fake DNS answers; a name missing here does not resolve.
ZONE = {
    "localhost": ["::1", "127.0.0.1"],
    "hooks.example.com": ["93.184.216.34"],
    "inside.example.com": ["10.1.2.3"],
    "rebound.example.com": ["127.0.0.1"],
    "metadata.example.com": ["169.254.169.254"],
    "split.example.com": ["93.184.216.34", "192.168.1.5"],
    "v6.example.com": ["2606:2800:220:1:248:1893:25c8:1946"],
    "mapped.example.com": ["::ffff:127.0.0.1"],
}


async def fake_resolve(host: str, port: int) -> list[str]:
    if host in ZONE:
        return ZONE[host]
    try:  # an address literal resolves to itself, as getaddrinfo does
        import ipaddress
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        raise OSError(f"{host} does not resolve") from None


DEFAULT = WebhookConfig()


async def refusal(url: str, config: WebhookConfig = DEFAULT) -> str | None:
    try:
        await check_url(url, config, fake_resolve)
    except WebhookRefused as exc:
        return exc.reason
    return None


@pytest.mark.parametrize(("url", "words"), [
    ("http://127.0.0.1:8080/hook", "loopback"),
    ("http://[::1]/hook", "loopback"),
    ("http://localhost:9000/hook", "loopback"),
    ("http://rebound.example.com/hook", "resolves to 127.0.0.1"),
    ("http://mapped.example.com/hook", "loopback"),
    ("http://10.0.0.7/hook", "private"),
    ("http://172.20.1.1/hook", "private"),
    ("http://192.168.0.10/hook", "private"),
    ("http://100.64.0.1/hook", "private"),
    ("http://[fd00::1]/hook", "private"),
    ("http://inside.example.com/hook", "resolves to 10.1.2.3"),
    ("http://split.example.com/hook", "resolves to 192.168.1.5"),
    ("http://169.254.169.254/latest/meta-data", "link-local"),
    ("http://metadata.example.com/", "link-local"),
    ("http://metadata.google.internal/", "metadata"),
    ("http://[fe80::1]/hook", "link-local"),
    ("http://0.0.0.0:8000/hook", "reserved"),
    ("http://224.0.0.1/hook", "multicast"),
    ("http://nowhere.example.com/hook", "does not resolve"),
    ("ftp://hooks.example.com/hook", "http"),
    ("file:///etc/passwd", "http"),
    ("gopher://hooks.example.com/", "http"),
    ("/relative/hook", "http"),
])
async def test_the_default_policy_refuses_internal_targets(url: str, words: str) -> None:
    reason = await refusal(url)
    assert reason is not None and words in reason, (url, reason)


@pytest.mark.parametrize("url", ["https://hooks.example.com/hook?x=1", "http://93.184.216.34:8443/",
                                 "https://v6.example.com/hook"])
async def test_the_default_policy_accepts_public_targets(url: str) -> None:
    assert await refusal(url) is None


async def test_each_range_opens_with_its_own_key() -> None:
    loopback = WebhookConfig(url=UrlPolicy(disable_loopback=False))
    assert await refusal("http://127.0.0.1:1/", loopback) is None
    assert await refusal("http://localhost:1/", loopback) is None
    assert "private" in (await refusal("http://10.0.0.1/", loopback) or "")
    private = WebhookConfig(url=UrlPolicy(disable_private_ips=False))
    assert await refusal("http://inside.example.com/", private) is None
    assert "loopback" in (await refusal("http://127.0.0.1/", private) or "")
    # Link-local (the metadata endpoint) has no key: only an allow-listed name reaches it.
    both = WebhookConfig(url=UrlPolicy(disable_loopback=False, disable_private_ips=False))
    assert "link-local" in (await refusal("http://169.254.169.254/", both) or "")


async def test_allowed_domains_is_the_only_way_in_and_trusts_its_hosts() -> None:
    config = WebhookConfig(url=UrlPolicy(allowed_domains=("inside.example.com", "*.corp.test")))
    assert await refusal("http://inside.example.com/hook", config) is None  # resolves to 10/8
    assert await refusal("https://a.b.corp.test/hook", config) is None  # trusted: no DNS
    assert "not allowed" in (await refusal("https://corp.test/", config) or "")  # not the apex
    reason = await refusal("https://hooks.example.com/", config)
    assert reason is not None and "inside.example.com, *.corp.test" in reason


async def test_https_ports_and_length() -> None:
    config = WebhookConfig(url=UrlPolicy(require_https=True, allowed_ports=(443, 8443),
                                         max_url_length=40))
    assert "https" in (await refusal("http://hooks.example.com/", config) or "")
    assert await refusal("https://hooks.example.com:8443/", config) is None
    assert "port 9000" in (await refusal("https://hooks.example.com:9000/", config) or "")
    assert "longer than 40" in (await refusal("https://hooks.example.com/" + "x" * 40, config)
                                or "")


# ------------------------------------------------------------------ delivery


async def test_every_redirect_hop_is_checked_and_the_checked_address_is_used() -> None:
    """The receiver redirects inward: the second hop is refused before anything is
    sent to it, and the first hop connected to the address that was checked."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(307, headers={"Location": "http://rebound.example.com/admin"})

    transport = PolicyTransport(WebhookConfig(), fake_resolve, httpx.MockTransport(answer))
    async with httpx.AsyncClient(transport=transport, follow_redirects=True) as client:
        with pytest.raises(WebhookRefused, match=r"resolves to 127\.0\.0\.1"):
            await client.post("https://hooks.example.com/hook", content=b"{}")
    [first] = seen
    assert first.url.host == "93.184.216.34" and first.headers["Host"] == "hooks.example.com"
    assert first.extensions["sni_hostname"] == "hooks.example.com"


async def test_a_public_redirect_is_followed() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Host"])
        if len(seen) == 1:
            return httpx.Response(308, headers={"Location": "https://v6.example.com/next"})
        return httpx.Response(200)

    transport = PolicyTransport(WebhookConfig(), fake_resolve, httpx.MockTransport(answer))
    async with httpx.AsyncClient(transport=transport, follow_redirects=True) as client:
        answered = await client.post("https://hooks.example.com/hook", content=b"{}")
    assert answered.status_code == 200 and seen == ["hooks.example.com", "v6.example.com"]


async def test_each_checked_address_is_tried_in_turn() -> None:
    """`localhost` answers ::1 first on many hosts, and a receiver may listen on
    127.0.0.1 only: a refused connection moves on to the next checked address."""
    tried: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        tried.append(request.url.host)
        if request.url.host == "::1":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200)

    config = WebhookConfig(url=UrlPolicy(disable_loopback=False))
    transport = PolicyTransport(config, fake_resolve, httpx.MockTransport(answer))
    async with httpx.AsyncClient(transport=transport) as client:
        answered = await client.post("http://localhost:8000/hook", content=b"{}")
    assert answered.status_code == 200 and tried == ["::1", "127.0.0.1"]


# ------------------------------------------------------------------ signing


def documented_verify() -> Any:
    """The receiver example of docs/run-options.md, run as written."""
    text = DOCS.read_text()
    section = text[text.index("### Verifying a delivery"):]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code, "no python example under 'Verifying a delivery'"
    namespace: dict[str, Any] = {}
    exec(code.group(1), namespace)
    return namespace["verify"]


def test_the_documented_receiver_verifies_a_signature() -> None:
    verify = documented_verify()
    body = json.dumps({"run_id": "r1", "status": "success"}).encode()
    header = sign("s3cret", int(time.time()), body)
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)
    assert verify("s3cret", header, body)
    assert not verify("s3cret", header, body.replace(b"success", b"error"))  # tampered
    assert not verify("other", header, body)  # another secret
    stale = sign("s3cret", int(time.time()) - 3600, body)
    assert not verify("s3cret", stale, body)  # replayed an hour later


# ------------------------------------------------------------------ configuration


def test_langgraph_json_keys_are_the_reference_servers() -> None:
    env = {"LG_WEBHOOK_TOKEN": "tok", "LG_WEBHOOK_SECRET": "k", "OTHER": "x"}
    config = parse_webhooks({
        "url": {"require_https": True, "allowed_domains": ["hooks.example.com", "*.corp.test"],
                "allowed_ports": [443], "max_url_length": 100, "disable_loopback": False,
                "disable_private_ips": False},
        "headers": {"Authorization": "Bearer ${{ env.LG_WEBHOOK_TOKEN }}"},
        "allowed_fields": ["run_id", "status"],
        "secret": "${{ env.LG_WEBHOOK_SECRET }}",
    }, "langgraph.json", env)
    assert config.url == UrlPolicy(True, ("hooks.example.com", "*.corp.test"), (443,), 100,
                                   False, False)
    assert config.headers == (("Authorization", "Bearer tok"),)
    assert config.allowed_fields == {"run_id", "status"} and config.secret == "k"
    assert parse_webhooks(None, "x") == parse_webhooks({}, "x") == WebhookConfig()


@pytest.mark.parametrize(("raw", "words"), [
    ({"urls": {}}, "unknown key(s) 'urls'; accepted: url, headers"),
    ({"url": {"disable_loopback": "no"}}, "disable_loopback must be true or false"),
    ({"url": {"allowed_domains": ["a.*.com"]}}, "wildcard may only lead"),
    ({"url": {"allowed_ports": [0]}}, "port numbers"),
    ({"headers": {"X": "${{ env.OTHER }}"}}, "must start with webhooks.env_prefix"),
    ({"headers": {"X": "${{ env.LG_WEBHOOK_MISSING }}"}}, "is not set"),
    ({"allowed_fields": ["run_id", "secret_stuff"]}, "unknown field(s) 'secret_stuff'"),
    ({"secret": ""}, "non-empty string"),
])
def test_mistakes_are_one_clear_line(raw: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_webhooks(raw, "langgraph.json", {"OTHER": "x"})
    assert words in str(caught.value)


def test_runlane_settings_override_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNLANE_WEBHOOK_SECRET", "from-env")
    monkeypatch.setenv("RUNLANE_WEBHOOK_DISABLE_LOOPBACK", "false")
    monkeypatch.setenv("RUNLANE_WEBHOOK_ALLOWED_PORTS", "443,8443")
    monkeypatch.setenv("RUNLANE_WEBHOOK_ALLOWED_DOMAINS", "hooks.example.com, *.corp.test")
    settings = Settings.from_env()
    config = override(WebhookConfig(url=UrlPolicy(require_https=True), secret="file"),
                      **settings.webhook_overrides())
    assert config.secret == "from-env"
    assert config.url == UrlPolicy(require_https=True, disable_loopback=False,
                                   allowed_ports=(443, 8443),
                                   allowed_domains=("hooks.example.com", "*.corp.test"))
    # Passed on to worker processes as they were given.
    assert Settings.from_env().to_env()["RUNLANE_WEBHOOK_DISABLE_LOOPBACK"] == "False"
    monkeypatch.setenv("RUNLANE_WEBHOOK_DISABLE_LOOPBACK", "False")
    assert Settings.from_env().webhook_disable_loopback is False
