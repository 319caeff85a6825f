"""`--webhooks`: a webhook receiver inside the checker, and runs that name it.

A share of the runs the scenarios create carry `webhook: <this receiver>/hook/<n>`;
the receiver answers every POST 200 and records the run id and status it was told.
At the end the checker waits (bounded) until every run that ended with a webhook was
delivered, and `webhook-delivered` judges: each such run delivered at least once
(a crash in the middle of a delivery may repeat it: counted, not a violation), with
the run's final status. A run removed by a rollback sends nothing.

The receiver listens on 127.0.0.1 by default: the server must run on this host (or
be told another address with --webhook-url) and its webhook policy must accept a
loopback target (langgraph.json `webhooks.url.disable_loopback: false`).
"""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from runlane.checker.history import Clock


class Receiver:
    """A threaded HTTP server recording every POST (run_id, status, when)."""

    def __init__(self, clock: Clock, host: str = "127.0.0.1", port: int = 0) -> None:
        self.clock = clock
        self.deliveries: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        # Set (in the checker's event loop) at every delivery: start() is called there.
        self.arrived = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    body = None
                body = body if isinstance(body, dict) else {}
                receiver.add({"t": receiver.clock(), "path": self.path,
                              "run_id": body.get("run_id"), "status": body.get("status"),
                              "thread_id": body.get("thread_id")})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass  # the record is the log

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.url = f"http://{host}:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="runlane-check-webhooks")

    def add(self, delivery: dict[str, Any]) -> None:
        with self._lock:
            self.deliveries.append(delivery)
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.arrived.set)

    def delivered(self) -> set[str]:
        with self._lock:
            return {d["run_id"] for d in self.deliveries if d.get("run_id")}

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.deliveries)

    def start(self) -> Receiver:
        self._loop = asyncio.get_running_loop()
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
