"""One blocking Redis read per worker for every run stream its followers tail.

A follower that has read everything there is waits for what comes next. Each used to
hold a pooled connection in its own `XREAD BLOCK` (one connection per waiting
follower: a worker following 200 remote runs needed 200 connections, past redis-py's
default pool of 100, and retried "Too many connections"), and, woken, read again with
a script: two round trips per event per follower.

`StreamTail` instead keeps ONE connection in ONE `XREAD BLOCK` over the keys of every
subscription (`subscribe(key, after)`), from the lowest position any subscriber of a
key has, and hands the entries it reads to the subscribers, each filtering what it
has already seen. Positions advance as entries are handed out, so a follower streaming
a run costs nothing per event beyond its share of that one read. A new subscription
whose key (or earlier position) the read in flight does not cover interrupts it with
`CLIENT UNBLOCK` (on another connection), so the next read includes it at once.

Reads are spaced by at least `min_interval` (a few ms): while runs stream tokens,
every read would otherwise return after one entry of one stream and re-register the
whole key set with Redis; waiting one tick lets each read collect what every stream
produced meanwhile, at a latency far below a model's token delay.

A failed read (Redis down, a cut connection) is handed to every subscription as the
exception: followers treat it as they treat their own failed reads (retry, resume
from their position, or give up after `reconnect_for` and cut the stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from runlane.loop_task import cancel_and_wait

log = logging.getLogger("runlane.streams.redis")

# An entry id as a comparable pair: b"0-12" -> (0, 12).
EntryId = tuple[int, int]
Entry = tuple[EntryId, dict[bytes, bytes]]


def parse_id(raw: bytes) -> EntryId:
    ms, _, seq = raw.partition(b"-")
    return int(ms), int(seq)


class Subscription:
    """Entries of one stream after a position, as the tail reads them."""

    __slots__ = ("_error", "_event", "_pending", "after", "key", "lagging", "tail")

    def __init__(self, tail: StreamTail, key: bytes, after: EntryId) -> None:
        self.tail = tail
        self.key = key
        self.after = after  # the last entry id handed to this subscriber
        # Handed out faster than the follower takes them (a slow client): the tail let
        # go of it; the follower reads on by itself (pulls) from where it is.
        self.lagging = False
        self._pending: list[Entry] = []
        self._error: BaseException | None = None
        self._event = asyncio.Event()

    def _deliver(self, entries: list[Entry]) -> None:
        if self.lagging:
            return
        fresh = [e for e in entries if e[0] > self.after]
        if fresh:
            self._pending.extend(fresh)
            self.after = fresh[-1][0]
            self._event.set()
            if len(self._pending) >= self.tail.max_pending:
                # Bounded memory per follower: what is not taken stays in Redis.
                self.lagging = True
                self.tail._unsubscribe(self)

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        self._event.set()

    async def next(self, timeout: float) -> list[Entry]:
        """The entries read since the last call (waiting up to `timeout` seconds for
        some: [] if none came). Raises the tail's read error, once."""
        if not self._pending and self._error is None and not self.lagging:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, timeout)):
                    await self._event.wait()
        self._event.clear()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        entries, self._pending = self._pending, []
        return entries

    def close(self) -> None:
        self.tail._unsubscribe(self)


