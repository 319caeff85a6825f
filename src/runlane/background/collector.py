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
  seconds, counts the old generation and collects it fully once it has grown by as
  much as it held after the last full collection (at least `floor` objects): the
  garbage it can hold is bounded by what is alive, as CPython bounds it, but by what
  is really there. A process gone quiet (no young collection since the last check)
  collects whatever its old generation gained: a pause nobody waits on, and an idle
  server holds no garbage.

Objects alive after start-up are frozen out of every collection (`freeze_startup`).
"""

from __future__ import annotations

import asyncio
import gc
import logging

from runlane.loop_task import LoopTask

log = logging.getLogger("runlane.collector")

YOUNG = 10_000  # allocations between young collections (CPython: 700)
MIDDLE = 10  # young collections per middle one (CPython's)
NEVER = 1 << 30  # middle collections per full one: full ones are this task's
QUIET_GROWTH = 1_000  # objects gained by the old generation: collected once quiet


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

    def __init__(self, *, period: float = 1.0, floor: int = 20_000) -> None:
        super().__init__()
        self.period = period
        self.floor = floor
        self.full_collections = 0
        self._base = 0  # objects in the old generation after the last full collection
        self._young_seen = 0  # young collections counted at the last check

    def start(self) -> None:
        """Freeze what is alive (see freeze_startup), then apply the policy."""
        freeze_startup()
        if not _running:  # the first of this process's workers: keep CPython's own
            _saved.append(gc.get_threshold())
        _running.append(self)
        gc.set_threshold(YOUNG, MIDDLE, NEVER)
        self._base = len(gc.get_objects(2))
        self._young_seen = _young_collections()
        super().start()

    async def stop(self) -> None:
        await super().stop()
        if self in _running:
            _running.remove(self)
            if not _running and _saved:  # the last one: the process's own thresholds back
                gc.set_threshold(*_saved.pop())

    def check(self) -> bool:
        """Collect fully if the old generation grew enough; whether it did."""
        young = _young_collections()
        quiet, self._young_seen = young == self._young_seen, young
        grown = len(gc.get_objects(2)) - self._base
        if grown < (QUIET_GROWTH if quiet else max(self._base, self.floor)):
            return False
        gc.collect()
        self.full_collections += 1
        self._base = len(gc.get_objects(2))
        return True

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            try:
                self.check()
            except Exception:  # never stop the policy over one failed check
                log.exception("garbage collection check failed")
