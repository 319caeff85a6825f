"""Server CPU per agent turn outside its tokens: the per-run creation burst.

    .venv/bin/python benchmarks/burst_cpu.py [--turns 1500] [--reps 3] [--clients 32]
                                             [--tokens 1] [--profile]

What the agent workload (agent_load.py) pays once per run, whatever the reply's
length: each of `clients` lean keep-alive clients creates a thread (POST /threads) and
streams one run of the chat graph on it (POST /threads/{id}/runs/stream,
`messages-tuple`), `--tokens` tokens with no delay between them, over and over. Prints
the server's CPU per turn per repetition and the median: both requests, the thread
and run rows, the graph's start and checkpoints, the settle. The tokens' own share is
agent_load's `--tokens 20/100/300` split; with one token it is a small part of this.
`--profile` records the last repetition with py-spy (collapsed stacks in
benchmarks/results; summarize with `profile_runlane.py --read FILE`).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lean_http import LeanConnection
from servers import ROOT, Server, runlane_server

PROJECT = ROOT / "benchmarks" / "agent_project"
RESULTS = ROOT / "benchmarks" / "results"


async def turns(server: Server, n: int, clients: int, body: bytes) -> tuple[int, list[str]]:
    """`n` turns over `clients` connections; (completed, errors)."""
    left = [n]
    done = [0]
    errors: list[str] = []

    async def client() -> None:
        conn = LeanConnection(server.url)
        try:
            while left[0] > 0:
                left[0] -= 1
                status, data = await conn.post_json("/threads", b"{}")
                if status != 200:
                    errors.append(f"thread {status}")
                    continue
                thread_id = orjson.loads(data)["thread_id"]
                events: list[bytes] = []
                status = await conn.post_sse(f"/threads/{thread_id}/runs/stream", body,
                                             events.append)
                if status != 200 or b"error" in events or b"messages" not in events:
                    errors.append(f"stream {status} {sorted(set(events))}")
                    continue
                done[0] += 1
        finally:
            await conn.aclose()

    await asyncio.gather(*(client() for _ in range(clients)))
    return done[0], errors


async def main(args: argparse.Namespace) -> None:
    body = orjson.dumps({
        "assistant_id": "chat",
        "input": {"messages": [{"role": "user", "content": "Tell me a story."}]},
        "stream_mode": ["messages-tuple"],
        "context": {"tokens": args.tokens, "token_delay": 0.0},
    })
    with tempfile.TemporaryDirectory() as tmp:
        server = runlane_server(Path(tmp), PROJECT)
        server.start()
        try:
            await turns(server, 300, args.clients, body)  # warm-up
            cpu = []
            for rep in range(args.reps):
                spy = None
                if args.profile and rep == args.reps - 1:
                    RESULTS.mkdir(exist_ok=True)
                    out = RESULTS / f"burst-profile-{time.strftime('%Y%m%d-%H%M%S')}.txt"
                    spy = await asyncio.create_subprocess_exec(
                        str(ROOT / ".venv" / "bin" / "py-spy"), "record", "--pid",
                        str(server.pid), "--rate", "250", "--format", "raw", "--threads",
                        "--idle", "--output", str(out),
                        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
                    await asyncio.sleep(1.0)  # attach
                cpu0, t0 = server.cpu_seconds(), time.perf_counter()
                done, errors = await turns(server, args.turns, args.clients, body)
                wall = time.perf_counter() - t0
                used = server.cpu_seconds() - cpu0
                if spy is not None:
                    spy.send_signal(signal.SIGINT)
                    await asyncio.wait_for(spy.communicate(), timeout=60)
                    print(f"py-spy: {out}")
                cpu.append(used * 1000 / max(done, 1))
                print(f"rep {rep + 1}: {cpu[-1]:.2f} ms CPU/turn, {done / wall:.0f} turns/s, "
                      f"server CPU {used / wall:.2f}, errors {len(errors)} "
                      f"{sorted(set(errors))[:3]}")
            print(f"median: {statistics.median(cpu):.2f} ms CPU/turn")
        finally:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=1500)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=1)
    parser.add_argument("--profile", action="store_true")
    asyncio.run(main(parser.parse_args()))
