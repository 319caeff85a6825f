"""RunEventLog.wait_closed: how waiters for a run's end (wait, join, cancel with
wait=true) are woken. The end-to-end behaviour is in test_cancel_contract and
test_join_wait; these pin the mechanics the latency depends on."""

from __future__ import annotations

import asyncio

from runlane.streams.local import HEARTBEAT, RunEventLog


async def test_waiter_resumes_in_the_loop_turn_right_after_close() -> None:
    """Ahead of anything the closing code scheduled after the close (the settle's
    supervisor wakes the dispatcher, whose claim would otherwise run first)."""
    log = RunEventLog()
    order: list[str] = []

    async def waiter() -> None:
        await log.wait_closed()
        order.append("waiter")

    task = asyncio.create_task(waiter())
    await asyncio.sleep(0)  # the waiter is waiting
    log.close()
    asyncio.get_running_loop().call_soon(order.append, "scheduled after the close")
    await task
    assert order == ["waiter", "scheduled after the close"]


async def test_close_wakes_every_waiter_and_a_closed_log_does_not_block() -> None:
    log = RunEventLog()
    waiters = [asyncio.create_task(log.wait_closed()) for _ in range(3)]
    await asyncio.sleep(0)
    log.close()
    await asyncio.wait_for(asyncio.gather(*waiters), 1)
    await asyncio.wait_for(log.wait_closed(), 1)


async def test_a_waiter_that_times_out_leaves_the_others_waiting() -> None:
    log = RunEventLog()
    patient = asyncio.create_task(log.wait_closed())
    for _ in range(3):  # as await_terminal does every recheck_seconds
        try:
            async with asyncio.timeout(0.01):
                await log.wait_closed()
        except TimeoutError:
            pass
    assert not patient.done()
    assert len(log._closers or []) == 1  # the timed-out waiters' futures are gone
    log.close()
    await asyncio.wait_for(patient, 1)


async def test_the_settles_final_row_reaches_the_waiters_only() -> None:
    """The settle that recorded the run's end closes the log with the terminal row:
    its waiters answer with it instead of reading it back. A waiter arriving after
    the close, or a close without a row, gets None (it reads the store)."""
    log = RunEventLog()
    waiters = [asyncio.create_task(log.wait_closed()) for _ in range(2)]
    await asyncio.sleep(0)
    row = {"run_id": "r", "status": "interrupted"}
    log.close(final=row)
    assert await asyncio.gather(*waiters) == [row, row]
    assert await log.wait_closed() is None
    other = RunEventLog()
    waiter = asyncio.create_task(other.wait_closed())
    await asyncio.sleep(0)
    other.close()
    assert await waiter is None


async def test_heartbeats_come_only_after_a_quiet_interval() -> None:
    """A follower gets `: heartbeat` once `heartbeat` seconds passed without a frame
    (frames coming faster than that push it back), then one per quiet interval, and
    the last frames and the end after them."""
    log = RunEventLog()
    got: list[bytes] = []

    async def follow() -> None:
        async for chunk in log.follow(heartbeat=0.2):
            got.append(chunk)

    task = asyncio.create_task(follow())
    for i in range(10):  # 0.5 s of frames 0.05 s apart: never quiet for 0.2 s
        log.publish("values", {"i": i})
        await asyncio.sleep(0.05)
    assert got and all(b"heartbeat" not in chunk for chunk in got)
    sent = len(got)
    await asyncio.sleep(0.5)  # quiet: two heartbeats (at about 0.2 and 0.4 s)
    assert got[sent:] == [HEARTBEAT, HEARTBEAT]
    log.publish("values", {"i": 10})
    log.close()
    await asyncio.wait_for(task, 1)
    assert got[-1].startswith(b"event: values\ndata: {\"i\":10}")
    assert not log._waiters  # the heartbeats' waiters were not kept
