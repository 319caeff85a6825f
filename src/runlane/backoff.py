"""Retrying while a service (PostgreSQL, Redis) is away: one policy for every loop.

A worker whose database or Redis is gone must neither spin (a loop that retries at
once, or every few milliseconds, with a traceback logged each time, costs a core for
as long as the outage lasts: a worker left behind by a test harness did so for an
hour) nor stay deaf for long once the service is back. Every retry loop of a worker
keeps one `Backoff`:

- `failed(exc)` after a failed attempt: the delay before the next one, doubling from
  `initial` up to `cap`, with jitter (half of it random: workers that lost the same
  service do not retry in lockstep, and the delay never falls below half the step).
  The first failure of an outage is logged once, as a warning naming what failed and
  why; the retries after it are logged at DEBUG only.
- `succeeded()` after an attempt that worked: if an outage was under way, one line
  says it is over (how long, how many attempts), and the next failure starts again
  from `initial`, so a short hiccup is retried at once.

The cap bounds how late a loop notices the service is back; the loops whose delay
would matter more (the dispatcher, the LISTEN connection) are also woken by the
events that signal a recovery.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable


class Backoff:
    def __init__(self, what: str, logger: logging.Logger, *, initial: float = 0.1,
                 cap: float = 2.0, factor: float = 2.0,
                 jitter: Callable[[], float] = random.random,
                 clock: Callable[[], float] = time.monotonic,
                 recovered_level: int = logging.WARNING) -> None:
        """`what` names the attempt in the log ("claiming runs"); `jitter` returns a
        number in [0, 1) (tests pass their own), `clock` a monotonic time;
        `recovered_level`: the level of the line saying an outage is over (lower for
        loops there can be many of, one per client stream)."""
        self.what = what
        self.log = logger
        self.initial = initial
        self.cap = cap
        self.factor = factor
        self.jitter = jitter
        self.clock = clock
        self.recovered_level = recovered_level
        self.failures = 0  # consecutive failed attempts (0: no outage under way)
        self.since: float | None = None  # when the outage began (its first failure)

    @property
    def failing(self) -> bool:
        return self.failures > 0

    def step(self) -> float:
        """The delay's upper bound after the failures so far (0 with none)."""
        if not self.failures:
            return 0.0
        return min(self.cap, self.initial * self.factor ** (self.failures - 1))

    def failed(self, exc: BaseException | str, *, trace: bool = False) -> float:
        """Record a failed attempt; the seconds to wait before the next one. `trace`:
        log the first failure's traceback (an unexpected error, not an outage)."""
        self.failures += 1
        if self.failures == 1:
            self.since = self.clock()
            self.log.warning("%s failed (%s); retrying with backoff (up to %.0fs apart) "
                             "until it works", self.what, _describe(exc), self.cap,
                             exc_info=trace and isinstance(exc, BaseException))
        else:
            self.log.debug("%s failed again (attempt %d: %s)", self.what, self.failures,
                           _describe(exc))
        step = self.step()
        return step / 2 + step / 2 * self.jitter()

    async def wait(self, exc: BaseException | str, *, trace: bool = False) -> None:
        """`failed`, then sleep its delay."""
        await asyncio.sleep(self.failed(exc, trace=trace))

    def succeeded(self) -> None:
        """Record an attempt that worked (ends an outage, logged once)."""
        if not self.failures:
            return
        lasted = self.clock() - (self.since if self.since is not None else self.clock())
        self.log.log(self.recovered_level, "%s works again after %.1fs (%d failed attempt(s))",
                     self.what, lasted, self.failures)
        self.failures = 0
        self.since = None


def _describe(exc: BaseException | str) -> str:
    if isinstance(exc, str):
        return exc
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
