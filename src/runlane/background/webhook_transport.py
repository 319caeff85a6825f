"""The webhook sender's HTTP transport: every request it sends (the delivery and each
redirect hop, which httpx sends through the transport again) is checked against the
webhook policy after DNS, and connects to the address that was checked, so a name
that resolves differently a moment later (DNS rebinding) reaches nothing new."""

from __future__ import annotations

import httpx

from runlane.webhook_policy import Resolver, WebhookConfig, check_url, system_resolve


class PolicyTransport(httpx.AsyncBaseTransport):
    def __init__(self, config: WebhookConfig, resolve: Resolver = system_resolve,
                 inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self.resolve = resolve
        self.inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # Raises WebhookRefused (not an httpx error: a refusal is not retried).
        host, addresses = await check_url(str(request.url), self.config, self.resolve)
        if addresses is None:  # an allow-listed host: connected to as usual
            return await self.inner.handle_async_request(request)
        # Connect to a checked address (the next one when it refuses: `localhost` may
        # answer ::1 first for a receiver on 127.0.0.1); the Host header stays the
        # name's, and TLS checks the certificate against the name (sni_hostname).
        extensions = dict(request.extensions)
        if request.url.scheme == "https":
            extensions["sni_hostname"] = host
        for index, address in enumerate(addresses):
            pinned = httpx.Request(request.method, request.url.copy_with(host=address),
                                   headers=request.headers, stream=request.stream,
                                   extensions=extensions)
            try:
                return await self.inner.handle_async_request(pinned)
            except httpx.ConnectError:
                if index == len(addresses) - 1:
                    raise
        raise AssertionError("check_url returns at least one address")

    async def aclose(self) -> None:
        await self.inner.aclose()
