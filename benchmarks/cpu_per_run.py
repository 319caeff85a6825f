"""Server CPU per trivial run under the 32-client `runs.wait` load: runlane only.

    .venv/bin/python benchmarks/cpu_per_run.py [--runs 1500] [--reps 3] [--lean]

CPU time per run is what limits throughput on a small machine, and unlike runs/s it
barely moves when other processes compete for the cores, so it is the number to
watch while optimizing. Prints each repetition and the median.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scenarios as sc
from servers import runlane_server


async def main(runs: int, reps: int, clients: int, lean: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = runlane_server(Path(tmp))
        server.start()
        try:
            target = sc.Target(server)
            await sc.warm_up(target)
            await sc.wait_throughput(target, 300, clients, 60, lean=lean)
            cpu, rate = [], []
            for rep in range(reps):
                result = await sc.wait_throughput(target, runs, clients, 120, lean=lean)
                cpu.append(result["server_cpu_ms_per_run"])
                rate.append(result["runs_per_s"])
                print(f"rep {rep + 1}: {result['server_cpu_ms_per_run']:.2f} ms CPU/run, "
                      f"{result['runs_per_s']:.0f} runs/s, "
                      f"server CPU {result['server_cpu_util']:.2f}, "
                      f"client CPU {result['client_cpu_util']:.2f}, errors {result['error_count']}")
            print(f"median: {statistics.median(cpu):.2f} ms CPU/run, "
                  f"{statistics.median(rate):.0f} runs/s")
            await target.aclose()
        finally:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1500)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--lean", action="store_true",
                        help="load from lean_http's minimal client instead of langgraph_sdk")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.reps, args.clients, args.lean))
