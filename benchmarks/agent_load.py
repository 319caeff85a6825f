"""The agent workload: how many concurrent streaming chat runs one server carries.

    .venv/bin/python benchmarks/agent_load.py                        # both servers, sweep
    .venv/bin/python benchmarks/agent_load.py --variant fast --ks 100,250
    .venv/bin/python benchmarks/agent_load.py --variant waiting --ks 1000,2500,5000
    .venv/bin/python benchmarks/agent_load.py --only runlane --ks 500 --reps 3

Each of K clients creates a thread and streams one run of a chat graph
(`agent_project/chat.py`: the corpus's fake chat model, `tokens` tokens `token_delay`
apart, no key, no network) in `messages-tuple` mode, as `useStream` consumes it; the
clients start over a `--ramp`. The load generator is `lean_http.py`'s HTTP/1.1 client
reading SSE event names without parsing JSON, so that it is not the bottleneck; its own
CPU is printed beside every figure.

For each K, per server: streams completed, errors, time to first token, the gap between
two tokens as the client sees it (all gaps, and the steady state after the ramp), server
CPU per streamed token, server RSS at peak and per active run. The figure of merit is
the largest K at which every stream completes and the steady-state p99 gap stays under
twice the model's own delay. The sweep of a server stops at the first K that misses it.

`--cluster N` measures runlane alone as N workers on a private PostgreSQL + Redis
(cluster_costs.py; the clients spread over the workers' ports, so most streams are
followed on a worker that does not execute the run), with the CPU per token split by
component (workers, PostgreSQL, Redis) and PostgreSQL statements, transactions,
NOTIFYs and Redis round trips per run; `--sqlite-too` adds one SQLite process beside
it in the same run.

`--baseline` first measures langgraph alone: the same graph streamed in this process
with no server and no checkpointer, CPU per token (what a server's own cost per token
is compared with).

The reference runs as `langgraph dev --n-jobs-per-worker <largest K>` and runlane with
`--max-concurrency <largest K>`, so that neither's queue limits it. Variants: `default`
(100 tokens, 50 ms apart), `fast` (10 ms apart), `waiting` (the model first waits 5
to 30 s, as a slow first token or a tool call does: many runs open, few streaming).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster_costs import Costs, format_costs
from lean_http import LeanConnection
from scenarios import percentile
from servers import (
    DEFAULT_REF_VENV,
    ROOT,
    Server,
    Servers,
    ensure_ref_venv,
    reference_server,
    runlane_server,
)

PROJECT = ROOT / "benchmarks" / "agent_project"
RESULTS = ROOT / "benchmarks" / "results"

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {"tokens": 100, "token_delay": 0.05, "first_wait_min": 0.0,
                "first_wait_max": 0.0, "ks": [100, 250, 500, 1000, 2000, 4000]},
    "fast": {"tokens": 100, "token_delay": 0.01, "first_wait_min": 0.0,
             "first_wait_max": 0.0, "ks": [100, 250, 500, 1000, 2000]},
    "waiting": {"tokens": 100, "token_delay": 0.05, "first_wait_min": 5.0,
                "first_wait_max": 30.0, "ks": [1000, 2500, 5000, 10000]},
}


@dataclass(slots=True)
class Stream:
    """What one client saw of its run's stream."""

    started: float = 0.0
    first: float | None = None
    last: float | None = None
    tokens: int = 0
    status: int = 0
    error: str | None = None
    gaps: list[float] = field(default_factory=list)
    steady_gaps: list[float] = field(default_factory=list)


