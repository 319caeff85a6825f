"""runlane vs the reference LangGraph server (`langgraph dev`), side by side.

    make bench                                  # full run, both servers (~6 min)
    make bench BENCH_ARGS="--quick"             # smoke check (< 1 min)
    .venv/bin/python benchmarks/run.py --only runlane --reps 5

Starts both servers on the demo graphs (examples/demo), warms them up, runs every
scenario `--reps` times on each (interleaved: rep 1 on runlane, rep 1 on the reference,
rep 2 ...), then the memory scenario once per server, prints the medians and writes
the raw results to benchmarks/results/<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scenarios as sc
from rich.console import Console
from rich.table import Table
from servers import (
    DEFAULT_REF_VENV,
    ROOT,
    Servers,
    ensure_ref_venv,
    reference_server,
    runlane_server,
)

# A wide table even when the output is piped to a file.
console = Console(width=None if sys.stdout.isatty() else 150)

# Counts per repetition; `*_s` caps a scenario's time (the reference server picks up new
# runs about once a second, so its latency scenarios would otherwise take minutes).
# (`life` = create-to-running and cancel, on the same runs: half of them are cancelled
# with wait=False, half with wait=True.)
FULL: dict[str, Any] = {
    "life_runs": 100, "life_s": 20, "wait1_runs": 100, "wait1_s": 8, "wait32_runs": 300,
    "wait32_s": 30, "sse_events": 5000, "mem_warmup": 300, "mem_runs": 2000, "mem_s": 75,
    "mem_clients": 32, "agent_runs": 200, "agent_clients": 8, "agent_s": 30, "reps": 3,
}
QUICK: dict[str, Any] = {
    "life_runs": 8, "life_s": 4, "wait1_runs": 30, "wait1_s": 2, "wait32_runs": 96,
    "wait32_s": 5, "sse_events": 2000, "mem_warmup": 100, "mem_runs": 200, "mem_s": 8,
    "mem_clients": 32, "agent_runs": 40, "agent_clients": 8, "agent_s": 8, "reps": 1,
}


@dataclass
class Metric:
    key: str  # "<scenario>.<field>" in the per-rep results
    label: str
    unit: str
    higher_is_better: bool
    target: str = ""  # shown as is; checked by `meets`
    absolute: float | None = None  # runlane must be below (lower-is-better) / above this
    relative: float | None = None  # runlane's advantage over the reference must reach this


METRICS = [
    Metric("life.c2r_p50_ms", "create → running, p50", "ms", False, "< 10 ms", absolute=10),
    Metric("life.c2r_p99_ms", "create → running, p99", "ms", False),
    Metric("wait1.runs_per_s", "runs.wait, 1 client", "runs/s", True),
    Metric("wait1.latency_p50_ms", "runs.wait latency p50, 1 client", "ms", False),
    Metric("wait32lean.runs_per_s", "runs.wait, 32 lean clients", "runs/s", True, "≥ 3× ref",
           relative=3),
    Metric("wait32lean.latency_p99_ms", "runs.wait latency p99, 32 lean clients", "ms", False),
    Metric("wait32lean.server_cpu_ms_per_run", "server CPU per run, 32 lean clients", "ms",
           False),
    Metric("wait32.runs_per_s", "runs.wait, 32 langgraph_sdk clients", "runs/s", True),
    Metric("wait32.client_cpu_util", "  their client process's CPU (1 = a core)", "cores",
           False),
    Metric("wait32.server_cpu_ms_per_run", "server CPU per run, 32 langgraph_sdk clients", "ms",
           False),
    Metric("life.ack_p50_ms", "cancel(wait=False) answer, p50", "ms", False),
    Metric("life.ack_p99_ms", "cancel(wait=False) answer, p99", "ms", False),
    Metric("life.observed_stop_p50_ms", "cancel(wait=False) → get sees terminal, p50", "ms",
           False),
    Metric("life.stop_p50_ms", "cancel(wait=True) answer, p50", "ms", False),
    Metric("life.stop_p99_ms", "cancel(wait=True) answer, p99", "ms", False, "< 20 ms",
           absolute=20),
    Metric("sse.sdk_events_per_s", "SSE custom events/s, langgraph_sdk", "ev/s", True,
           "≥ 3× ref", relative=3),
    Metric("sse.raw_events_per_s", "SSE custom events/s, raw httpx", "ev/s", True,
           "≥ 3× ref", relative=3),
    Metric("agent.turns_per_s", "ReAct agent turns/s (tool call + answer), 8 clients",
           "turns/s", True),
    Metric("agent.first_token_p50_ms", "  its first token, p50", "ms", False),
    Metric("agent.latency_p99_ms", "  a whole turn, p99", "ms", False),
    Metric("mem.mb_per_1000_runs", "RSS growth per 1,000 runs", "MB", False, "< 2 MB",
           absolute=2),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke check")
    parser.add_argument("--only", choices=["runlane", "reference"], default=None,
                        help="benchmark one server only")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 3, quick 1)")
    parser.add_argument("--ref-venv", type=Path, default=DEFAULT_REF_VENV,
                        help="venv holding langgraph-cli[inmem]; created if missing "
                             "(default benchmarks/.venv-ref)")
    parser.add_argument("--ref-args", default="",
                        help="extra flags for `langgraph dev`, e.g. --ref-args='--allow-blocking'")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    return parser.parse_args(argv)


# ----------------------------------------------------------------- running


async def bench_rep(t: sc.Target, p: dict[str, Any], rep: int) -> dict[str, Any]:
    wait32 = [
        ("wait32", lambda: sc.wait_throughput(t, p["wait32_runs"], 32, p["wait32_s"])),
        ("wait32lean", lambda: sc.wait_throughput(t, p["wait32_runs"], 32, p["wait32_s"],
                                                  lean=True)),
    ]
    if rep % 2 == 0:
        # The reference slows down as runs accumulate in its store: alternate which
        # of the two 32-client scenarios meets the fuller store.
        wait32.reverse()
    steps = [
        ("life", lambda: sc.lifecycle(t, p["life_runs"], p["life_s"])),
        ("wait1", lambda: sc.wait_throughput(t, p["wait1_runs"], 1, p["wait1_s"])),
        *wait32,
        ("sse", lambda: sc.sse_throughput(t, p["sse_events"])),
        ("agent", lambda: sc.agent_turns(t, p["agent_runs"], p["agent_clients"],
                                         p["agent_s"])),
    ]
    out: dict[str, Any] = {}
    for name, step in steps:
        started = time.perf_counter()
        out[name] = await attempt(t, name, step)
        console.log(f"[dim]rep {rep} {t.name:<9} {name:<6} "
                    f"{time.perf_counter() - started:5.1f}s  {_brief(name, out[name])}[/]")
    return out


async def attempt(t: sc.Target, name: str, step: Any) -> dict[str, Any]:
    """Run one scenario; a failure is recorded (and its server's state shown), not fatal."""
    if t.server.exited() is not None:
        return {"failed": f"{t.name} is not running (exit code {t.server.exited()})"}
    try:
        return await step()
    except Exception as exc:  # noqa: BLE001 - keep what the other scenarios measured
        failure = f"{type(exc).__name__}: {exc}"[:300]
        console.log(f"[red]{t.name} {name} failed: {failure}[/]")
        code = t.server.exited()
        if code is not None:
            console.log(f"[red]{t.name} exited with code {code}; its log ends:[/]\n"
                        f"{t.server.log_tail()}")
        return {"failed": failure, "server_exit_code": code}


def _brief(name: str, result: dict[str, Any]) -> str:
    if "failed" in result:
        return f"[red]failed: {result['failed']}[/]"
    keys = {"life": ["c2r_p50_ms", "ack_p50_ms", "stop_p99_ms"], "wait1": ["runs_per_s"],
            "wait32": ["runs_per_s", "client_cpu_util"], "wait32lean": ["runs_per_s"],
            "sse": ["sdk_events_per_s", "raw_events_per_s"],
            "agent": ["turns_per_s", "first_token_p50_ms"],
            "mem": ["mb_per_1000_runs"]}[name]
    return "  ".join(f"{k}={result[k]:.1f}" for k in keys)


async def bench(targets: list[sc.Target], p: dict[str, Any]) -> dict[str, dict[str, Any]]:
    raw: dict[str, dict[str, Any]] = {t.name: {"reps": [], "mem": {}} for t in targets}
    for t in list(targets):
        started = time.perf_counter()
        warm = await attempt(t, "warm-up", lambda t=t: sc.warm_up(t))
        if "failed" in warm:
            raw[t.name]["failed"] = warm["failed"]
            targets = [other for other in targets if other is not t]
            continue
        console.log(f"warmed up {t.name} ({time.perf_counter() - started:.1f}s)")
    for rep in range(1, p["reps"] + 1):
        for t in targets:
            raw[t.name]["reps"].append(await bench_rep(t, p, rep))
    for t in targets:  # last: it leaves thousands of runs behind
        started = time.perf_counter()
        raw[t.name]["mem"] = await attempt(t, "mem", lambda t=t: sc.memory_growth(
            t, p["mem_warmup"], p["mem_runs"], p["mem_clients"], p["mem_s"]))
        console.log(f"[dim]        {t.name:<9} mem    {time.perf_counter() - started:5.1f}s  "
                    f"{_brief('mem', raw[t.name]['mem'])}[/]")
    return raw


def summarize(raw: dict[str, Any]) -> dict[str, float]:
    """Median over repetitions of every metric."""
    summary = {}
    for metric in METRICS:
        scenario, field = metric.key.split(".")
        results = [raw["mem"]] if scenario == "mem" else [rep[scenario] for rep in raw["reps"]]
        values = [r[field] for r in results if field in r and not math.isnan(r[field])]
        summary[metric.key] = statistics.median(values) if values else math.nan
    return summary


def anomalies(raw: dict[str, Any]) -> list[str]:
    """Everything odd a scenario noticed, de-duplicated with counts."""
    seen: dict[str, int] = {}
    results = [r for rep in raw["reps"] for r in rep.values()] + [raw["mem"], raw]
    for result in results:
        failed = [f"failed: {result['failed']}"] if "failed" in result else []
        for note in result.get("anomalies", []) + result.get("errors", []) + failed:
            seen[note] = seen.get(note, 0) + 1
    return [f"{note} (×{count})" if count > 1 else note for note, count in seen.items()]


# ----------------------------------------------------------------- report


def advantage(metric: Metric, rl: float, ref: float) -> float:
    """> 1 means runlane is better, whichever way the metric points."""
    if math.isnan(rl) or math.isnan(ref):
        return math.nan
    if metric.higher_is_better:
        return rl / ref if ref else math.inf
    if rl <= 0 or ref <= 0:  # e.g. memory growth of zero or below
        return math.nan
    return ref / rl


def meets(metric: Metric, rl: float, adv: float) -> bool | None:
    if metric.absolute is not None and not math.isnan(rl):
        return rl > metric.absolute if metric.higher_is_better else rl < metric.absolute
    if metric.relative is not None and not math.isnan(adv):
        return adv >= metric.relative
    return None


def fmt(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "—"
    if math.isinf(value):
        return "∞"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def render(summaries: dict[str, dict[str, float]], p: dict[str, Any]) -> Table:
    names = list(summaries)
    both = len(names) == 2
    table = Table(title=f"{' vs '.join(names)} — medians of {p['reps']} rep(s)",
                  caption="advantage > 1× means runlane is better (faster, more, smaller)"
                  if both else None)
    table.add_column("metric")
    table.add_column("unit", style="dim")
    for name in names:
        table.add_column(name, justify="right")
    if both:
        table.add_column("advantage", justify="right")
    table.add_column("target", style="dim")
    table.add_column("ok", justify="center")
    for metric in METRICS:
        rl = summaries.get("runlane", {}).get(metric.key, math.nan)
        ref = summaries.get("reference", {}).get(metric.key, math.nan)
        adv = advantage(metric, rl, ref) if both else math.nan
        ok = meets(metric, rl, adv) if "runlane" in summaries else None
        cells = [metric.label, metric.unit]
        cells += [fmt(summaries[name].get(metric.key, math.nan)) for name in names]
        if both:
            cells.append("—" if math.isnan(adv) else f"{fmt(adv)}×")
        cells.append(metric.target)
        cells.append({True: "[green]✓[/]", False: "[red]✗[/]", None: ""}[ok])
        table.add_row(*cells)
    return table


def versions(ref_venv: Path | None) -> dict[str, str]:
    from importlib.metadata import version

    git = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                         capture_output=True, text=True, check=False).stdout.strip()
    out = {"python": platform.python_version(), "runlane": version("runlane"), "git": git,
           "langgraph": version("langgraph"), "langgraph_sdk": version("langgraph-sdk")}
    if ref_venv is not None:
        script = ("import importlib.metadata as m; print(m.version('langgraph-api'), "
                  "m.version('langgraph-runtime-inmem'), m.version('langgraph'))")
        done = subprocess.run([str(ref_venv / "bin" / "python"), "-c", script],
                              capture_output=True, text=True, check=False)
        if done.returncode == 0:
            api, inmem, lg = done.stdout.split()
            out.update({"ref_langgraph_api": api, "ref_langgraph_runtime_inmem": inmem,
                        "ref_langgraph": lg})
    return out


async def amain(args: argparse.Namespace) -> int:
    p = dict(QUICK if args.quick else FULL)
    if args.reps is not None:
        p["reps"] = max(1, args.reps)
    want = ["runlane", "reference"] if args.only is None else [args.only]
    langgraph = ensure_ref_venv(args.ref_venv, console.log) if "reference" in want else None
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    began = time.perf_counter()
    load_start = os.getloadavg()
    meta = versions(args.ref_venv if langgraph is not None else None)  # the code as started
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C: through `Servers.__exit__`.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    with Servers() as servers:
        started = []
        if "runlane" in want:
            started.append(servers.start(runlane_server(servers.workdir("runlane"))))
        if langgraph is not None:
            started.append(servers.start(reference_server(
                servers.workdir("reference"), langgraph, args.ref_args.split())))
        for server in started:
            env = "".join(f"{k}={v} " for k, v in server.env.items())
            console.log(f"{server.name}: {server.url} (pid {server.pid})  $ {env}"
                        f"{' '.join(server.argv)}")
        targets = [sc.Target(s) for s in started]
        try:
            raw = await bench(targets, p)
        finally:
            for t in targets:
                await t.aclose()
        commands = {s.name: {"argv": s.argv, "env": s.env, "cwd": str(s.workdir)}
                    for s in started}
    summaries = {name: summarize(r) for name, r in raw.items()}
    console.print(render(summaries, p))
    for name, r in raw.items():
        notes = anomalies(r)
        if notes:
            console.print(f"[yellow]{name}: what a client observed that was unexpected:[/]")
            for note in notes[:15]:
                console.print(f"  - {note}")
    wall = time.perf_counter() - began
    console.print(f"[dim]{wall:.0f}s on {os.cpu_count()} CPUs, load average "
                  f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; "
                  "throughput runs use one fresh thread per run (POST /threads/{id}/runs/wait)[/]")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{stamp}.json"
    report = {
        "started": stamp, "wall_s": wall, "quick": args.quick, "params": p,
        "cpus": os.cpu_count(), "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
        "commands": commands,
        "versions": meta,
        "metrics": [m.__dict__ for m in METRICS], "summary": summaries, "raw": raw,
    }
    path.write_text(json.dumps(report, indent=1, default=str))
    console.print(f"raw results: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import uvloop

        run = uvloop.run  # the reference server and uvicorn use uvloop too
    except ImportError:
        run = asyncio.run
    try:
        return run(amain(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        console.print("[red]interrupted: servers stopped[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
