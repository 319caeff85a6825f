"""runlane scale-out figures, side by side with one process on SQLite.

    make bench-cluster                       # 3 workers on PostgreSQL + Redis vs 1 on SQLite
    .venv/bin/python benchmarks/cluster.py --workers 3 --runs 60 --reps 3

Measured through plain HTTP (httpx), every request sent to the next worker in turn:
- create → running: create on worker i, poll `GET run` on worker i+1 until `running`;
- cross-worker cancel: `cancel?wait=1` sent to a worker that does NOT own the run,
  answered once the owner stopped it and `interrupted` is committed (checked after);
- runs.wait throughput of trivial runs at 32 clients, and during it what a run costs
  by component (cluster_costs.py): CPU of the workers, of PostgreSQL and of Redis per
  run, PostgreSQL statements, transactions and NOTIFYs per run, Redis commands per run.
By default PostgreSQL and Redis are private instances started for the run (the
machine's binaries, free ports), so that their CPU and counters are this deployment's
alone; `--services machine` uses PostgreSQL at 127.0.0.1:5432 (its own database,
dropped after) and Redis at 127.0.0.1:6379, without the split. Medians over
repetitions; this machine is small and noisy: CPU time, not wall time, is the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import psycopg
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster_costs import Costs, PrivatePostgres, PrivateRedis, format_costs
from scenarios import percentile
from servers import DEMO, ROOT, Server, free_port

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
console = Console(width=None if sys.stdout.isatty() else 140)


def runlane(workdir: Path, database_url: str, name: str, *extra: str,
            project: Path = DEMO) -> Server:
    port = free_port()
    argv = [str(ROOT / ".venv" / "bin" / "runlane"), "serve", "--config",
            str(project / "langgraph.json"), "--port", str(port), "--database-url", database_url,
            "--log-level", "warning", *extra]
    workdir.mkdir(parents=True, exist_ok=True)
    return Server(name, argv, workdir, port, env={"RUNLANE_WORKER_NAME": name})


class Deployment:
    """One SQLite process, or N workers on PostgreSQL + Redis (private ones by default:
    see the module docstring). `extra` goes to every worker's command line."""

    def __init__(self, kind: str, workers: int, root: Path, *, services: str = "private",
                 extra: Sequence[str] = (), project: Path = DEMO) -> None:
        self.kind = kind
        self.database = None
        self.postgres: PrivatePostgres | None = None
        self.redis: PrivateRedis | None = None
        self.admin_url, redis_url = ADMIN_URL, REDIS_URL
        self.costs: Costs | None = None
        if kind == "sqlite":
            self.servers = [runlane(root / "sqlite", f"sqlite:///{root / 'rl.sqlite'}", "w0",
                                    *extra, project=project)]
        else:
            if services == "private":
                self.postgres = PrivatePostgres().start()
                self.redis = PrivateRedis(maxclients=10000).start()
                self.admin_url, redis_url = self.postgres.admin_url, self.redis.url
            self.database = f"runlane_bench_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.database}"')
            url = self.admin_url.rsplit("/", 1)[0] + "/" + self.database
            self.servers = [runlane(root / f"w{i}", url, f"w{i}", "--redis-url", redis_url,
                                    *extra, project=project)
                            for i in range(workers)]
        self.urls = [s.url for s in self.servers]
        self.db_url = None if self.database is None else (
            self.admin_url.rsplit("/", 1)[0] + "/" + self.database)

    def start(self) -> None:
        for server in self.servers:
            server.start()
        self.costs = Costs(self.servers, postgres=self.postgres, database=self.database,
                           redis=self.redis)

    def stop(self) -> None:
        if self.costs is not None:
            self.costs.close()
        for server in self.servers:
            server.stop()
        try:
            if self.database and self.postgres is None:
                with psycopg.connect(self.admin_url, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        finally:
            if self.postgres is not None:
                self.postgres.stop()
            if self.redis is not None:
                self.redis.stop()

    def retry_warnings(self) -> int:
        """Lines of redis-py's pool exhaustion in the workers' logs."""
        return sum(s.log_path.read_text(errors="replace").count("Too many connections")
                   for s in self.servers if s.log_path.exists())

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


async def throughput(d: Deployment, http: httpx.AsyncClient, runs: int, clients: int
                     ) -> tuple[float, dict[str, Any]]:
    """runs.wait at `clients` concurrent clients: runs/s, and the costs per run."""
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

    assert d.costs is not None
    before = await asyncio.to_thread(d.costs.snapshot)
    started = time.perf_counter()
    await asyncio.gather(*(one(k) for k in range(runs)))
    rate = runs / (time.perf_counter() - started)
    await asyncio.sleep(0.3)  # what a run does right after answering (its end, its NOTIFYs)
    after = await asyncio.to_thread(d.costs.snapshot)
    return rate, Costs.delta(before, after, runs)


async def measure(d: Deployment, runs: int, reps: int, wait_runs: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=128, max_keepalive_connections=128)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        await throughput(d, http, 64, 16)  # warm up
        samples: dict[str, list[float]] = {}
        details: list[dict[str, Any]] = []
        for rep in range(reps):
            for key, value in (await lifecycle(d, http, runs)).items():
                samples.setdefault(key, []).append(value)
            rate, costs = await throughput(d, http, wait_runs, 32)
            samples.setdefault("wait32_runs_per_s", []).append(rate)
            details.append(costs)
            for key, value in costs.items():
                if isinstance(value, int | float):
                    samples.setdefault(key, []).append(value)
            console.print(f"  rep {rep + 1}: {rate:.1f} runs/s\n"
                          + "\n".join("    " + line for line in format_costs(costs).splitlines()))
    result: dict[str, Any] = {key: statistics.median(values) for key, values in samples.items()}
    result["reps_detail"] = details
    result["too_many_connections_warnings"] = d.retry_warnings()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--runs", type=int, default=60, help="runs per rep for latencies")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--wait-runs", type=int, default=600,
                        help="runs per rep of the 32-client runs.wait phase")
    parser.add_argument("--services", choices=["private", "machine"], default="private",
                        help="private PostgreSQL + Redis (default; CPU split by component) "
                             "or the machine's")
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    results: dict[str, dict[str, Any]] = {}
    load_start = os.getloadavg()
    console.print(f"load average at start: {', '.join(f'{x:.2f}' for x in load_start)}")
    with tempfile.TemporaryDirectory(prefix="runlane-bench-cluster-") as tmp:
        for kind in ("sqlite", "postgres"):
            if args.only and kind != args.only:
                continue
            deployment = Deployment(kind, args.workers, Path(tmp) / kind, services=args.services)
            try:
                deployment.start()
                console.print(f"[bold]{kind}[/]: {len(deployment.urls)} worker(s) ...")
                results[kind] = asyncio.run(measure(deployment, args.runs, args.reps,
                                                    args.wait_runs))
            finally:
                deployment.stop()
    load_end = os.getloadavg()
    table = Table(title=f"runlane: 1 process on SQLite vs {args.workers} workers on "
                        f"PostgreSQL + Redis (medians of {args.reps} reps)")
    table.add_column("metric")
    table.add_column("SQLite, 1 process", justify="right")
    table.add_column(f"PostgreSQL, {args.workers} workers", justify="right")
    table.add_column("target (scale-out)")
    rows = [("create → running, p50 (ms)", "c2r_p50_ms", "< 20 ms", 1),
            ("create → running, p99 (ms)", "c2r_p99_ms", "", 1),
            ("cancel(wait) via a non-owner, p50 (ms)", "cancel_p50_ms", "", 1),
            ("cancel(wait) via a non-owner, p99 (ms)", "cancel_p99_ms", "< 100 ms", 1),
            ("runs.wait, 32 clients (runs/s)", "wait32_runs_per_s", "", 1),
            ("  CPU per run: workers (ms)", "workers_cpu_ms_per_run", "", 2),
            ("  CPU per run: PostgreSQL (ms)", "postgres_cpu_ms_per_run", "", 2),
            ("  CPU per run: Redis (ms)", "redis_cpu_ms_per_run", "", 2),
            ("  CPU per run: total (ms)", "total_cpu_ms_per_run", "< 2x SQLite", 2),
            ("  PostgreSQL statements per run", "pg_statements_per_run", "", 1),
            ("  PostgreSQL transactions per run", "pg_transactions_per_run", "", 2),
            ("  NOTIFYs per run", "notifies_per_run", "", 2),
            ("  Redis round trips per run", "redis_round_trips_per_run", "", 1)]

    def cell(kind: str, key: str, digits: int) -> str:
        value = results.get(kind, {}).get(key)
        return "" if value is None else f"{value:.{digits}f}"

    for label, key, target, digits in rows:
        table.add_row(label, cell("sqlite", key, digits), cell("postgres", key, digits), target)
    console.print(table)
    if "postgres" in results:
        detail = results["postgres"]["reps_detail"][-1]
        console.print(f"Redis commands per run (last rep): {detail.get('redis_commands_per_run')}")
        console.print("PostgreSQL statements per run (last rep):")
        for query, n in detail.get("pg_statements_by_query", {}).items():
            console.print(f"  {n:6.2f}  {query}", markup=False, highlight=False)
        console.print(f"NOTIFYs per run by channel (last rep): "
                      f"{detail.get('notifies_by_channel')}")
        console.print("redis-py 'Too many connections' warnings in the workers' logs: "
                      f"{results['postgres']['too_many_connections_warnings']}")
    if "sqlite" in results and "postgres" in results:
        ratio = (results["postgres"]["total_cpu_ms_per_run"]
                 / results["sqlite"]["total_cpu_ms_per_run"])
        console.print(f"cluster / SQLite server CPU per run: {ratio:.2f}x (target <= 2x)")
    console.print(f"load average: start {', '.join(f'{x:.2f}' for x in load_start)}, "
                  f"end {', '.join(f'{x:.2f}' for x in load_end)}")
    out = ROOT / "benchmarks" / "results" / f"cluster-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"workers": args.workers, "runs": args.runs, "reps": args.reps,
                               "wait_runs": args.wait_runs, "services": args.services,
                               "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                               "loadavg_start": load_start, "loadavg_end": load_end,
                               "results": results}, indent=2))
    console.print(f"raw results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
