"""Run events across processes, on Redis Streams.

One Redis stream per run, key `{prefix}:run:{run_id}:events`. Event N of the run
(the SSE frame with `id: N`) is the stream entry with the explicit id `0-N`, fields
`n` (event name, for stream_mode filtering) and `f` (the whole SSE frame, byte for
byte what the local `RunEventLog` holds). So `XREAD`/`XRANGE` from `0-{after}`
returns exactly the events after `after`, on any worker: none lost, none repeated.

The end of a run is the entry `1-0` (fields: `end` = reason). It sorts after every
event id `0-N` and is never an event id, so:

- a reader from any `0-n` meets it after the last event, and a reader from
  `0-<max>` (`wait_ended`) meets *only* it;
- every append is refused once it is there: the append and end scripts read the
  stream's top entry and write in one atomic Lua call, so when a reaper ends a run
  while the dead owner's last batch is in flight, either that batch lands before
  the end (followers get it) or it is refused (no follower gets it): every
  listener sees the same stream, ids in order, end last;
- `end` is idempotent and callable by any process (the owner when its log closes,
  a worker reaping a dead owner's run, a worker cancelling a pending run).

Writing the end also sets the key's TTL (`ended_ttl`, default one hour), so memory
does not grow with finished runs. A live stream is never trimmed; it only carries a
safety TTL (`live_ttl`, default a day, refreshed by every append) so that a stream
nobody will ever end (a run deleted while a late append recreated it ...) cannot
leak forever.

Appends are idempotent too: a batch carries its first id, ids the stream already
has are skipped, and the script answers with the stream's last id, which the
forwarder takes as its position (so a batch whose reply was lost is resent safely,
and a gap is filled by rewinding). A stream that is missing only accepts a batch
that starts at id 1: a late append for a run whose ended stream already expired
is refused rather than recreating a stream without an end.

Publishing (`RedisEventBridge.forward`): the graph keeps publishing into the local
`RunEventLog` (no I/O on its hot path); a per-run forwarder task hands what is new
over as one batch (at most `max_batch` frames / `max_batch_bytes`, one batch in
flight per run, so batches grow by themselves when Redis is slower than the graph),
and writes the end marker once the log is closed and drained. The batches of all the
worker's runs go to Redis together, one Lua call per tick (redis_appends.py: the
checks and the answer per run are the single append's).

When Redis is down or slow, the graph never waits: the frames stay in the run's
local log (which holds them anyway) and the forwarder retries with backoff. While
the run is live it keeps retrying (and then catches up exactly), unless the backlog
of a failing Redis exceeds `max_backlog` frames; after the log closed it retries for
`give_up_after` seconds. If it gives up, it logs an error, and once the log is
closed, if Redis answers within `give_up_after`, ends the stream with reason `lost`:
followers on other workers then get, after the events that did arrive, an `error`
event (`StreamIncomplete`, sent without an `id:` line so it does not move
Last-Event-ID) and the end. The run itself still finishes and is recorded in the store as usual;
followers on the owning worker read the local log and lose nothing. A follower whose
own reads fail keeps retrying for `reconnect_for` seconds, then raises
`StreamUnavailable` (the client reconnects with its Last-Event-ID later).

If an owner dies after its run was recorded as finished but before the end marker
was written (no reaper will ever look at a finished run), followers given a
`run_finished` callback end the stream themselves (reason `orphaned`) once the
store says the run is over and the stream stayed silent for `orphan_grace` seconds
after that.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from runlane.backoff import Backoff
from runlane.serde import dumps
from runlane.streams.local import HEARTBEAT, HEARTBEAT_SECONDS, RunEventLog
from runlane.streams.redis_appends import AppendBatcher
from runlane.streams.redis_tail import Entry, StreamTail, Subscription, parse_id

log = logging.getLogger("runlane.streams.redis")

END_ID = b"1-0"
# Reading after this id returns the end marker only (event ids are all `0-N`).
AFTER_ALL_EVENTS = b"0-18446744073709551615"

# Errors that mean "Redis is unreachable or slow right now": retried.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    asyncio.TimeoutError,
)
# Any failure of Redis: unreachable, slow, or an error answer.
REDIS_FAILURES: tuple[type[BaseException], ...] = (RedisError, *TRANSIENT_ERRORS)

INCOMPLETE_FRAME = (
    b'event: error\ndata: {"error":"StreamIncomplete","message":"some events of this run '
    b"could not be relayed to the other workers (Redis was unreachable, or the worker "
    b'running it was lost); this stream ends here"}\n\n'
)

# Atomic, idempotent end. ARGV = ttl_ms, reason, final event name ('' = none), its
# JSON data, '1' to also (re)set the TTL when the stream had already ended.
# Answers 1 if this call ended the stream, 0 if it had already ended.
_END_LUA = r"""
local key = KEYS[1]
local ttl = tonumber(ARGV[1])
local top = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
local last = 0
if #top > 0 then
  local id = top[1][1]
  if string.sub(id, 1, 2) ~= '0-' then
    if ARGV[5] == '1' and ttl > 0 then redis.call('PEXPIRE', key, ttl) end
    return 0
  end
  last = tonumber(string.sub(id, 3))