class StreamTail:
    def __init__(self, url: str, client: Redis, *, max_block: float = 5.0,
                 socket_timeout: float = 5.0, count: int = 1000,
                 min_interval: float = 0.005, max_pending: int = 4000) -> None:
        # Its own connection (a pool of one): the one that blocks.
        self._pool = ConnectionPool.from_url(
            url, protocol=2, socket_timeout=max_block + socket_timeout,
            socket_connect_timeout=socket_timeout, max_connections=1)
        self._client = client  # for CLIENT UNBLOCK, on another connection
        self.max_block = max_block
        self.count = count
        self.min_interval = min_interval
        self.max_pending = max_pending
        self._subs: dict[bytes, list[Subscription]] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: Any = None
        self._client_id: int | None = None
        # The positions the read in flight covers (None: no read in flight).
        self._in_flight: dict[bytes, EntryId] | None = None
        self._unblocking = False
        self._dirty = False  # a subscription the read in flight does not cover
        self._sent = False  # the read in flight was sent: CLIENT UNBLOCK can reach it
        self._closed = False

    # ------------------------------------------------------------ subscribers

    def subscribe(self, key: str | bytes, after: EntryId) -> Subscription:
        raw = key.encode() if isinstance(key, str) else key
        sub = Subscription(self, raw, after)
        if self._closed:  # shutting down: the follower sees Redis gone, as it would
            sub._fail(RedisConnectionError("the worker's Redis connections are closed"))
            return sub
        self._subs.setdefault(raw, []).append(sub)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="runlane-redis-tail")
        flight = self._in_flight
        covered = None if flight is None else flight.get(raw)
        if covered is None or covered > after:
            # The read being prepared or in flight does not cover it.
            self._dirty = True
            self._changed.set()
            if self._sent:
                self._unblock()
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.key)
        if subs is None:
            return
        with contextlib.suppress(ValueError):
            subs.remove(sub)
        if not subs:
            del self._subs[sub.key]
        # The read in flight may still name the key: harmless, it is dropped next time.

    def _unblock(self) -> None:
        if self._unblocking or self._client_id is None:
            return
        self._unblocking = True
        asyncio.get_running_loop().create_task(self._send_unblock(self._client_id))

    async def _send_unblock(self, client_id: int) -> None:
        try:
            await self._client.execute_command("CLIENT", "UNBLOCK", client_id)
        except Exception as exc:  # noqa: BLE001 - the read fails by itself then
            log.debug("CLIENT UNBLOCK failed: %s", exc)

    # ---------------------------------------------------------------- reading

    async def _connection(self) -> Any:
        if self._conn is None:
            self._conn = await self._pool.get_connection()
        if not self._conn.is_connected or self._client_id is None:
            await self._conn.connect()
            await self._conn.send_command("CLIENT", "ID")
            self._client_id = int(await self._conn.read_response())
        return self._conn

    async def _drop_connection(self) -> None:
        self._client_id = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.disconnect()

    async def _loop(self) -> None:
        last_read = 0.0
        while not self._closed:
            if not self._subs:
                self._changed.clear()
                await self._changed.wait()
                continue
            wait = last_read + self.min_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            positions = {key: min(s.after for s in subs) for key, subs in self._subs.items()}
            if not positions:
                continue
            last_read = time.monotonic()
            try:
                reply = await self._read(positions)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every subscriber sees the failure
                await self._drop_connection()
                for subs in list(self._subs.values()):
                    for sub in subs:
                        sub._fail(exc)
                # Followers retry by themselves (with backoff) and subscribe again.
                self._subs.clear()
                continue
            for key, raw_entries in reply or ():
                entries = [(parse_id(entry_id), _fields(values))
                           for entry_id, values in raw_entries]
                for sub in list(self._subs.get(key, ())):
                    sub._deliver(entries)

    async def _read(self, positions: dict[bytes, EntryId]) -> Any:
        """One XREAD BLOCK from `positions`: its raw reply (None: nothing came)."""
        self._changed.clear()
        self._in_flight, self._dirty, self._sent = positions, False, False
        self._unblocking = False
        try:
            conn = await self._connection()
            await conn.send_command(
                "XREAD", "COUNT", self.count, "BLOCK", max(1, int(self.max_block * 1000)),
                "STREAMS", *positions, *(b"%d-%d" % p for p in positions.values()))
            self._sent = True
            if self._dirty:  # subscribed while connecting: read again at once
                self._unblock()
            return await conn.read_response()
        finally:
            self._in_flight, self._sent = None, False

    async def aclose(self) -> None:
        self._closed = True
        await cancel_and_wait(self._task)
        await self._drop_connection()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._pool.release(self._conn)
        await self._pool.disconnect()


def _fields(values: list[bytes]) -> dict[bytes, bytes]:
    return dict(zip(values[::2], values[1::2], strict=True))
