"""A run its worker stops without writing (fenced: its lease is gone, so another
worker records its end) must not end its followers' streams cleanly on this worker:
a clean end tells a client the stream is over, and it would never get the events the
run's recorder publishes afterwards (found by `make soak`: a reaper's error event
missing from a resumed stream). The stream is cut instead, so the client resumes
with Last-Event-ID."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fast.inprocess_worker import InProcessWorker
from runlane.streams.local import RunEventLog, StreamBroker, StreamCut


async def test_a_cut_log_gives_every_frame_then_stream_cut() -> None:
    log = RunEventLog()
    log.publish("metadata", {"run_id": "r"})
    frames: list[bytes] = []

    async def follow() -> None:
        async for batch in log.follow(heartbeat=None):
            frames.append(batch)

    follower = asyncio.create_task(follow())
    await asyncio.sleep(0)
    log.publish("values", {"n": 1})
    log.cut()
    with pytest.raises(StreamCut):
        await follower
    assert b"".join(frames).count(b"\nid: ") == 2
    assert log.cut_short and log.closed
    # A log closed with the run's end still ends cleanly.
    ended = RunEventLog()
    ended.close()
    assert [batch async for batch in ended.follow()] == []


async def test_the_broker_keeps_no_cut_log_for_replays() -> None:
    broker = StreamBroker()
    broker.open("r").publish("values", {"n": 1})
    broker.cut("r")
    assert broker.get("r") is None


async def test_a_fenced_runs_local_follower_is_cut_not_ended(tmp_path: Path) -> None:
    worker = await InProcessWorker(tmp_path, max_concurrency=2).start()
    try:
        run_id = await worker.create("a")
        await worker.wait_until_executing("a")
        frames = await worker.service.stream_run(worker.thread_ids["a"], run_id)
        seen: list[bytes] = []

        async def follow() -> None:
            async for batch in frames:
                seen.append(batch)

        follower = asyncio.create_task(follow())
        await asyncio.sleep(0.05)
        worker.executor.fence(run_id)  # its lease is gone: stop without writing
        with pytest.raises(StreamCut):
            await asyncio.wait_for(follower, 30)
        assert seen and b"event: metadata" in seen[0]
        assert await worker.status("a") == "running"  # its end is another's to record
    finally:
        await worker.executor.stop()
        await worker.store.close()
        await worker.checkpoints.close()
        await worker.items.close()
