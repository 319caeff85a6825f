"""runlane scale-out figures, side by side with one process on SQLite.

    make bench-cluster                       # 3 workers on PostgreSQL + Redis vs 1 on SQLite
    .venv/bin/python benchmarks/cluster.py --workers 3 --runs 60 --reps 3

Measured through plain HTTP (httpx), every request sent to the next worker in turn:
- create → running: create on worker i, poll `GET run` on worker i+1 until `running`;
- cross-worker cancel: `cancel?wait=1` sent to a worker that does NOT own the run,
  answered once the owner stopped it and `interrupted` is committed (checked after);
- runs.wait throughput of trivial runs at 32 clients.
Needs PostgreSQL at 127.0.0.1:5432 (creates and drops its own database) and Redis at
127.0.0.1:6379. Medians over repetitions; this machine is small and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scenarios import percentile
from servers import DEMO, ROOT, Server, free_port

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
console = Console(width=None if sys.stdout.isatty() else 140)


def runlane(workdir: Path, database_url: str, name: str, *extra: str) -> Server:
    port = free_port()
    argv = [str(ROOT / ".venv" / "bin" / "runlane"), "serve", "--config",
            str(DEMO / "langgraph.json"), "--port", str(port), "--database-url", database_url,
            "--log-level", "warning", *extra]
    workdir.mkdir(parents=True, exist_ok=True)
    return Server(name, argv, workdir, port, env={"RUNLANE_WORKER_NAME": name})


class Deployment:
    def __init__(self, kind: str, workers: int, root: Path) -> None:
        self.kind = kind
        self.database = None
        if kind == "sqlite":
            self.servers = [runlane(root / "sqlite", f"sqlite:///{root / 'rl.sqlite'}", "w0")]
        else:
            self.database = f"runlane_bench_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.database}"')
            url = ADMIN_URL.rsplit("/", 1)[0] + "/" + self.database
            self.servers = [runlane(root / f"w{i}", url, f"w{i}", "--redis-url", REDIS_URL)
                            for i in range(workers)]
        self.urls = [s.url for s in self.servers]
        self.db_url = None if self.database is None else (
            ADMIN_URL.rsplit("/", 1)[0] + "/" + self.database)

    def start(self) -> None:
        for server in self.servers:
            server.start()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        if self.database:
            with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    def owner(self, run_id: str) -> int:
        if self.db_url is None:
            return 0
        with psycopg.connect(self.db_url) as conn:
            row = conn.execute("SELECT worker_id FROM runs WHERE run_id = %s", (run_id,)).fetchone()
        return int(row[0].split("-")[0].removeprefix("w"))


async def lifecycle(d: Deployment, http: httpx.AsyncClient, runs: int) -> dict[str, float]:
    """create → running (seen on another worker), then cancel through a non-owner."""
    c2r: list[float] = []
    cancel: list[float] = []
    n = len(d.urls)
    for i in range(runs):
        creator, observer = d.urls[i % n], d.urls[(i + 1) % n]
        tid = (await http.post(f"{creator}/threads", json={})).json()["thread_id"]
        started = time.perf_counter()
        run = (await http.post(f"{creator}/threads/{tid}/runs", json={
            "assistant_id": "sleepy", "input": {"steps": 100_000, "delay": 0.01}})).json()
        while (await http.get(f"{observer}/threads/{tid}/runs/{run['run_id']}")
               ).json()["status"] != "running":
            pass
        c2r.append(time.perf_counter() - started)
        await asyncio.sleep(0.02)
        owner = await asyncio.to_thread(d.owner, run["run_id"])
        via = d.urls[(owner + 1) % n]  # never the owner when there are several workers
        started = time.perf_counter()
        answer = await http.post(f"{via}/threads/{tid}/runs/{run['run_id']}/cancel",
                                 params={"wait": 1})
        cancel.append(time.perf_counter() - started)
        assert answer.status_code == 200 and answer.json()["status"] == "interrupted", answer.text
    return {"c2r_p50_ms": 1000 * percentile(c2r, 50), "c2r_p99_ms": 1000 * percentile(c2r, 99),
            "cancel_p50_ms": 1000 * percentile(cancel, 50),
            "cancel_p99_ms": 1000 * percentile(cancel, 99)}


async def throughput(d: Deployment, http: httpx.AsyncClient, runs: int, clients: int) -> float:
    urls = itertools.cycle(d.urls)
    threads = []
    for _ in range(runs):
        base = next(urls)
        threads.append((base, (await http.post(f"{base}/threads", json={})).json()["thread_id"]))
    semaphore = asyncio.Semaphore(clients)

    async def one(k: int) -> None:
        base, tid = threads[k]
        async with semaphore:
            answer = await http.post(f"{base}/threads/{tid}/runs/wait",
                                     json={"assistant_id": "trivial", "input": {"n": 0}})
            assert answer.status_code == 200, answer.text

    started = time.perf_counter()
    await asyncio.gather(*(one(k) for k in range(runs)))
    return runs / (time.perf_counter() - started)


async def measure(d: Deployment, runs: int, reps: int) -> dict[str, float]:
    limits = httpx.Limits(max_connections=128, max_keepalive_connections=128)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        await throughput(d, http, 64, 16)  # warm up
        samples: dict[str, list[float]] = {}
        for _ in range(reps):
            for key, value in (await lifecycle(d, http, runs)).items():
                samples.setdefault(key, []).append(value)
            samples.setdefault("wait32_runs_per_s", []).append(
                await throughput(d, http, 300, 32))
    return {key: statistics.median(values) for key, values in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--runs", type=int, default=60, help="runs per rep for latencies")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="runlane-bench-cluster-") as tmp:
        for kind in ("sqlite", "postgres"):
            deployment = Deployment(kind, args.workers, Path(tmp) / kind)
            try:
                deployment.start()
                console.print(f"[bold]{kind}[/]: {len(deployment.urls)} worker(s) ...")
                results[kind] = asyncio.run(measure(deployment, args.runs, args.reps))
            finally:
                deployment.stop()
    table = Table(title=f"runlane: 1 process on SQLite vs {args.workers} workers on "
                        f"PostgreSQL + Redis (medians of {args.reps} reps)")
    table.add_column("metric")
    table.add_column("SQLite, 1 process", justify="right")
    table.add_column(f"PostgreSQL, {args.workers} workers", justify="right")
    table.add_column("target (scale-out)")
    rows = [("create → running, p50 (ms)", "c2r_p50_ms", "< 20 ms"),
            ("create → running, p99 (ms)", "c2r_p99_ms", ""),
            ("cancel(wait) via a non-owner, p50 (ms)", "cancel_p50_ms", ""),
            ("cancel(wait) via a non-owner, p99 (ms)", "cancel_p99_ms", "< 100 ms"),
            ("runs.wait, 32 clients (runs/s)", "wait32_runs_per_s", "")]
    for label, key, target in rows:
        table.add_row(label, f"{results['sqlite'][key]:.1f}", f"{results['postgres'][key]:.1f}",
                      target)
    console.print(table)
    out = ROOT / "benchmarks" / "results" / f"cluster-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"workers": args.workers, "runs": args.runs, "reps": args.reps,
                               "results": results}, indent=2))
    console.print(f"raw results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
