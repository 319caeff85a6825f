"""The worker's garbage-collection policy (background/collector.py): no automatic full
collection, and a full one exactly when the memory held has really grown, so the
garbage it can hold stays bounded; stretched while full collections find the growth
alive."""

from __future__ import annotations

import asyncio
import gc

import pytest

from runlane.background.collector import MAX_STRETCH, MIDDLE, NEVER, YOUNG, Collector


class Node:
    """A reference cycle: only the collector frees it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def collector():
    saved = gc.get_threshold()
    made = Collector(period=3600.0, floor=8_000)

    async def start() -> None:
        made.start()

    loop = asyncio.new_event_loop()
    loop.run_until_complete(start())
    yield made
    loop.run_until_complete(made.stop())
    loop.close()
    assert gc.get_threshold() == saved  # stop gives the process its thresholds back


def test_thresholds_while_running(collector: Collector) -> None:
    assert gc.get_threshold() == (YOUNG, MIDDLE, NEVER)


async def test_two_workers_in_one_process_restore_the_thresholds_once_both_stopped(
        ) -> None:
    saved = gc.get_threshold()
    first, second = Collector(period=3600.0), Collector(period=3600.0)
    first.start()
    second.start()
    await first.stop()
    assert gc.get_threshold() == (YOUNG, MIDDLE, NEVER)  # the other one still runs
    await second.stop()
    assert gc.get_threshold() == saved


def test_full_collection_only_once_the_memory_held_doubled(collector: Collector) -> None:
    keep: list[list[object]] = []
    # Live objects promoted to the old generation: growth, but below the floor.
    keep.append([[] for _ in range(2_000)])
    gc.collect(1)
    assert not collector.check()
    assert collector.full_collections == 0
    # Garbage in cycles that reached the old generation: past the floor, collected.
    held: list[Node] = [Node() for _ in range(20_000)]
    gc.collect(1)  # promoted while still referenced
    held.clear()  # now unreachable cycles, in the old generation
    gc.collect(0)  # busy: the quiet rule does not apply
    before = len(gc.get_objects(2))
    assert collector.check()
    assert collector.full_collections == 1
    assert len(gc.get_objects(2)) < before - 19_000  # the cycles were freed
    assert keep


def test_a_quiet_process_collects_what_its_old_generation_gained(
        collector: Collector) -> None:
    keep = [[] for _ in range(5_000)]  # 5,000 blocks: past QUIET_GROWTH, below the floor
    gc.collect(1)
    assert not collector.check()  # busy (a collection ran since): below the floor
    assert collector.check()  # nothing ran since the last check: quiet
    assert collector.full_collections == 1
    assert not collector.check()  # nothing gained since
    assert keep


def test_growth_found_alive_stretches_the_bound_and_garbage_resets_it(
        collector: Collector) -> None:
    keep: list[list[object]] = []
    for stretch in (2, 4):
        # Live growth past the bound: collected, nothing freed, the bound doubles.
        bound = max(collector._base * collector._stretch, collector.floor)
        keep.append([[] for _ in range(bound + 1_000)])
        gc.collect(0)  # busy
        assert collector.check()
        assert collector._stretch == stretch
    base = collector._base
    # Growth past the live set but below the stretched bound: not collected.
    keep.append([[] for _ in range(base + 1_000)])
    assert base + 1_000 < 4 * base
    gc.collect(0)
    assert not collector.check()
    # Garbage cycles past the stretched bound: collected, and the bound is the live set.
    held: list[Node] = [Node() for _ in range(4 * collector._base)]
    gc.collect(1)
    held.clear()
    gc.collect(0)
    assert collector.check()
    assert collector._stretch == 1
    assert MAX_STRETCH >= 4
    assert keep