async def one_stream(url: str, body: bytes, delay: float, steady_from: float,
                     expected_tokens: int) -> Stream:
    await asyncio.sleep(delay)
    stream = Stream()
    conn = LeanConnection(url)

    def on_event(name: bytes) -> None:
        now = time.perf_counter()
        if name == b"messages":
            if stream.last is None:
                stream.first = now
            else:
                gap = now - stream.last
                stream.gaps.append(gap)
                if now >= steady_from:
                    stream.steady_gaps.append(gap)
            stream.last = now
            stream.tokens += 1
        elif name == b"error":
            stream.error = "the stream sent an error event"

    step = "thread"
    try:
        status, data = await conn.post_json("/threads", b"{}")
        if status != 200:
            stream.error = f"thread create answered {status}"
            return stream
        thread_id = orjson.loads(data)["thread_id"]
        stream.started = time.perf_counter()
        step = "stream"
        stream.status = await conn.post_sse(f"/threads/{thread_id}/runs/stream", body, on_event)
        if stream.status != 200:
            stream.error = f"stream answered {stream.status}"
        elif stream.error is None and stream.tokens < expected_tokens:
            stream.error = f"stream ended after {stream.tokens} of {expected_tokens} tokens"
    except (OSError, asyncio.IncompleteReadError, ValueError, KeyError) as exc:
        stream.error = f"{step}: {type(exc).__name__}: {exc}"
    finally:
        await conn.aclose()
    return stream


async def sample_rss(server: Server, peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], server.rss_bytes())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)


async def settled_rss(server: Server) -> int:
    await asyncio.sleep(1.0)
    samples = []
    for _ in range(4):
        samples.append(server.rss_bytes())
        await asyncio.sleep(0.25)
    return min(samples)


class Group:
    """The processes of one deployment under test, looking like one Server: a single
    server, or a cluster's workers (clients spread over their ports)."""

    def __init__(self, servers: list[Server], costs: Costs | None = None,
                 deployment: Any = None) -> None:
        self.servers = servers
        self.costs = costs
        self.deployment = deployment
        self.urls = [s.url for s in servers]

    def rss_bytes(self) -> int:
        return sum(s.rss_bytes() for s in self.servers)

    def cpu_seconds(self) -> float:
        return sum(s.cpu_seconds() for s in self.servers)


async def phase(server: Server | Group, k: int, load: dict[str, Any], ramp: float,
                profile: Path | None = None) -> dict[str, Any]:
    """K concurrent streams against `server`; the figures of one point of the sweep.
    `profile`: record the server with py-spy meanwhile (collapsed stacks there)."""
    context = {name: load[name] for name in
               ("tokens", "token_delay", "first_wait_min", "first_wait_max")}
    body = orjson.dumps({
        "assistant_id": "chat",
        "input": {"messages": [{"role": "user", "content": "Tell me a story."}]},
        "stream_mode": ["messages-tuple"],
        "context": context,
    })
    base_rss = await settled_rss(server)
    peak, stop = [base_rss], asyncio.Event()
    sampler = asyncio.create_task(sample_rss(server, peak, stop))
    urls = server.urls if isinstance(server, Group) else [server.url]
    costs = server.costs if isinstance(server, Group) else None
    before = None if costs is None else await asyncio.to_thread(costs.snapshot)
    spy = (await start_py_spy(server, profile)
           if profile is not None and isinstance(server, Server) else None)
    cpu0, client0, t0 = server.cpu_seconds(), time.process_time(), time.perf_counter()
    steady_from = t0 + ramp + load["first_wait_min"]
    streams = await asyncio.gather(*(
        one_stream(urls[i % len(urls)], body, ramp * i / k, steady_from, load["tokens"])
        for i in range(k)
    ))
    wall = time.perf_counter() - t0
    cpu, client_cpu = server.cpu_seconds() - cpu0, time.process_time() - client0
    split: dict[str, Any] = {}
    if costs is not None and before is not None:
        await asyncio.sleep(0.3)  # the runs' ends, settled right after their last token
        after = await asyncio.to_thread(costs.snapshot)
        split = Costs.delta(before, after, k, sum(s.tokens for s in streams) or 1)
    stop.set()
    await sampler
    if spy is not None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        await asyncio.wait_for(spy.communicate(), timeout=60)
    done = [s for s in streams if s.error is None]
    errors = [s.error for s in streams if s.error is not None]
    tokens = sum(s.tokens for s in streams)
    ttft = [s.first - s.started for s in done if s.first is not None]
    gaps = [g for s in done for g in s.gaps]
    steady = [g for s in done for g in s.steady_gaps] or gaps
    p99_steady = percentile(steady, 99)
    result = {
        "k": k, "completed": len(done), "errors": len(errors),
        "error_samples": sorted(set(errors))[:5], "tokens": tokens, "wall_s": round(wall, 2),
        "ttft_p50_ms": round(percentile(ttft, 50) * 1000, 1),
        "ttft_p99_ms": round(percentile(ttft, 99) * 1000, 1),
        "gap_p50_ms": round(percentile(gaps, 50) * 1000, 1),
        "gap_p99_ms": round(percentile(gaps, 99) * 1000, 1),
        "gap_max_ms": round(max(gaps, default=float("nan")) * 1000, 1),
        "steady_gap_p99_ms": round(p99_steady * 1000, 1),
        "server_cpu_ms_per_token": round(cpu * 1000 / tokens, 4) if tokens else None,
        "server_cpu_util": round(cpu / wall, 2),
        "client_cpu_util": round(client_cpu / wall, 2),
        "rss_base_mb": round(base_rss / 2**20, 1),
        "rss_peak_mb": round(peak[0] / 2**20, 1),
        "rss_kb_per_run": round((peak[0] - base_rss) / 1024 / k, 1),
    }
    result["holds"] = (len(done) == k and p99_steady < 2 * load["token_delay"])
    if split:
        result["costs"] = split
        result["server_cpu_ms_per_token"] = round(split["total_cpu_ms_per_token"], 4)
    if isinstance(server, Group) and server.deployment is not None:
        result["too_many_connections_warnings"] = server.deployment.retry_warnings()
    return result