end
local name = ARGV[3]
if name ~= '' then
  last = last + 1
  local frame = 'event: ' .. name .. '\ndata: ' .. ARGV[4]
    .. '\nid: ' .. string.format('%d', last) .. '\n\n'
  redis.call('XADD', key, string.format('0-%d', last), 'n', name, 'f', frame)
end
redis.call('XADD', key, '1-0', 'end', ARGV[2])
if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
return 1
"""


# Read the entries from ARGV[1] (an id `0-N`) on, at most ARGV[2] of them and about
# ARGV[3] bytes, keeping the frames whose event name (up to the first '|') is one of
# ARGV[4...] (all if none given). Answers {last event id read or nil, end reason or
# nil, the kept frames joined, 1 if more may be readable at once}: one reply per
# batch instead of one parsed reply per entry, which is what makes followers fast.
_READ_LUA = r"""
local entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', tonumber(ARGV[2]))
local max_bytes = tonumber(ARGV[3])
local wanted = nil
if #ARGV > 3 then
  wanted = {}
  for i = 4, #ARGV do wanted[ARGV[i]] = true end
end
local parts, size, last, ended, read = {}, 0, false, false, 0
for _, entry in ipairs(entries) do
  local id, fields = entry[1], entry[2]
  local values = {}
  for i = 1, #fields, 2 do values[fields[i]] = fields[i + 1] end
  if string.sub(id, 1, 2) ~= '0-' then
    ended = values['end'] or ''
    break
  end
  last = id
  read = read + 1
  if wanted == nil or wanted[string.match(values['n'], '^[^|]*')] then
    parts[#parts + 1] = values['f']
    size = size + #values['f']
    if size >= max_bytes then break end
  end
end
local more = 0
if ended == false and (read >= tonumber(ARGV[2]) or size >= max_bytes) then more = 1 end
return {last, ended, table.concat(parts), more}
"""


class StreamState(enum.Enum):
    MISSING = "missing"  # never written, or ended and expired (the store knows which)
    LIVE = "live"  # has events, no end yet
    ENDED = "ended"  # the end marker is there: nothing will ever be added


# The three exceptions below are signals between the stream code and its callers,
# not errors a client is answered with (so not in runlane.errors' tree): an append's
# refusal steers the forwarder, and StreamUnavailable ends an SSE response whose
# headers are long sent (the client resumes with Last-Event-ID).


class StreamEnded(Exception):
    """An append was refused: the run's stream has ended."""


class StreamGone(Exception):
    """An append was refused: the stream is missing and the batch does not start at
    id 1 (it ended and expired, or Redis lost it)."""


class StreamUnavailable(Exception):
    """Redis stayed unreachable for longer than a follower waits."""


class ForwardOutcome(enum.Enum):
    ENDED = "ended"  # every frame, then the end marker, is in Redis
    REFUSED = "refused"  # someone else ended the stream first (a reaper): the rest was refused
    GONE = "gone"  # the stream vanished under the forwarder (expired/lost): stopped
    LOST = "lost"  # Redis was unreachable too long: some frames never reached it
    STOPPED = "stopped"  # the bridge was closed before the run's log was
    DETACHED = "detached"  # told not to end the stream (fenced owner): the run's finisher does


def _ms(seconds: float | None) -> int:
    return 0 if not seconds or seconds <= 0 else max(1, int(seconds * 1000))


class RedisRunStreams:
    """The run streams in Redis: append, end, state, follow. Any process may use any
    run's stream; nothing here is per-worker state but the connections.

    Connections: a pool for writes and short reads (`max_connections`), a pool for
    followers' replay reads (`max_read_connections`), both waiting up to
    `socket_timeout` for a free connection rather than failing, and the tail's one
    connection (`redis_tail.StreamTail`): a follower that caught up waits in the
    worker's single `XREAD BLOCK` (at most `max_block` seconds at a time), never on a
    connection of its own. Followers replay with a script that filters by mode and
    joins the frames in Redis, so a batch of a thousand events is one reply to parse,
    not thousands. Responses are RESP2, whatever the client's default protocol."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "runlane",
        ended_ttl: float = 3600.0,
        live_ttl: float | None = 86400.0,
        max_block: float = 5.0,
        read_count: int = 1000,
        read_bytes: int = 1 << 20,
        reconnect_for: float = 30.0,
        orphan_grace: float = 10.0,
        socket_timeout: float = 5.0,
        max_connections: int = 32,
        max_read_connections: int = 32,
        tail_interval: float = 0.005,
        append_interval: float = 0.005,
    ) -> None:
        self.prefix = prefix
        self.ended_ttl = ended_ttl
        self.live_ttl = live_ttl
        self.max_block = max_block
        self.read_count = read_count
        self.read_bytes = read_bytes
        self.reconnect_for = reconnect_for
        self.orphan_grace = orphan_grace
        # Explicit pool sizes, and pools that wait for a free connection (up to
        # socket_timeout) rather than fail: no command holds a connection for long
        # (followers block on the tail's own connection, not on these), so a few
        # dozen serve any number of runs and followers.
        self.client: Redis = Redis(connection_pool=BlockingConnectionPool.from_url(
            url, protocol=2, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout,
            max_connections=max_connections, timeout=socket_timeout,
        ))
        self.reader: Redis = Redis(connection_pool=BlockingConnectionPool.from_url(
            url, protocol=2, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout,
            max_connections=max_read_connections, timeout=socket_timeout,
        ))
        self.tail = StreamTail(url, self.client, max_block=max_block,
                               socket_timeout=socket_timeout, count=read_count,
                               min_interval=tail_interval)
        # Appends of all runs, coalesced per tick (`append_interval`).
        self._appends = AppendBatcher(self.client, live_ttl_ms=_ms(live_ttl),
                                      interval=append_interval)
        self._end_script = self.client.register_script(_END_LUA)
        self._read_script = self.reader.register_script(_READ_LUA)

    def key(self, run_id: str) -> str:
        return f"{self.prefix}:run:{run_id}:events"

    async def aclose(self) -> None:
        await self._appends.aclose()
        await self.tail.aclose()
        await self.client.aclose()
        await self.client.connection_pool.disconnect()
        await self.reader.aclose()
        await self.reader.connection_pool.disconnect()

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except REDIS_FAILURES:
            return False

    # ---------------------------------------------------------------- writing

    async def append(self, run_id: str, first_id: int, events: Sequence[tuple[str, bytes]]) -> int:
        """Store `events` (name, encoded SSE frame) as ids first_id, first_id + 1 ...
        in one atomic call; ids already stored are skipped. Returns the stream's last
        event id afterwards (less than first_id + len(events) - 1 means a gap: resend
        from there). Raises StreamEnded / StreamGone when refused."""
        last = await self._appends.append(self.key(run_id), first_id, events)
        if last == -1:
            raise StreamEnded(run_id)
        if last == -2:
            raise StreamGone(run_id)
        return last

    async def publish(self, run_id: str, event_id: int, event: str, data: object) -> int:
        """Append one event with a known id (encoded as the local log would)."""
        payload = data if isinstance(data, bytes) else dumps(data)
        frame = b"event: %s\ndata: %s\nid: %d\n\n" % (event.encode(), payload, event_id)
        return await self.append(run_id, event_id, [(event, frame)])

    async def end(
        self,
        run_id: str,
        *,
        final_event: tuple[str, object] | None = None,
        reason: str = "",
        ttl: float | None = None,
        shorten_ttl: bool = False,
    ) -> bool:
        """Append the end marker (after `final_event`, if given, as the next event id),
        and set the TTL. Idempotent, atomic, callable by any process: True if this
        call ended the stream, False if it had already ended (then nothing is
        appended; with `shorten_ttl` the TTL is set again). Ending a missing stream
        creates it with only the end, so waiting followers wake up."""
        name, data = "", b""
        if final_event is not None:
            name = final_event[0]
            data = final_event[1] if isinstance(final_event[1], bytes) else dumps(final_event[1])
        result = await self._end_script(
            keys=[self.key(run_id)],
            args=[_ms(self.ended_ttl if ttl is None else ttl), reason, name, data,
                  "1" if shorten_ttl else "0"],
        )
        return int(result) == 1

    async def discard(self, run_id: str, ttl: float = 60.0) -> None:
        """A deleted run: end its stream (followers stop) and let it expire soon."""
        await self.end(run_id, ttl=ttl, shorten_ttl=True)

    # ---------------------------------------------------------------- reading

    async def state(self, run_id: str) -> StreamState:
        top = await self.client.xrevrange(self.key(run_id), count=1)
        if not top:
            return StreamState.MISSING
        return StreamState.ENDED if top[0][0] == END_ID else StreamState.LIVE

    async def last_event_id(self, run_id: str) -> int:
        """The id of the last event stored (0 if none), ended or not."""
        # Ids are bytes: the client does not decode answers (which its types cannot see).
        entries = cast("list[tuple[bytes, Any]]",
                       await self.client.xrevrange(self.key(run_id), count=2))
        for entry_id, _ in entries:
            if entry_id != END_ID:
                return int(entry_id.split(b"-", 1)[1])
        return 0

    async def wait_ended(self, run_id: str, timeout: float | None = None) -> bool:
        """Wait until the run's stream has its end marker: True, or False after
        `timeout` seconds (also when Redis is unreachable: then re-check the store)."""
        key = self.key(run_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        failing = False
        sub: Subscription | None = None
        try:
            while True:
                block = self.max_block
                if deadline is not None:
                    block = min(block, deadline - time.monotonic())
                    if block <= 0:
                        return False
                if sub is None:
                    sub = self.tail.subscribe(key, parse_id(AFTER_ALL_EVENTS))
                try:
                    entries = await sub.next(block)
                except TRANSIENT_ERRORS as exc:
                    sub.close()
                    sub = None
                    if not failing:
                        failing = True
                        log.warning("waiting for the end of run %s: Redis unreachable (%s)",
                                    run_id, exc)
                    await asyncio.sleep(min(1.0, max(0.0, block)))
                    continue
                failing = False
                if entries:
                    return True
        finally:
            if sub is not None:
                sub.close()

    async def follow(  # noqa: C901 - replay, live tail, retries and the orphan end
        self,
        run_id: str,
        after: int = 0,
        modes: frozenset[str] | None = None,
        heartbeat: float | None = HEARTBEAT_SECONDS,
        *,
        wait_for_start: bool = True,
        run_finished: Callable[[], Awaitable[bool]] | None = None,
    ) -> AsyncIterator[bytes]:
        """Yield batches of SSE frames with id > `after`, live, until the end marker,
        exactly like `RunEventLog.follow` (same frames, same `modes` filtering, a
        `: heartbeat` comment after `heartbeat` idle seconds).

        A missing stream is waited for (a pending run's events start later), unless
        `wait_for_start` is false: then the follow ends at once (a finished run whose
        stream expired). `run_finished` (e.g. "is the run terminal in the store?")
        lets the follower end an orphaned stream: see the module docstring.

        Redis errors are retried for `reconnect_for` seconds (resuming exactly where
        the follow was), then raise StreamUnavailable; so does the start check when
        `wait_for_start` is false and Redis is unreachable."""
        key = self.key(run_id)
        after = max(after, 0)
        # Mode filtering happens in Redis: only the wanted frames travel.
        wanted: list[str] = sorted(modes) if modes is not None else []
        if modes is not None and not modes:
            wanted = [""]  # no mode at all: matches no event name (names are never empty)
        if not wait_for_start:
            try:
                if not await self.client.exists(key):
                    return
            except TRANSIENT_ERRORS as exc:
                raise StreamUnavailable(f"Redis unreachable: {exc}") from exc
        last_activity = time.monotonic()  # last data or heartbeat sent
        finished_seen: float | None = None  # when run_finished first said yes
        next_check = last_activity + self.orphan_grace
        failing_since: float | None = None
        backoff = Backoff(f"following run {run_id} in Redis", log, initial=0.05, cap=1.0,
                          recovered_level=logging.INFO)
        drained = False  # True once a read came back with nothing more to read now
        # Live tail: the worker's one blocking read hands this follower the entries
        # after `after` (subscribed once drained, kept while it keeps up).
        sub: Subscription | None = None
        wanted_names = None if modes is None else frozenset(n.encode() for n in wanted)
        try:
            while True:
                try:
                    if not drained:
                        last, ended, data, more = await self._read_script(
                            keys=[key],
                            args=[b"0-%d" % (after + 1), self.read_count, self.read_bytes,
                                  *wanted],
                        )
                        if failing_since is not None:
                            failing_since = None
                            backoff.succeeded()
                        if data:
                            yield data
                            last_activity = time.monotonic()
                        if last is not None or ended is not None:  # progress: writer alive
                            finished_seen = None
                            next_check = time.monotonic() + self.orphan_grace
                        if last is not None:
                            after = int(last.split(b"-", 1)[1])
                        if ended is not None:
                            if ended and (modes is None or "error" in modes):
                                yield INCOMPLETE_FRAME
                            return
                        drained = not more
                        continue
                    now = time.monotonic()
                    block = self.max_block
                    if heartbeat is not None:
                        block = min(block, heartbeat - (now - last_activity))
                    if run_finished is not None:
                        block = min(block, next_check - now)
                    if sub is None:
                        sub = self.tail.subscribe(key, (0, after))
                    entries = await sub.next(block)
                    if failing_since is not None:
                        failing_since = None
                        backoff.succeeded()
                except TRANSIENT_ERRORS as exc:
                    if sub is not None:  # resubscribed from `after` once Redis answers
                        sub.close()
                        sub = None
                        drained = False
                    now = time.monotonic()
                    if failing_since is None:
                        failing_since = now
                    delay = backoff.failed(exc)
                    if now - failing_since > self.reconnect_for:
                        raise StreamUnavailable(
                            f"Redis unreachable for {self.reconnect_for:.0f}s "
                            f"while following run {run_id}"
                        ) from exc
                    if heartbeat is not None and now - last_activity >= heartbeat:
                        yield HEARTBEAT
                        last_activity = now
                    await asyncio.sleep(delay)
                    continue
                if sub is not None and sub.lagging and not entries:
                    sub, drained = None, False  # a slow client: read on at its own pace
                    continue
                if entries:
                    data, after, ended = _frames(entries, after, wanted_names)
                    if data:
                        yield data
                        last_activity = time.monotonic()
                    finished_seen = None
                    next_check = time.monotonic() + self.orphan_grace
                    if ended is not None:
                        if ended and (modes is None or "error" in modes):
                            yield INCOMPLETE_FRAME
                        return
                    continue
                now = time.monotonic()
                if heartbeat is not None and now - last_activity >= heartbeat:
                    yield HEARTBEAT
                    last_activity = now
                if run_finished is not None and now >= next_check:
                    next_check = now + self.orphan_grace
                    try:
                        finished = await run_finished()
                    except Exception:
                        log.exception("run_finished check for run %s failed", run_id)
                        finished = False
                    if not finished:
                        finished_seen = None
                    elif finished_seen is None:
                        finished_seen = time.monotonic()
                    else:
                        log.warning(
                            "run %s is finished but its event stream has no end after %.0fs "
                            "of silence: ending it (orphaned)", run_id, self.orphan_grace,
                        )
                        try:
                            await self.end(run_id, reason="orphaned")
                        except TRANSIENT_ERRORS:
                            pass  # the tail's next read fails too, and is retried
        finally:
            if sub is not None:
                sub.close()


def _frames(entries: list[Entry], after: int, wanted: frozenset[bytes] | None
            ) -> tuple[bytes, int, bytes | None]:
    """What the tail read for a follower: (the frames it wants, joined; the last event
    id read; the end reason if the end marker was read, else None). As the read script
    does in Redis: filter by event name (up to the first '|'), stop at the end."""
    parts: list[bytes] = []
    for (ms, seq), fields in entries:
        if ms != 0:  # the end marker: `1-0`
            return b"".join(parts), after, fields.get(b"end", b"")
        after = seq
        if wanted is None or fields.get(b"n", b"").split(b"|", 1)[0] in wanted:
            parts.append(fields.get(b"f", b""))
    return b"".join(parts), after, None


class _Forwarder:
    """Sends one run's local log to its Redis stream, in order, in batches."""

    def __init__(self, bridge: RedisEventBridge, run_id: str, event_log: RunEventLog) -> None:
        self.bridge = bridge
        self.run_id = run_id
        self.log = event_log
        self.position = 0  # ids 1..position are in Redis
        self.write_end = True
        self.task: asyncio.Task[ForwardOutcome] | None = None

    async def run(self) -> ForwardOutcome:
        try:
            return await self._run()
        except asyncio.CancelledError:
            return ForwardOutcome.STOPPED
        except Exception:
            log.exception("forwarding the events of run %s to Redis failed", self.run_id)
            return ForwardOutcome.LOST
        finally:
            if self.bridge._forwarders.get(self.run_id) is self:
                del self.bridge._forwarders[self.run_id]

    # Over the complexity ceiling: forwarding, with retries and a backlog cap.
    async def _run(self) -> ForwardOutcome:  # noqa: C901
        streams, bridge, event_log = self.bridge.streams, self.bridge, self.log
        failing_since: float | None = None
        backoff = Backoff(f"run {self.run_id}: relaying its events to Redis", log,
                          initial=bridge.retry_initial, cap=bridge.retry_max)
        warned_ahead = False
        while True:
            end = len(event_log.frames)
            if self.position >= end:
                if event_log.closed:
                    break
                await event_log._wait_change(None)  # same package: the log's change signal
                continue
            if failing_since is not None and end - self.position > bridge.max_backlog:
                log.error(
                    "run %s: %d events not yet in Redis (max_backlog %d): giving up relaying "
                    "its events to other workers from id %d on",
                    self.run_id, end - self.position, bridge.max_backlog, self.position + 1,
                )
                return await self._finish_lost()
            first = self.position + 1
            batch: list[tuple[str, bytes]] = []
            size = 0
            stop = min(end, self.position + bridge.max_batch)
            for name, frame in zip(
                event_log.names[self.position:stop], event_log.frames[self.position:stop],
                strict=True,
            ):
                batch.append((name, frame))
                size += len(frame)
                if size >= bridge.max_batch_bytes:
                    break
            try:
                last = await streams.append(self.run_id, first, batch)
            except StreamEnded:
                log.warning(
                    "run %s: its stream was ended by another worker; events from id %d on "
                    "were refused", self.run_id, first,
                )
                return ForwardOutcome.REFUSED
            except StreamGone:
                log.error("run %s: its Redis stream is gone; stopped relaying its events",
                          self.run_id)
                return ForwardOutcome.GONE
            except REDIS_FAILURES as exc:
                now = time.monotonic()
                if failing_since is None:
                    failing_since = now
                delay = backoff.failed(exc)
                if event_log.closed and now - failing_since > bridge.give_up_after:
                    log.error(
                        "run %s: Redis unreachable for %.0fs; events from id %d on cannot be "
                        "replayed on other workers", self.run_id, now - failing_since, first,
                    )
                    return await self._finish_lost()
                await asyncio.sleep(delay)
                continue
            backoff.succeeded()
            failing_since = None
            if last > len(event_log.frames) and not warned_ahead:
                warned_ahead = True
                log.warning("run %s: its Redis stream has more events (%d) than this worker "
                            "published (%d): another writer?", self.run_id, last,
                            len(event_log.frames))
            self.position = last
        # Drained and closed: the end marker.
        if not self.write_end:
            return ForwardOutcome.DETACHED
        if await self._end(reason=""):
            return ForwardOutcome.ENDED
        return ForwardOutcome.LOST

    async def _finish_lost(self) -> ForwardOutcome:
        await self.log.wait_closed()
        if self.write_end:
            await self._end(reason="lost")
        return ForwardOutcome.LOST

    async def _end(self, reason: str) -> bool:
        bridge = self.bridge
        deadline = time.monotonic() + bridge.give_up_after
        backoff = Backoff(f"run {self.run_id}: writing the end of its stream to Redis", log,
                          initial=bridge.retry_initial, cap=bridge.retry_max)
        while True:
            try:
                await bridge.streams.end(self.run_id, reason=reason)
                return True
            except REDIS_FAILURES as exc:
                if time.monotonic() >= deadline:
                    log.error(
                        "run %s: could not write the end of its event stream to Redis (%s); "
                        "followers on other workers end when they see the run finished",
                        self.run_id, exc,
                    )
                    return False
                await backoff.wait(exc)


class RedisEventBridge:
    """What a worker uses in scale-out mode.

    - `forward(run_id, event_log)`: for a run executing on this worker, relay its
      local log to Redis in order and end the stream when the log closes.
    - `end(run_id, ...)`: end the stream of a run this worker finishes without
      executing it (a reaped run of a dead owner, a cancelled pending run).
    - `follow(...)`, `state(...)`, `wait_ended(...)`: serve followers of runs
      executing anywhere.
    """

    def __init__(
        self,
        url: str | RedisRunStreams = "redis://127.0.0.1:6379/0",
        *,
        max_batch: int = 512,
        max_batch_bytes: int = 1 << 20,
        max_backlog: int = 100_000,
        give_up_after: float = 30.0,
        retry_initial: float = 0.05,
        retry_max: float = 1.0,
        **streams_options: Any,
    ) -> None:
        self.streams = url if isinstance(url, RedisRunStreams) else RedisRunStreams(
            url, **streams_options
        )
        self.max_batch = max_batch
        self.max_batch_bytes = max_batch_bytes
        self.max_backlog = max_backlog
        self.give_up_after = give_up_after
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self._forwarders: dict[str, _Forwarder] = {}

    # ------------------------------------------------------------- publishing

    def forward(self, run_id: str, event_log: RunEventLog) -> asyncio.Task[ForwardOutcome]:
        """Start relaying `event_log` (the run's local log, from its first frame) to
        Redis. Returns at once; never blocks the graph. Calling it again for a run
        already being forwarded returns the same task."""
        forwarder = self._forwarders.get(run_id)
        if forwarder is not None and forwarder.log is event_log and forwarder.task is not None:
            return forwarder.task
        forwarder = _Forwarder(self, run_id, event_log)
        self._forwarders[run_id] = forwarder
        forwarder.task = asyncio.create_task(forwarder.run(), name=f"runlane-forward-{run_id}")
        return forwarder.task

    def detach(self, run_id: str) -> None:
        """This worker stops owning the run without finishing it (fenced: its lease
        ran out, or settling failed): the forwarder still relays what the log holds
        (the stream refuses it once ended) but never writes the end; the worker that
        records the run's final status does (`end`). Call before closing the log."""
        forwarder = self._forwarders.get(run_id)
        if forwarder is not None:
            forwarder.write_end = False

    def forwarding(self, run_id: str) -> bool:
        return run_id in self._forwarders

    async def flushed(self, run_id: str) -> ForwardOutcome | None:
        """Wait until the run's forwarder is done (its log closed and relayed)."""
        forwarder = self._forwarders.get(run_id)
        if forwarder is None or forwarder.task is None:
            return None
        return await asyncio.shield(forwarder.task)

    async def end(
        self, run_id: str, *, error: object | None = None, reason: str = ""
    ) -> bool:
        """End a run's stream from any worker (idempotent): with `error`, an `error`
        event carrying it is appended first (once, by whichever call ends it).
        Not for runs this worker forwards: close their local log instead."""
        final = None if error is None else ("error", error)
        return await self.streams.end(run_id, final_event=final, reason=reason)

    async def discard(self, run_id: str) -> None:
        await self.streams.discard(run_id)

    # -------------------------------------------------------------- following

    def follow(
        self,
        run_id: str,
        after: int = 0,
        modes: frozenset[str] | None = None,
        heartbeat: float | None = HEARTBEAT_SECONDS,
        *,
        wait_for_start: bool = True,
        run_finished: Callable[[], Awaitable[bool]] | None = None,
    ) -> AsyncIterator[bytes]:
        return self.streams.follow(
            run_id, after, modes, heartbeat,
            wait_for_start=wait_for_start, run_finished=run_finished,
        )

    async def state(self, run_id: str) -> StreamState:
        return await self.streams.state(run_id)

    async def wait_ended(self, run_id: str, timeout: float | None = None) -> bool:
        return await self.streams.wait_ended(run_id, timeout)

    async def ping(self) -> bool:
        return await self.streams.ping()

    # -------------------------------------------------------------- lifecycle

    async def aclose(self, timeout: float = 5.0) -> None:
        """Let forwarders of closed logs drain (at most `timeout` seconds), stop the
        rest, close the connections."""
        tasks = [f.task for f in self._forwarders.values() if f.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        await self.streams.aclose()

