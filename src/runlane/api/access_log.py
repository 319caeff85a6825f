"""The access log, on when langgraph.json sets `http.logging_headers`: one line per
request on the `runlane.access` logger, with the request and response headers that
setting selects (none by default, so credentials never reach a log by accident).

runlane writes no access log otherwise: the run log (`runlane.runs`) already says
what happened to every run, and a line per request costs on the hot path. A project
that names the headers it wants logged asks for the log that carries them.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runlane.http_config import HeaderFilter

log = logging.getLogger("runlane.access")
# Polled by load balancers and scrapers: not logged (as on the reference server).
QUIET_PATHS = frozenset({"/ok", "/ready", "/metrics"})


def _level(status: int) -> int:
    return logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR


class AccessLog:
    def __init__(self, app: ASGIApp, headers: HeaderFilter) -> None:
        self.app = app
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in QUIET_PATHS:
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        response: dict[str, Any] = {"status": 500, "headers": []}

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                response["status"] = message["status"]
                response["headers"] = message.get("headers", [])
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            status = int(response["status"])
            latency_ms = round((time.monotonic() - started) * 1000, 1)
            method, path = scope["method"], scope["path"]
            req_header = self._kept(scope.get("headers", []))
            res_header = self._kept(response["headers"])
            # The headers in the message too: the text format prints only the message.
            shown = "".join(f" {k}={v}" for k, v in (("req_header", req_header),
                                                       ("res_header", res_header)) if v)
            log.log(_level(status), "%s %s %s %sms%s", method, path, status, latency_ms, shown,
                    extra={"event": "access", "method": method, "path": path,
                           "status": status, "latency_ms": latency_ms,
                           "req_header": req_header, "res_header": res_header})

    def _kept(self, raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
        return self.headers.select((name.decode("latin-1").lower(), value.decode("latin-1"))
                                   for name, value in raw)
