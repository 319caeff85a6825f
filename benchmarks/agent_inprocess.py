"""The agent workload's graph in one process, no HTTP: what langgraph costs per
streamed token by itself, and what runlane's executor adds to it before the SSE layer.

    PYTHONPATH=src .venv/bin/python benchmarks/agent_inprocess.py [--k 300] [--reps 3]

K runs of `agent_project/chat.py` (100 tokens 50 ms apart) streamed at once on uvloop,
CPU time per token, for each of:

- `alone`: `graph.astream(stream_mode="messages")`, as `agent_load.py --baseline`;
- `modes`: as runlane's executor streams it: `["messages", "values"]`, the output keys,
  the run's config and metadata (execution.build_config's shape), chunks dropped;
- `publish`: the same, each chunk published into a `RunEventLog` (execution._publish)
  and the log followed by one task per run, as a stream's follower (no HTTP).

each with CPython's default collector thresholds (`defaultgc`, as `--baseline` runs) and
with the server's (`gcpolicy`: start-up frozen, young collections every 10,000
allocations, no automatic full collection; background/collector.py). The variants are
alternated, one process each, `--reps` times; medians printed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE / "agent_project"
VARIANTS = ("alone", "modes", "publish")


async def measure(variant: str, k: int) -> float:
    sys.path[:0] = [str(PROJECT), str(PROJECT / "agents")]
    from chat import ChatLoad, graph

    from runlane import run_context
    from runlane.executor.execution import _publish
    from runlane.streams.local import RunEventLog

    context = ChatLoad(tokens=100, token_delay=0.05)
    prompt = {"messages": [{"role": "user", "content": "Tell me a story."}]}

    async def run() -> None:
        if variant == "alone":
            async for _ in graph.astream(prompt, stream_mode="messages", context=context):
                pass
            return
        thread_id, run_id = str(uuid.uuid4()), str(uuid.uuid4())
        config = {"configurable": {"thread_id": thread_id, "run_id": run_id,
                                   "graph_id": "chat", "assistant_id": "chat"},
                  "metadata": {"assistant_id": "chat", "thread_id": thread_id,
                               **run_context.SERVER_METADATA},
                  "run_id": uuid.UUID(run_id)}
        log = RunEventLog()

        async def follow() -> None:
            async for _ in log.follow():
                pass

        follower = asyncio.create_task(follow()) if variant == "publish" else None
        async for mode, data in graph.astream(
                prompt, config, stream_mode=["messages", "values"], context=context,
                output_keys=graph.output_channels):
            if variant == "publish" and mode == "messages":
                _publish(log, mode, (), data, None)
        log.close()
        if follower is not None:
            await follower

    cpu = time.process_time()
    await asyncio.gather(*(run() for _ in range(k)))
    return (time.process_time() - cpu) * 1000 / (k * 100)


def child(variant: str, k: int, policy: str) -> None:
    import uvloop

    if policy == "gcpolicy":
        from runlane.background.collector import MIDDLE, NEVER, YOUNG

        gc.collect()
        gc.freeze()
        gc.set_threshold(YOUNG, MIDDLE, NEVER)
    print(uvloop.run(measure(variant, k)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=300)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "POLICY"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.k, args.child[1])
        return
    got: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.reps):
        for policy in ("defaultgc", "gcpolicy"):
            for variant in VARIANTS:
                out = subprocess.run(
                    [sys.executable, __file__, "--k", str(args.k), "--child", variant, policy],
                    check=True, capture_output=True, text=True).stdout
                got.setdefault((variant, policy), []).append(float(out.split()[-1]))
    for (variant, policy), values in got.items():
        print(f"{variant:8s} {policy:9s} K={args.k}: {statistics.median(values):.4f} ms CPU "
              f"per token (median of {', '.join(f'{v:.4f}' for v in values)})")


if __name__ == "__main__":
    main()
