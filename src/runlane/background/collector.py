"""The process's garbage-collection policy: young collections less often, full ones
only when the old generation has really grown.

A server carrying hundreds of streaming agent runs keeps a few hundred thousand
container objects alive (the runs' messages, chunks, tasks, callback managers: about a
thousand per run, most of them langchain's), and allocates and frees many more per
token. With CPython's defaults (thresholds 700, 10, 10) that load cost it about a
quarter of its CPU in the collector, and its full collections stopped the event loop
for 100 to 250 ms at K=200 to 300 runs, a pause every stream saw as one late token:
the p99 gap between tokens was set by the collector (benchmarks/agent_load.py;
docs/performance.md, the agent workload).

- Young collections every `YOUNG` allocations instead of 700: most of a token's
  objects die before the collection that would have walked them (a young collection
  is cheap, and still bounded: a few milliseconds).
- CPython (3.11) starts a full collection after ten middle ones once the objects
  *promoted* to the old generation since the last full one exceed a quarter of it.
  Objects of a run live its whole stream, so they are promoted, then freed by reference
  counting when the run ends: the count grows, the old generation does not, and a full
  collection (a pause proportional to everything alive) ran every few seconds for
  nothing. Here automatic full collections are off, and this task, every `period`
  seconds, measures the memory the process holds beyond its start-up (small-object
  blocks, `sys.getallocatedblocks`, cheap to read: counting the old generation's objects
  walked all of them, tens of milliseconds with the event loop stopped, every second,
  at a few hundred streaming runs) and collects fully
  once it has grown by as much as it held after the last full collection (at least
  `floor` blocks): the garbage it can hold is bounded by what is alive, as CPython
  bounds it, but by what is really there. A process gone quiet (no young collection
  since the last check) collects whatever it gained: a pause nobody waits on, and an
  idle server holds no garbage.
- A full collection that freed less than a quarter of the growth that started it found
  the growth alive (runs starting: a few hundred streams ramping up doubled the live
  set several times, each doubling a full collection that found next to nothing): the
  next one then waits for twice as much growth, up to `MAX_STRETCH` times; one that
  freed more brings the bound back to the live set.

Objects alive after start-up are frozen out of every collection (`freeze_startup`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys

from runlane.loop_task import LoopTask

log = logging.getLogger("runlane.collector")

YOUNG = 10_000  # allocations between young collections (CPython: 700)
MIDDLE = 10  # young collections per middle one (CPython's)
NEVER = 1 << 30  # middle collections per full one: full ones are this task's
QUIET_GROWTH = 3_000  # blocks gained: collected once quiet
MAX_STRETCH = 8  # the most the growth bound is stretched after fruitless collections


def freeze_startup() -> None:
    """Move everything alive after start-up (modules, graphs, the app: ~180k objects)
    out of the garbage collector's reach. They live as long as the process, yet every
    full collection would walk them all again: tens of milliseconds with the event
    loop stopped, which surfaced as the tail of cancel and request latencies."""
    gc.collect()
    gc.freeze()


# The collectors started in this process and not stopped (tests run several workers in
# one process), and the thresholds the first one found: restored when the last stops.
_running: list[Collector] = []
_saved: list[tuple[int, int, int]] = []


def _young_collections() -> int:
    """Collections of the young and middle generations so far (explicit ones too)."""
    stats = gc.get_stats()
    return int(stats[0]["collections"] + stats[1]["collections"])


class Collector(LoopTask):
    """Owns the process's collection thresholds while it runs (see the module)."""

    task_name = "runlane-collector"

    def __init__(self, *, period: float = 1.0, floor: int = 60_000) -> None:
        super().__init__()
        self.period = period
        self.floor = floor  # small-object blocks
        self.full_collections = 0
        self._startup = 0  # blocks alive once start-up was frozen
        self._base = 0  # blocks beyond start-up after the last full collection
        self._stretch = 1  # growth bound = stretch x base (see the module)
        self._young_seen = 0  # young collections counted at the last check

    def start(self) -> None:
        """Freeze what is alive (see freeze_startup), then apply the policy."""
        freeze_startup()
        if not _running:  # the first of this process's workers: keep CPython's own
            _saved.append(gc.get_threshold())
        _running.append(self)
        gc.set_threshold(YOUNG, MIDDLE, NEVER)
        self._startup = sys.getallocatedblocks()
        self._base = 0
        self._young_seen = _young_collections()
        super().start()

    def _held(self) -> int:
        """Small-object blocks held beyond start-up."""
        return max(sys.getallocatedblocks() - self._startup, 0)

    async def stop(self) -> None:
        await super().stop()
        if self in _running:
            _running.remove(self)
            if not _running and _saved:  # the last one: the process's own thresholds back
                gc.set_threshold(*_saved.pop())

    def check(self) -> bool:
        """Collect fully if the memory held grew enough; whether it did."""
        young = _young_collections()
        quiet, self._young_seen = young == self._young_seen, young
        held = self._held()
        grown = held - self._base
        bound = max(self._base * self._stretch, self.floor)
        if grown < (QUIET_GROWTH if quiet else bound):
            return False
        gc.collect()
        self.full_collections += 1
        self._base = self._held()
        if not quiet:
            freed = held - self._base
            self._stretch = (min(self._stretch * 2, MAX_STRETCH) if 4 * freed < grown
                             else 1)
        return True

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            try:
                self.check()
            except Exception:  # never stop the policy over one failed check
                log.exception("garbage collection check failed")