async def start_py_spy(server: Server, out: Path) -> asyncio.subprocess.Process:
    spy = await asyncio.create_subprocess_exec(
        str(ROOT / ".venv" / "bin" / "py-spy"), "record", "--pid", str(server.pid),
        "--rate", "100", "--format", "raw", "--threads", "--idle", "--output", str(out),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    await asyncio.sleep(1.0)  # attach
    return spy


async def langgraph_alone(k: int, load: dict[str, Any]) -> dict[str, Any]:
    """The same graph streamed in this process, no server, no checkpointer."""
    sys.path[:0] = [str(PROJECT), str(PROJECT / "agents")]
    from chat import ChatLoad, graph  # the benchmark project's graph

    context = ChatLoad(tokens=load["tokens"], token_delay=load["token_delay"])
    counts = [0] * k

    async def run(i: int) -> None:
        async for _ in graph.astream(
            {"messages": [{"role": "user", "content": "Tell me a story."}]},
            stream_mode="messages", context=context,
        ):
            counts[i] += 1

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(run(i) for i in range(k)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    tokens = sum(counts)
    return {"k": k, "tokens": tokens, "wall_s": round(wall, 2),
            "cpu_ms_per_token": round(cpu * 1000 / tokens, 4)}


def raise_fd_limit() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # servers inherit it
    return want


def render(console: Console, rows: list[tuple[str, int, dict[str, Any]]], delay: float) -> None:
    table = Table(title=f"agent workload (p99 gap bound: {2 * delay * 1000:.0f} ms)")
    for col in ("server", "K", "done", "err", "TTFT p50/p99 ms", "gap p50/p99/max ms",
                "steady p99", "CPU ms/token", "RSS peak MB", "KB/run", "srv/cli CPU",
                "holds"):
        table.add_column(col, justify="right")
    for name, rep, r in rows:
        table.add_row(
            f"{name}#{rep}", str(r["k"]), str(r["completed"]), str(r["errors"]),
            f"{r['ttft_p50_ms']}/{r['ttft_p99_ms']}",
            f"{r['gap_p50_ms']}/{r['gap_p99_ms']}/{r['gap_max_ms']}",
            str(r["steady_gap_p99_ms"]), str(r["server_cpu_ms_per_token"]),
            str(r["rss_peak_mb"]), str(r["rss_kb_per_run"]),
            f"{r['server_cpu_util']}/{r['client_cpu_util']}", "yes" if r["holds"] else "NO",
        )
    console.print(table)


def merit(results: list[dict[str, Any]]) -> int:
    """The largest K that held, before the first that did not."""
    best = 0
    for r in sorted(results, key=lambda r: r["k"]):
        if not r["holds"]:
            break
        best = r["k"]
    return best


async def sweep(started: dict[str, Server | Group], ks: list[int], load: dict[str, Any],
                args: argparse.Namespace, console: Console,
                ) -> tuple[dict[str, list[dict[str, Any]]], list[tuple[str, int, dict[str, Any]]]]:
    """Every K for every server, interleaved; a server leaves at its first K that fails."""
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in started}
    rows: list[tuple[str, int, dict[str, Any]]] = []
    stopped: set[str] = set()
    for k in ks:
        for rep in range(1, args.reps + 1):
            for name, server in started.items():
                if name in stopped:
                    continue
                profile = None
                if args.profile and name == "runlane":
                    RESULTS.mkdir(exist_ok=True)
                    profile = RESULTS / (f"agent-profile-{time.strftime('%Y%m%d-%H%M%S')}"
                                         f"-k{k}-{rep}.txt")
                    console.log(f"py-spy: {profile}")
                result = await phase(server, k, load, args.ramp, profile)
                result["rep"] = rep
                results[name].append(result)
                rows.append((name, rep, result))
                console.log(f"{name} K={k} rep {rep}: {result['completed']}/{k} done, "
                            f"steady p99 gap {result['steady_gap_p99_ms']} ms, "
                            f"{result['server_cpu_ms_per_token']} ms CPU/token, "
                            f"client CPU {result['client_cpu_util']}")
                if "costs" in result:
                    per_run = format_costs(result["costs"]).split("\n")[1:]
                    console.log("\n".join([format_costs(result["costs"], per="token"),
                                           *per_run]))
                if "too_many_connections_warnings" in result:
                    console.log("redis-py 'Too many connections' warnings so far: "
                                f"{result['too_many_connections_warnings']}")
                if args.jsonl:  # every point as it is measured: a cut sweep keeps them
                    with args.jsonl.open("a") as out:
                        out.write(json.dumps({"server": name, **result}) + "\n")
        for name in started:
            at_k = [r for r in results[name] if r["k"] == k]
            if at_k and not args.no_stop and not all(r["holds"] for r in at_k):
                stopped.add(name)
    return results, rows


def summarize(results: dict[str, list[dict[str, Any]]], console: Console) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name, runs in results.items():
        cpu = [r["server_cpu_ms_per_token"] for r in runs
               if r["server_cpu_ms_per_token"] is not None]
        median = round(statistics.median(cpu), 4) if cpu else None
        summary[name] = {"merit_k": merit(runs), "median_cpu_ms_per_token": median}
        console.print(f"{name}: largest K held {summary[name]['merit_k']}, median CPU per "
                      f"token {median} ms")
    if "runlane" in summary and "reference" in summary:
        rl, ref = summary["runlane"], summary["reference"]
        if rl["median_cpu_ms_per_token"] and ref["median_cpu_ms_per_token"]:
            console.print(f"reference / runlane CPU per token: "
                          f"{ref['median_cpu_ms_per_token'] / rl['median_cpu_ms_per_token']:.2f}×")
        if ref["merit_k"]:
            console.print(f"runlane / reference largest K: {rl['merit_k'] / ref['merit_k']:.2f}×")
    return summary


async def amain(args: argparse.Namespace) -> int:
    console = Console(width=max(Console().width, 150))
    load = dict(VARIANTS[args.variant])
    ks = [int(k) for k in args.ks.split(",")] if args.ks else load["ks"]
    if args.tokens:
        load["tokens"] = args.tokens
    fds = raise_fd_limit()
    console.print(f"variant {args.variant}: {load['tokens']} tokens "
                  f"{load['token_delay'] * 1000:.0f} ms apart, first wait "
                  f"{load['first_wait_min']}-{load['first_wait_max']} s; K {ks}; "
                  f"ramp {args.ramp} s; fd limit {fds}; load average "
                  f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    report: dict[str, Any] = {"variant": args.variant, "load": load, "ks": ks,
                              "ramp": args.ramp, "started": time.strftime("%Y-%m-%d %H:%M"),
                              "loadavg_start": os.getloadavg()}
    if args.baseline:
        base = await langgraph_alone(min(ks[0], 200), load)
        report["langgraph_alone"] = base
        console.print(f"langgraph alone ({base['k']} streams in-process): "
                      f"{base['cpu_ms_per_token']} ms CPU per token")
    if args.cluster:
        return await cluster_main(args, ks, load, report, console)
    with Servers() as servers:
        started: dict[str, Server | Group] = {}
        if args.only in (None, "runlane"):
            started["runlane"] = servers.start(runlane_server(
                servers.workdir("runlane"), PROJECT, ["--max-concurrency", str(max(ks))]))
        if args.only in (None, "reference"):
            exe = ensure_ref_venv(args.ref_venv, console.log)
            started["reference"] = servers.start(reference_server(
                servers.workdir("reference"), exe,
                ["--n-jobs-per-worker", str(max(ks))], PROJECT))
        report["servers"], rows = await sweep(started, ks, load, args, console)
    render(console, rows, load["token_delay"])
    report["summary"] = summarize(report["servers"], console)
    report["loadavg_end"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"agent-{args.variant}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=1, default=asdict))
    console.print(f"samples: {out}")
    return 0


async def cluster_main(args: argparse.Namespace, ks: list[int], load: dict[str, Any],
                       report: dict[str, Any], console: Console) -> int:
    """runlane as `args.cluster` workers on a private PostgreSQL + Redis (and, with
    --sqlite-too, one SQLite process beside it)."""
    import tempfile

    from cluster import Deployment

    extra = ["--max-concurrency", str(max(ks))]
    kinds = (["sqlite"] if args.sqlite_too else []) + ["postgres"]
    report["cluster_workers"] = args.cluster
    with tempfile.TemporaryDirectory(prefix="runlane-agent-cluster-") as tmp:
        deployments = []
        try:
            started: dict[str, Server | Group] = {}
            for kind in kinds:
                d = Deployment(kind, args.cluster, Path(tmp) / kind, extra=extra,
                               project=PROJECT)
                deployments.append(d)
                await asyncio.to_thread(d.start)
                name = "sqlite" if kind == "sqlite" else f"cluster{args.cluster}"
                started[name] = Group(d.servers, d.costs, d)
            report["servers"], rows = await sweep(started, ks, load, args, console)
        finally:
            for d in deployments:
                await asyncio.to_thread(d.stop)
    render(console, rows, load["token_delay"])
    report["summary"] = summarize(report["servers"], console)
    report["loadavg_end"] = os.getloadavg()
    console.print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"agent-cluster-{args.variant}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=1, default=asdict))
    console.print(f"samples: {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="default")
    parser.add_argument("--ks", help="comma-separated K values (default: the variant's)")
    parser.add_argument("--tokens", type=int, help="tokens per run (default 100)")
    parser.add_argument("--ramp", type=float, default=2.0, help="seconds to start K clients")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--only", choices=["runlane", "reference"])
    parser.add_argument("--no-stop", action="store_true",
                        help="go on past the first K that does not hold")
    parser.add_argument("--baseline", action="store_true",
                        help="first measure langgraph alone, in-process")
    parser.add_argument("--profile", action="store_true",
                        help="record runlane with py-spy during each K (collapsed stacks in "
                             "benchmarks/results; summarize with profile_runlane.py --read)")
    parser.add_argument("--jsonl", type=Path,
                        help="also append each point's figures to this file as measured")
    parser.add_argument("--ref-venv", type=Path, default=DEFAULT_REF_VENV)
    parser.add_argument("--cluster", type=int, metavar="N",
                        help="runlane alone as N workers on a private PostgreSQL + Redis, "
                             "CPU split by component")
    parser.add_argument("--sqlite-too", action="store_true",
                        help="with --cluster: one SQLite process beside it, same run")
    return asyncio.run(amain(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
