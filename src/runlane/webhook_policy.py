"""Where webhooks may go, and how they are signed: langgraph.json's `webhooks` entry
(the reference server's keys) with RUNLANE_WEBHOOK_* overrides, checked at start-up.

A webhook URL comes from whoever creates a run, and the server POSTs to it: without a
policy any caller could make the server reach its own loopback services, the cloud
metadata endpoint or the private network. So by default a URL is refused when its
host is `localhost` or resolves to a loopback, link-local, private or otherwise
non-public address. `check_url` runs at run creation (a 422 saying why) and the
webhook transport runs it again on every delivery attempt and on every redirect hop,
connecting to exactly the address it checked (a DNS answer that changes between the
check and the connection cannot slip through).

A host named in `url.allowed_domains` is trusted as the operator's: once that list is
set, only its hosts are accepted, and their addresses are not checked (an internal
receiver is reached by allow-listing it), as in the reference server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import ipaddress
import os
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from runlane.errors import ConfigError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> the addresses it resolves to (raises OSError when it does not).
Resolver = Callable[[str, int], Awaitable[list[str]]]

_LOCALHOST_NAMES = frozenset({"localhost", "localhost.localdomain", "host.docker.internal"})
_METADATA_NAMES = frozenset({"metadata.google.internal", "metadata", "instance-data"})
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
_PRIVATE = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",  # RFC 1918, CGN
    "fc00::/7"))  # IPv6 unique local
_LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

# The payload fields `allowed_fields` may keep (the reference's list).
PAYLOAD_FIELDS = frozenset({
    "run_id", "thread_id", "assistant_id", "created_at", "updated_at", "metadata", "kwargs",
    "multitask_strategy", "status", "run_started_at", "run_ended_at", "webhook_sent_at",
    "values", "error"})
SIGNATURE_HEADER = "X-Runlane-Signature"
_TEMPLATE = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")


class WebhookRefused(Exception):
    """A webhook URL (or a redirect's) that the policy forbids; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class UrlPolicy:
    """langgraph.json `webhooks.url`. Defaults: the reference's, except that private
    addresses are refused too (`disable_private_ips`; see docs/differences.md) and
    plain http is accepted even when a `url` block is given."""

    require_https: bool = False
    allowed_domains: tuple[str, ...] = ()  # "hooks.example.com" or "*.example.com"
    allowed_ports: tuple[int, ...] = ()  # empty: any port
    max_url_length: int = 2048
    disable_loopback: bool = True
    disable_private_ips: bool = True


@dataclasses.dataclass(frozen=True)
class WebhookConfig:
    url: UrlPolicy = UrlPolicy()
    # Sent with every delivery (langgraph.json `headers`, env templates resolved).
    headers: tuple[tuple[str, str], ...] = ()
    # Only these payload fields are sent; None: all of them.
    allowed_fields: frozenset[str] | None = None
    # HMAC-SHA256 signing key: every delivery carries X-Runlane-Signature; None: unsigned.
    secret: str | None = dataclasses.field(default=None, repr=False)

    def trusted(self, host: str) -> bool:
        """Is `host` named by allowed_domains (exactly, or under a `*.` entry)?"""
        host = host.lower().rstrip(".")
        for allowed in self.url.allowed_domains:
            entry = allowed.lower()
            if host == entry or (entry.startswith("*.") and host.endswith(entry[1:])):
                return True
        return False


# ------------------------------------------------------------------ checking


def check_static(url: str, config: WebhookConfig) -> tuple[str, int, bool]:
    """Everything but DNS: (host, port, trusted) or WebhookRefused."""
    policy = config.url
    if len(url) > policy.max_url_length:
        raise WebhookRefused(f"the URL is longer than {policy.max_url_length} characters "
                             "(webhooks.url.max_url_length)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise WebhookRefused("it is not a valid URL; give an absolute http:// or https:// "
                             "URL") from None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host:
        raise WebhookRefused("only absolute http:// or https:// URLs with a host are accepted")
    if policy.require_https and scheme != "https":
        raise WebhookRefused("only https:// URLs are accepted (webhooks.url.require_https)")
    port = port or (443 if scheme == "https" else 80)
    if policy.allowed_ports and port not in policy.allowed_ports:
        raise WebhookRefused(f"port {port} is not allowed; allowed ports: "
                             f"{', '.join(map(str, policy.allowed_ports))} "
                             "(webhooks.url.allowed_ports)")
    trusted = config.trusted(host)
    if policy.allowed_domains and not trusted:
        raise WebhookRefused(f"host {host!r} is not allowed; allowed: "
                             f"{', '.join(policy.allowed_domains)} "
                             "(webhooks.url.allowed_domains)")
    if not trusted:
        if host in _LOCALHOST_NAMES and policy.disable_loopback:
            raise WebhookRefused(f"host {host!r} is the server itself, and loopback "
                                 "webhooks are disabled (webhooks.url.disable_loopback)")
        if host in _METADATA_NAMES:
            raise WebhookRefused(f"host {host!r} is a cloud metadata endpoint")
    return host, port, trusted


def forbidden(address: str, policy: UrlPolicy) -> str | None:
    """Why the policy forbids connecting to `address` (None: it does not)."""
    ip: Address = ipaddress.ip_address(address.split("%", 1)[0])  # drop a zone id
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip in _NAT64:
            ip = ipaddress.IPv4Address(ip.packed[-4:])
    if any(ip in net for net in _LOOPBACK):
        return ("a loopback address, which is refused (webhooks.url.disable_loopback)"
                if policy.disable_loopback else None)
    if any(ip in net for net in _LINK_LOCAL):
        return "a link-local address (cloud metadata lives there), which is always refused"
    if any(ip in net for net in _PRIVATE):
        return ("a private address, which is refused (webhooks.url.disable_private_ips)"
                if policy.disable_private_ips else None)
    if not ip.is_global or ip.is_multicast:
        return "a reserved, multicast or unspecified address, which is always refused"
    return None


async def system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def check_url(url: str, config: WebhookConfig,
                    resolve: Resolver = system_resolve) -> tuple[str, list[str] | None]:
    """Check `url` against the policy, after DNS: (host, the addresses that may be
    connected to; None for a trusted host, connected to as usual). Every address
    the host resolves to must be allowed: one forbidden answer refuses the URL."""
    host, port, trusted = check_static(url, config)
    if trusted:
        return host, None
    try:
        addresses = await resolve(host.strip("[]"), port)
    except OSError:
        raise WebhookRefused(f"host {host!r} does not resolve") from None
    if not addresses:
        raise WebhookRefused(f"host {host!r} does not resolve")
    for address in addresses:
        reason = forbidden(address, config.url)
        if reason is not None:
            subject = ("it" if host.strip("[]") == address
                       else f"host {host!r} resolves to {address}, which")
            raise WebhookRefused(f"{subject} is {reason}")
    return host, addresses


# ------------------------------------------------------------------ signing


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Runlane-Signature value: `t=<unix seconds>,v1=<hex HMAC-SHA256 of
    "<t>." + body>` (the timestamp is signed, so a captured delivery cannot be
    replayed later under a new one)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


# ------------------------------------------------------------------ configuration


_URL_KEYS = ("require_https", "allowed_domains", "allowed_ports", "max_url_length",
             "disable_loopback", "disable_private_ips")
KEYS = ("url", "headers", "env_prefix", "allowed_fields", "secret")


def parse_webhooks(raw: Any, where: str,  # noqa: C901 - one check per key
                   environ: Any = os.environ) -> WebhookConfig:
    """langgraph.json's `webhooks` entry (None: absent). `where` names the file."""
    if raw is None:
        return WebhookConfig()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: 'webhooks' must be an object with any of: "
                          f"{', '.join(KEYS)}")
    _no_unknown(raw, KEYS, f"{where}: webhooks")
    url = raw.get("url") or {}
    if not isinstance(url, dict):
        raise ConfigError(f"{where}: webhooks.url must be an object with any of: "
                          f"{', '.join(_URL_KEYS)}")
    _no_unknown(url, _URL_KEYS, f"{where}: webhooks.url")
    values: dict[str, Any] = {}
    for key in ("require_https", "disable_loopback", "disable_private_ips"):
        if key in url:
            if not isinstance(url[key], bool):
                raise ConfigError(f"{where}: webhooks.url.{key} must be true or false, "
                                  f"got {url[key]!r}")
            values[key] = url[key]
    if "allowed_domains" in url:
        values["allowed_domains"] = domains(url["allowed_domains"],
                                            f"{where}: webhooks.url.allowed_domains")
    if "allowed_ports" in url:
        values["allowed_ports"] = ports(url["allowed_ports"],
                                        f"{where}: webhooks.url.allowed_ports")
    if "max_url_length" in url:
        values["max_url_length"] = length(url["max_url_length"],
                                          f"{where}: webhooks.url.max_url_length")
    prefix = raw.get("env_prefix", "LG_WEBHOOK_")
    if not isinstance(prefix, str):
        raise ConfigError(f"{where}: webhooks.env_prefix must be a string, got {prefix!r}")
    headers = raw.get("headers") or {}
    if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise ConfigError(f"{where}: webhooks.headers must be an object of header names to "
                          'string values, e.g. {"Authorization": '
                          '"Bearer ${{ env.LG_WEBHOOK_TOKEN }}"}')
    rendered = tuple((name, _render(value, prefix, environ, f"{where}: webhooks.headers.{name}"))
                     for name, value in headers.items())
    fields = raw.get("allowed_fields")
    if fields is not None:
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise ConfigError(f"{where}: webhooks.allowed_fields must be a list of field names")
        unknown = sorted(set(fields) - PAYLOAD_FIELDS)
        if unknown:
            raise ConfigError(f"{where}: webhooks.allowed_fields: unknown field(s) "
                              f"{', '.join(map(repr, unknown))}; accepted: "
                              f"{', '.join(sorted(PAYLOAD_FIELDS))}")
    secret = raw.get("secret")
    if secret is not None:
        if not isinstance(secret, str) or not secret:
            raise ConfigError(f"{where}: webhooks.secret must be a non-empty string, "
                              'e.g. "${{ env.LG_WEBHOOK_SECRET }}"')
        secret = _render(secret, prefix, environ, f"{where}: webhooks.secret")
    return WebhookConfig(url=UrlPolicy(**values), headers=rendered,
                         allowed_fields=frozenset(fields) if fields is not None else None,
                         secret=secret)


