"""A worker's appends to its runs' Redis streams, coalesced: the batches every run's
forwarder hands over within one tick go to Redis in one script call.

A run streaming tokens slower than Redis answers (a model's 20 to 50 tokens a second)
sent one `EVALSHA` per token; a worker carrying many such runs sent thousands a
second, each a round trip with its own syscalls on both sides. Here one call carries
the pending batches of every run (one per run: a forwarder has one append in flight),
at most one call in flight per worker, spaced by `interval` so that a call collects
what all runs produced meanwhile. Each run's batch is checked and appended exactly as
the single-run append script does (`_APPEND_MANY_LUA`, atomic as a whole), and each
forwarder gets its own answer, so what followers and replays see is unchanged.

The keys of one call must live on one Redis server (runlane uses one Redis; a
sharded deployment would batch per shard)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

# For each key i: ARGV carries first id, count, then count (name, frame) pairs; ARGV[1]
# is live_ttl_ms. Answers, per key, what the single-run append answers: the stream's
# last event id after the call, -1 if it has ended, -2 if missing and first > 1.
_APPEND_MANY_LUA = r"""
local live_ttl = tonumber(ARGV[1])
local pos = 2
local out = {}
for k = 1, #KEYS do
  local key = KEYS[k]
  local first = tonumber(ARGV[pos])
  local count = tonumber(ARGV[pos + 1])
  pos = pos + 2
  local result = nil
  local last = 0
  local top = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  if #top == 0 then
    if first ~= 1 then result = -2 end
  else
    local id = top[1][1]
    if string.sub(id, 1, 2) ~= '0-' then
      result = -1
    else
      last = tonumber(string.sub(id, 3))
    end
  end
  if result == nil then
    if first <= last + 1 then
      for i = 0, count - 1 do
        local id = first + i
        if id > last then
          redis.call('XADD', key, string.format('0-%d', id), 'n', ARGV[pos + 2 * i],
                     'f', ARGV[pos + 2 * i + 1])
          last = id
        end
      end
      if live_ttl > 0 then redis.call('PEXPIRE', key, live_ttl) end
    end
    result = last
  end
  pos = pos + 2 * count
  out[k] = result
end
return out
"""

_Pending = tuple[str, int, Sequence[tuple[str, bytes]], "asyncio.Future[int]"]


class AppendBatcher:
    """Coalesces appends (see the module docstring). `max_keys` bounds one call (a
    run's own batch is bounded by its forwarder)."""

    def __init__(self, client: Redis, *, live_ttl_ms: int, interval: float = 0.005,
                 max_keys: int = 256) -> None:
        self._script = client.register_script(_APPEND_MANY_LUA)
        self.live_ttl_ms = live_ttl_ms
        self.interval = interval
        self.max_keys = max_keys
        self._pending: list[_Pending] = []
        self._task: asyncio.Task[None] | None = None
        self._last_sent = 0.0

    async def append(self, key: str, first_id: int,
                     events: Sequence[tuple[str, bytes]]) -> int:
        """The stream's last event id after appending (as the single-run script
        answers); raises what the call raised (every batch of a failed call does)."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((key, first_id, events, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._send_all(), name="runlane-redis-appends")
        return await future

    async def _send_all(self) -> None:
        while self._pending:
            wait = self._last_sent + self.interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            batch, self._pending = (self._pending[:self.max_keys],
                                    self._pending[self.max_keys:])
            batch = [item for item in batch if not item[3].done()]  # its waiter left
            if batch:
                self._last_sent = time.monotonic()
                await self._send(batch)

    async def _send(self, batch: list[_Pending]) -> None:
        args: list[Any] = [self.live_ttl_ms]
        for _key, first, events, _future in batch:
            args += (first, len(events))
            for name, frame in events:
                args += (name, frame)
        try:
            answers = await self._script(keys=[item[0] for item in batch], args=args)
        except asyncio.CancelledError:
            for *_rest, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - each waiter gets it, and retries
            for *_rest, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (*_rest, future), answer in zip(batch, answers, strict=True):
            if not future.done():
                future.set_result(int(answer))

    async def aclose(self) -> None:
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for *_rest, future in self._pending:
            if not future.done():
                future.cancel()
        self._pending.clear()
