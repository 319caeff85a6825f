"""A real local HTTP receiver for webhook tests: records every POST it gets, and can
fail the first N requests (500) or answer slowly."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebhookReceiver:
    def __init__(self, *, fail_first: int = 0, fail_status: int = 500,
                 delay: float = 0.0, hold: bool = False,
                 redirect_to: str | None = None) -> None:
        # redirect_to: every POST is answered 307 with this Location.
        self.redirect_to = redirect_to
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.delay = delay
        # hold: every answer waits until release() (at most 30 s).
        self._released = threading.Event()
        if not hold:
            self._released.set()
        self.answered = 0
        self.requests: list[dict[str, Any]] = []  # every POST, with its answer
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                body = json.loads(raw or b"null")
                with receiver._lock:
                    failing = len(receiver.requests) < receiver.fail_first
                    status = receiver.fail_status if failing else 200
                    if receiver.redirect_to is not None:
                        status = 307
                    receiver.requests.append({"path": self.path, "body": body,
                                              "status": status, "at": time.monotonic(),
                                              "content_type": self.headers.get("Content-Type"),
                                              "raw": raw, "headers": dict(self.headers)})
                if receiver.delay:
                    time.sleep(receiver.delay)
                receiver._released.wait(30)
                self.send_response(status)
                if status == 307:
                    self.send_header("Location", str(receiver.redirect_to))
                self.send_header("Content-Length", "0")
                self.end_headers()
                with receiver._lock:
                    receiver.answered += 1

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def release(self) -> None:
        self._released.set()

    def delivered(self, run_id: str) -> list[dict[str, Any]]:
        """Successful deliveries of one run."""
        with self._lock:
            return [r for r in self.requests
                    if r["status"] == 200 and (r["body"] or {}).get("run_id") == run_id]

    def attempts(self, run_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if (r["body"] or {}).get("run_id") == run_id]