def _no_unknown(raw: dict[str, Any], keys: Iterable[str], where: str) -> None:
    unknown = sorted(set(raw) - set(keys))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                          f"accepted: {', '.join(keys)}")


def domains(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(d, str) and d for d in value):
        raise ConfigError(f"{where} must be a list of host names such as "
                          f'["hooks.example.com", "*.example.com"], got {value!r}')
    for entry in value:
        if "*" in entry and not (entry.startswith("*.") and "*" not in entry[2:]):
            raise ConfigError(f"{where}: a wildcard may only lead, as in '*.example.com' "
                              f"(got {entry!r})")
    return tuple(d.lower() for d in value)


def ports(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
            isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in value):
        raise ConfigError(f"{where} must be a list of port numbers (1-65535), got {value!r}")
    return tuple(value)


def length(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 10:
        raise ConfigError(f"{where} must be a whole number of characters (10 or more), "
                          f"got {value!r}")
    return value


def _render(value: str, prefix: str, environ: Any, where: str) -> str:
    """Resolve "${{ env.VAR }}" templates; VAR must start with the env_prefix (so a
    config cannot send arbitrary server environment variables to a receiver)."""

    def replace(match: re.Match[str]) -> str:
        expr = match.group(1).strip()
        var = expr.removeprefix("env.")
        if not expr.startswith("env.") or not var or "." in var:
            raise ConfigError(f"{where}: only ${{{{ env.{prefix}NAME }}}} templates are "
                              f"accepted, got {match.group(0)!r}")
        if prefix and not var.startswith(prefix):
            raise ConfigError(f"{where}: environment variable {var!r} must start with "
                              f"webhooks.env_prefix {prefix!r}")
        if var not in environ:
            raise ConfigError(f"{where}: environment variable {var!r} is not set")
        return str(environ[var])

    return _TEMPLATE.sub(replace, value)


def override(config: WebhookConfig, **values: Any) -> WebhookConfig:
    """`config` with RUNLANE_WEBHOOK_* settings applied (None: not set). `secret`
    replaces the config's; the others are `url` policy keys, in their settings form
    (comma-separated lists)."""
    secret = values.pop("secret", None)
    url: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        where = f"RUNLANE_WEBHOOK_{key.upper()}"
        if key == "allowed_domains":
            url[key] = domains([d.strip() for d in str(value).split(",") if d.strip()], where)
        elif key == "allowed_ports":
            try:
                url[key] = ports([int(p) for p in str(value).split(",") if p.strip()], where)
            except ValueError:
                raise ConfigError(f"{where} must be comma-separated port numbers, "
                                  f"got {value!r}") from None
        elif key == "max_url_length":
            url[key] = length(value, where)
        else:
            url[key] = bool(value)
    return dataclasses.replace(config, url=dataclasses.replace(config.url, **url),
                               secret=secret or config.secret)
