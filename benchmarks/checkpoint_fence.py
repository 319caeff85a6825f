"""What fencing a run's checkpoint writes costs on PostgreSQL (store/checkpoint_fence.py):
the latency of the saver's `aput` and `aput_writes`, one at a time, as a run's
graph issues them, in three modes, interleaved round-robin so the machine's noise
falls on all alike:

- `none`: the saver without a fence (as before);
- `fenced`: runlane's fence: the clock check, and the guard statement at the end of
  the write's own pipeline (one implicit transaction: no round trip more);
- `extra-rtt`: for scale, the same guard sent as its own statement before the
  write, i.e. what one more round trip per write would cost.

    .venv/bin/python benchmarks/checkpoint_fence.py [--n 2000]

Needs the machine's PostgreSQL (RUNLANE_TEST_POSTGRES, as the tests); makes and
drops a database. Prints the median and p90 per mode, in microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from langgraph.checkpoint.base import empty_checkpoint  # noqa: E402

from cluster import create_database, drop_database  # noqa: E402
from fast.support import WORKER, admit_running, field, install_assistant  # noqa: E402
from runlane.store import Store  # noqa: E402
from runlane.store.checkpoint_fence import GUARD_SQL, WriteFence  # noqa: E402
from runlane.store.checkpoints import PostgresCheckpoints  # noqa: E402

MODES = ("none", "fenced", "extra-rtt")


async def write(saver: Any, run: Any, step: int, mode: str) -> float:
    config = {"configurable": {"thread_id": field(run, "thread_id"), "checkpoint_ns": "",
                               "run_id": field(run, "run_id")}}
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"messages": [f"message {step}"] * 4, "step": step}
    versions = {"messages": f"{step:032}.0", "step": f"{step:032}.0"}
    started = time.perf_counter()
    if mode == "extra-rtt":
        async with saver.conn.connection() as conn:
            await conn.execute(GUARD_SQL, (field(run, "run_id"), WORKER))
    saved = await saver.aput(config, checkpoint, {"run_id": field(run, "run_id")}, versions)
    saved["configurable"]["run_id"] = field(run, "run_id")
    await saver.aput_writes(saved, [("messages", ["reply"])], f"task-{step}")
    return time.perf_counter() - started


async def main(n: int) -> None:
    url = create_database()
    try:
        store = Store(url)
        await store.setup()
        await install_assistant(store)
        checkpoints = PostgresCheckpoints(store.db.url.set(drivername="postgresql")
                                          .render_as_string(hide_password=False))
        saver = await checkpoints.setup()
        fence = WriteFence(WORKER, lambda run_id: True, lambda run_id: None)
        runs = {mode: await admit_running(store) for mode in MODES}
        times: dict[str, list[float]] = {mode: [] for mode in MODES}
        for step in range(n + 50):
            for mode in MODES:
                saver.fence = fence if mode == "fenced" else None
                took = await write(saver, runs[mode], step, mode)
                if step >= 50:  # warm-up
                    times[mode].append(took)
        for mode in MODES:
            ordered = sorted(times[mode])
            print(f"{mode:>9}: median {statistics.median(ordered) * 1e6:7.0f} us, "
                  f"p90 {ordered[int(len(ordered) * 0.9)] * 1e6:7.0f} us "
                  f"(aput + aput_writes, n={len(ordered)})")
        await checkpoints.close()
        await store.close()
    finally:
        drop_database(url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    asyncio.run(main(parser.parse_args().n))
