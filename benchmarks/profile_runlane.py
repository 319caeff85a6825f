"""Where runlane's time goes under the 32-client `runs.wait` load, by py-spy.

    .venv/bin/pip install py-spy
    .venv/bin/python benchmarks/profile_runlane.py [--seconds 20] [--clients 32] [--gil] [--lean]

Starts runlane on the demo graphs, warms it up, creates one thread per run ahead of
time, then records the server with `py-spy record --format raw --threads` while
`clients` clients send trivial `runs.wait` runs for `--seconds`. Prints where the
samples fall (per thread; on the event loop by request handler, by innermost runlane
function and by package) and keeps the collapsed stacks in
benchmarks/results/profile-<timestamp>.txt (open them in https://speedscope.app or
flamegraph.pl). `--gil` samples only the thread holding the GIL.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scenarios as sc
from rich.console import Console
from rich.table import Table
from servers import ROOT, Servers, runlane_server

console = Console(width=None if sys.stdout.isatty() else 150)
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]+)(?::\d+)?\)$")
# Runlane frames that every request passes through: not a "handler".
PLUMBING = ("runlane/cli/main.py", "runlane/api/app.py", "runlane/assembly.py")
# Leaf Python frames of a thread that is waiting inside C: uvloop's run_forever (epoll,
# plus libuv's own C work, which py-spy cannot see without --native), an idle pool
# thread blocked on its work queue, a lock or condition wait.
IDLE_LEAVES = {
    ("asyncio/runners.py", "Runner.run"),
    ("asyncio/base_events.py", "BaseEventLoop.run_forever"),
    ("concurrent/futures/thread.py", "_worker"),
    ("threading.py", "Condition.wait"),
    ("threading.py", "Event.wait"),
    ("selectors.py", "EpollSelector.select"),
}


def py_spy() -> str:
    for candidate in (ROOT / ".venv" / "bin" / "py-spy", shutil.which("py-spy")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise SystemExit("py-spy not found: .venv/bin/pip install py-spy")


def parse(path: Path) -> list[tuple[str, list[tuple[str, str]], int]]:
    """(thread name, frames root→leaf as (file, function), count) per collapsed line."""
    out = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        head, *frames = stack.split(";")
        thread = head.split(": ", 1)[-1]
        parsed = []
        for frame in frames:
            m = FRAME.match(frame)
            parsed.append((m["file"], m["func"]) if m else (frame, frame))
        out.append((thread, parsed, int(count)))
    return out


def package(file: str) -> str:
    top = file.split("/", 1)[0]
    if top == "runlane":
        parts = file.split("/")
        return "/".join(parts[:2]).removesuffix(".py")
    return top.removesuffix(".py")


def thread_group(name: str) -> str:
    return re.sub(r"_\d+$", "_*", name)


def summarize(samples, rate: int, seconds: float) -> dict:
    wall = rate * seconds
    threads: collections.Counter[str] = collections.Counter()  # busy samples
    idle: collections.Counter[str] = collections.Counter()
    members: dict[str, set[str]] = collections.defaultdict(set)
    handler: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    innermost: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    by_package: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    self_fn: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for thread, frames, count in samples:
        group = thread_group(thread)
        members[group].add(thread)
        if not frames or frames[-1] in IDLE_LEAVES:
            idle[group] += count
            continue
        threads[group] += count
        leaf_file, leaf_func = frames[-1]
        by_package[group][package(leaf_file)] += count
        self_fn[group][f"{leaf_func} ({leaf_file})"] += count
        ours = [(f, fn) for f, fn in frames if f.startswith("runlane/")]
        inner = next((f"{fn} ({f})" for f, fn in reversed(ours) if not f.startswith(PLUMBING)),
                     "(no runlane frame)")
        innermost[group][inner] += count
        outer = next((f"{fn} ({f})" for f, fn in ours if not f.startswith(PLUMBING)), None)
        handler[group][outer or "(HTTP/ASGI plumbing, event loop)"] += count

    def top(counter: collections.Counter[str], n: int) -> list[tuple[str, int]]:
        return counter.most_common(n)

    return {
        "rate": rate, "seconds": seconds, "wall_samples": wall,
        "threads": {name: {"threads": len(members[name]), "busy_samples": n,
                           "idle_samples": idle[name], "busy_pct_of_wall": 100 * n / wall}
                    for name, n in threads.most_common()},
        "by_handler": {g: top(c, 15) for g, c in handler.items()},
        "by_innermost_runlane": {g: top(c, 25) for g, c in innermost.items()},
        "by_package": {g: top(c, 15) for g, c in by_package.items()},
        "self_functions": {g: top(c, 25) for g, c in self_fn.items()},
    }


def show(summary: dict, n: int) -> None:
    threads = summary["threads"]
    table = Table(title="busy samples per thread (idle: waiting in C for I/O or work)")
    table.add_column("thread(s)")
    table.add_column("count", justify="right")
    table.add_column("busy samples", justify="right")
    table.add_column("idle samples", justify="right")
    table.add_column("busy, % of wall (summed over the threads)", justify="right")
    for name, row in threads.items():
        table.add_row(name, str(row["threads"]), str(row["busy_samples"]),
                      str(row["idle_samples"]), f"{row['busy_pct_of_wall']:.1f}")
    console.print(table)
    for group in list(threads)[:3]:
        total = threads[group]["busy_samples"]
        for key, title in (("by_handler", "outermost runlane handler"),
                           ("by_innermost_runlane", "innermost runlane function"),
                           ("by_package", "package of the running (leaf) frame"),
                           ("self_functions", "leaf functions (self time)")):
            rows = summary[key].get(group, [])[:n]
            if not rows:
                continue
            table = Table(title=f"{group}: by {title}")
            table.add_column(title)
            table.add_column(f"% of {group} busy", justify="right")
            table.add_column("% of wall", justify="right")
            for name, count in rows:
                table.add_row(name, f"{100 * count / total:.1f}",
                              f"{100 * count / summary['wall_samples']:.1f}")
            console.print(table)


async def load(args: argparse.Namespace, out: Path) -> dict:
    with Servers() as servers:
        server = servers.start(runlane_server(servers.workdir("runlane")))
        t = sc.Target(server)
        try:
            await sc.warm_up(t)
            probe = await sc.wait_throughput(t, 300, args.clients, 30, lean=args.lean)
            needed = max(2000, int(probe["runs_per_s"] * args.seconds * 3))
            console.log(f"unprofiled: {probe['runs_per_s']:.0f} runs/s; creating {needed} threads")
            thread_ids = await sc.new_threads(t, needed)
            cmd = [py_spy(), "record", "--pid", str(server.pid), "--rate", str(args.rate),
                   "--format", "raw", "--threads", "--output", str(out)]
            # --idle: py-spy's own idle detection misses threads blocked in C here;
            # IDLE_LEAVES classifies them instead.
            cmd.append("--gil" if args.gil else "--idle")
            spy = await asyncio.create_subprocess_exec(
                *cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            await asyncio.sleep(1.0)  # attach
            result = await sc.wait_throughput(t, len(thread_ids), args.clients, args.seconds,
                                              thread_ids=thread_ids, lean=args.lean)
            spy.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
            _, err = await asyncio.wait_for(spy.communicate(), timeout=60)
            if not out.exists():
                raise SystemExit(f"py-spy wrote nothing:\n{err.decode()[-2000:]}")
            console.log(f"profiled: {result['runs_per_s']:.0f} runs/s over "
                        f"{result['elapsed_s']:.1f}s, server CPU {result['server_cpu_util']:.0%}, "
                        f"client CPU {result['client_cpu_util']:.0%}")
            return result
        finally:
            await t.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rate", type=int, default=100, help="samples per second")
    parser.add_argument("--gil", action="store_true", help="only the thread holding the GIL")
    parser.add_argument("--lean", action="store_true",
                        help="load from lean_http's minimal client instead of langgraph_sdk")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--read", type=Path, metavar="RAW",
                        help="only summarize collapsed stacks recorded before (e.g. by "
                             "agent_load.py --profile), over --seconds")
    args = parser.parse_args()
    if args.read:
        show(summarize(parse(args.read), args.rate, args.seconds), args.top)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    raw = args.out / f"profile-{stamp}{'-gil' if args.gil else ''}.txt"
    git = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                         capture_output=True, text=True, check=False).stdout.strip()
    result = asyncio.run(load(args, raw))
    summary = summarize(parse(raw), args.rate, result["elapsed_s"] + 1.0)
    summary.update(load=result, git=git, gil=args.gil, clients=args.clients)
    show(summary, args.top)
    raw.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    console.print(f"collapsed stacks: {raw}\nsummary: {raw.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
