"""A lean HTTP/1.1 load generator for throughput scenarios.

Why it exists: on this 2-core machine the benchmark client shares the CPUs with the
server under test. `langgraph_sdk` over httpx spends about 2.4 ms of client CPU per
`runs.wait` call, as much as runlane's server spends on the whole run, so with 32
clients the client process alone saturates a core near 400 runs/s and caps whatever
server it measures there (and takes CPU the server could have used). This client keeps
one keep-alive connection per simulated client, writes pre-built request bytes and
reads the response with a minimal parser (Content-Length or chunked), at a few
percent of the SDK's cost, so the number it yields is the server's. The SDK figures
stay in the report beside it: they are what an SDK user observes.

It is deliberately small: it speaks just enough HTTP/1.1 for JSON POSTs to the two
servers benchmarked here, and for reading an SSE answer event by event (the agent
workload, `agent_load.py`), and raises on anything it does not understand.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import urlsplit


class LeanConnection:
    """One keep-alive HTTP/1.1 connection; reconnects when the server closes it."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def post_json(self, path: str, body: bytes) -> tuple[int, bytes]:
        """POST `body` (already JSON-encoded); the status and the whole response body."""
        if self._writer is None:
            await self._connect()
        assert self._reader is not None and self._writer is not None
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
        self._writer.write(head.encode("ascii") + body)
        status, headers = await self._read_head()
        data = await self._read_body(headers)
        if headers.get("connection", "").lower() == "close":
            await self.aclose()
        return status, data

    async def post_sse(self, path: str, body: bytes,
                       on_event: Callable[[bytes], None]) -> int:
        """POST `body` and read a chunked SSE answer to its end, calling `on_event` with
        each event's name (the bytes after `event: `) as it arrives. No JSON is parsed:
        the load generator must cost far less than the server it measures."""
        if self._writer is None:
            await self._connect()
        assert self._reader is not None and self._writer is not None
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: application/json\r\nAccept: text/event-stream\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")
        self._writer.write(head.encode("ascii") + body)
        status, headers = await self._read_head()
        if status != 200 or headers.get("transfer-encoding", "").lower() != "chunked":
            await self._read_body(headers)
            return status
        pending = b""
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")
                break
            pending += await self._reader.readexactly(size)
            await self._reader.readexactly(2)
            *events, pending = pending.replace(b"\r\n", b"\n").split(b"\n\n")
            for event in events:
                at = 0 if event.startswith(b"event: ") else event.find(b"\nevent: ") + 1
                if at or event.startswith(b"event: "):
                    end = event.find(b"\n", at)
                    on_event(event[at + 7:] if end < 0 else event[at + 7:end])
        if headers.get("connection", "").lower() == "close":
            await self.aclose()
        return status

    async def _read_head(self) -> tuple[int, dict[str, str]]:
        assert self._reader is not None
        raw = await self._reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return status, headers

    async def _read_body(self, headers: dict[str, str]) -> bytes:
        assert self._reader is not None
        if "content-length" in headers:
            return await self._reader.readexactly(int(headers["content-length"]))
        if headers.get("transfer-encoding", "").lower() != "chunked":
            raise ValueError(f"response with neither Content-Length nor chunks: {headers}")
        chunks = []
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")  # no trailers from these servers
                return b"".join(chunks)
            chunks.append(await self._reader.readexactly(size))
            await self._reader.readexactly(2)

    async def aclose(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
