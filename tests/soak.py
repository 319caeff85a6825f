"""`make soak`: a long soak of a 3-worker deployment under faults (issue 15).

    make soak                                   # 10 minutes (SOAK_SECONDS=600)
    make soak SOAK_SECONDS=60                   # a shorter one
    .venv/bin/python tests/soak.py --seconds 600 --out soak-result.json

It starts a private PostgreSQL and a private Redis (the machine's server binaries on
free ports in a temporary folder: tests/private_services.py, so restarting them
disturbs no one else), 3 `runlane serve` workers on them (tests/graphs/langgraph.json:
the lifecycle toy graphs and the examples/agents agents), and drives them with
`runlane check` in this process: its randomized scenarios (cancel races, double
texting, joins, streams dropped and rejoined with Last-Event-ID, the react_agent
streaming tokens) with a webhook on half of the runs to the checker's receiver, while
its chaos injects, in a shuffled random order, every `--fault-interval` seconds or so:

- kill:     SIGKILL a worker, start it again;
- stop:     SIGSTOP a worker past its lease (+ grace), then SIGCONT (fenced late writes);
- postgres: stop PostgreSQL (fast: sessions cut), a few seconds down, start it;
- redis:    the same for Redis (persistent: an append-only file, as in production).

At the end the faults stop and everything settles; then the whole history is checked:
the checker's invariants (zero violations), no run left pending/running in the
database, every resumed stream equal to the run's replayed event log (no event lost
or repeated), every run that ended with a webhook delivered (the receiver and the
database's `webhook_state` agree). It prints a summary and writes it as JSON
(--out); the exit status is 1 on any violation, 2 if the soak could not run.

Why here and not in `runlane check` or the CLI: starting PostgreSQL and Redis from
the machine's binaries and runlane workers is test-harness work, the same the outage
and scale-out tests do (tests/private_services.py, tests/cluster.py); the checker
stays an HTTP client that injects faults it is given (`runlane check --faults ...`),
so it keeps working against any server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import random
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))

import psycopg  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from cluster import Cluster  # noqa: E402
from private_services import PrivatePostgres, PrivateRedis, missing_binaries  # noqa: E402
from runlane.checker.options import add_arguments  # noqa: E402
from runlane.checker.runner import Outcome, UsageError, execute  # noqa: E402

LEASE = 4.0  # --lease-seconds of the workers: `stop` lasts longer than lease + grace
GRACE = 2.0  # RUNLANE_LEASE_GRACE's default
ACTIVE = ("pending", "running")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tests/soak.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600.0,
                        help="how long scenarios start and faults are injected (default 600)")
    parser.add_argument("--fault-interval", type=float, default=10.0,
                        help="mean seconds between faults, after the previous one recovered "
                             "(default 10)")
    parser.add_argument("--faults", default="kill,stop,postgres,redis",
                        help="faults to draw from (default: all four)")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="scenarios at once (default 4)")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--settle", type=float, default=120.0,
                        help="seconds, after the check, for the database's runs and "
                             "webhooks to finish (default 120)")
    parser.add_argument("--out", type=Path, default=Path("soak-result.json"),
                        help="the summary, as JSON (default soak-result.json)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="logs and the full history (default: a temporary folder, "
                             "kept when something failed)")
    return parser.parse_args(argv)


class Load:
    """The machine's load average, sampled while the soak runs (the machine is shared)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float, float]] = []

    async def sample(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.samples.append(os.getloadavg())
            try:
                await asyncio.wait_for(stop.wait(), 10)
            except TimeoutError:
                pass

    def summary(self) -> dict[str, Any]:
        ones = [s[0] for s in self.samples] or [0.0]
        return {"start": list(self.samples[0]) if self.samples else None,
                "end": list(os.getloadavg()), "max_1min": max(ones),
                "mean_1min": round(sum(ones) / len(ones), 2), "cpus": os.cpu_count()}


def restart_scripts(cluster: Cluster, workdir: Path) -> str:
    """One script per worker that starts it again in the foreground (exec: the pid the
    checker gets is the server's), appending to the worker's log; the restart
    command the checker runs picks the script by the worker's index. Each start
    appends its pid to `restarted_pids_file(workdir)` first: the checker starts these
    workers in sessions of their own (they outlive the check), and whatever ends the
    soak (an error, SIGTERM, Ctrl-C) must still find and stop every one of them."""
    pids = shlex.quote(str(restarted_pids_file(workdir)))
    for i, worker in enumerate(cluster.workers):
        argv = [sys.executable, "-m", "runlane.cli", "serve", "--config", str(worker.config),
                "--port", str(worker.port), "--database-url", worker.database_url,
                *worker.extra_args]
        script = workdir / f"worker{i}.sh"
        script.write_text(f"echo $$ >> {pids}\n"
                          f"exec {shlex.join(argv)} >> {shlex.quote(str(worker.log_path))} "
                          "2>&1\n")
    return f"exec sh {shlex.quote(str(workdir))}/worker{{index}}.sh"


def restarted_pids_file(workdir: Path) -> Path:
    return workdir / "restarted.pids"


def restarted_pids(workdir: Path) -> list[int]:
    """Every worker the checker (re)started during this soak, alive or not."""
    try:
        text = restarted_pids_file(workdir).read_text()
    except FileNotFoundError:
        return []
    return [int(line) for line in text.split() if line.isdigit()]


def service_faults(postgres: PrivatePostgres, redis: PrivateRedis,
                   rng: random.Random) -> dict[str, Callable[[], Awaitable[str | None]]]:
    """The checker's custom faults: the private services down for 1-4 s, then back."""

    async def restart_postgres() -> str | None:
        down = round(rng.uniform(1.0, 4.0), 1)
        await asyncio.to_thread(postgres.restart, down)
        return f"down {down}s"

    async def restart_redis() -> str | None:
        down = round(rng.uniform(1.0, 4.0), 1)
        await asyncio.to_thread(redis.restart, down)
        return f"down {down}s"

    return {"postgres": restart_postgres, "redis": restart_redis}


def check_argv(opts: argparse.Namespace, cluster: Cluster, restart_cmd: str,
               workdir: Path) -> list[str]:
    return [
        *cluster.urls, "--duration", str(opts.seconds), "--concurrency", str(opts.concurrency),
        *(["--seed", str(opts.seed)] if opts.seed is not None else []),
        "--webhooks", "--webhook-wait", str(opts.settle),
        "--chaos", "--pids", ",".join(str(w.proc.pid) for w in cluster.workers if w.proc),
        "--restart-cmd", restart_cmd, "--faults", opts.faults,
        "--stop-seconds", str(LEASE + GRACE + 3), "--chaos-interval", str(opts.fault_interval),
        "--restart-timeout", "120", "--chaos-log", str(workdir / "chaos.log"),
        "--json", str(workdir / "history.json"), "--max-shown", "5",
    ]


def database_findings(url: str, delivered: set[str], bound: float) -> dict[str, Any]:
    """Straight from the database (every run, those whose create answer a fault cut
    included): none left pending/running, every webhook delivered, and the receiver
    got every run the database says was delivered. Waits up to `bound` for runs and
    deliveries still under way."""
    deadline = time.monotonic() + bound
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            active = conn.execute(
                "SELECT run_id, thread_id, status, worker_id, lease_expires_at::text "
                "FROM runs WHERE status = ANY(%s)", (list(ACTIVE),)).fetchall()
            owed = conn.execute(
                "SELECT run_id, status, webhook_state, webhook_attempts FROM runs "
                "WHERE webhook IS NOT NULL AND webhook_state IS DISTINCT FROM 'delivered'"
            ).fetchall()
            if (not active and all(o[2] == "failed" or o[0] in delivered for o in owed)) \
                    or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        by_status = dict(conn.execute(
            "SELECT status, count(*) FROM runs GROUP BY status ORDER BY status").fetchall())
        said_delivered = [r[0] for r in conn.execute(
            "SELECT run_id FROM runs WHERE webhook_state = 'delivered'").fetchall()]
        with_webhook = conn.execute(
            "SELECT count(*) FROM runs WHERE webhook IS NOT NULL").fetchone()
    # A delivery the receiver got whose outcome the worker could not record (PostgreSQL
    # going down right then) is retried, at least once as promised: not a violation,
    # and its retries, after the receiver closed, end `failed`.
    return {
        "runs_by_status": by_status,
        "runs_left_active": [list(map(str, r)) for r in active],
        "webhooks_in_database": with_webhook[0] if with_webhook else 0,
        "webhooks_not_delivered": [list(map(str, o)) for o in owed if o[0] not in delivered],
        "webhooks_received_outcome_not_recorded": [list(map(str, o)) for o in owed
                                                   if o[0] in delivered],
        "delivered_but_never_received": [r for r in said_delivered if r not in delivered],
    }


def harness_violations(db: dict[str, Any]) -> list[str]:
    found = [f"run {r[0]} (thread {r[1]}) left {r[2]!r} (worker {r[3]}, lease until {r[4]})"
             for r in db["runs_left_active"]]
    found += [f"run {o[0]} ended {o[1]!r} but its webhook is {o[2]!r} after {o[3]} "
              "attempt(s)" for o in db["webhooks_not_delivered"]]
    found += [f"run {r}: the database says its webhook was delivered, the receiver never "
              "got it" for r in db["delivered_but_never_received"]]
    return found


def summarize(opts: argparse.Namespace, outcome: Outcome | None, db: dict[str, Any],
              extra: list[str], load: Load, started: datetime.datetime,
              elapsed: float) -> dict[str, Any]:
    s = outcome.summary if outcome else {}
    violations = (outcome.violations if outcome else [])
    return {
        "command": opts.command,
        "started_at": started.isoformat(timespec="seconds"),
        "soak_seconds": opts.seconds,
        "elapsed_seconds": round(elapsed, 1),
        "workers": opts.workers,
        "concurrency": opts.concurrency,
        "seed": s.get("seed"),
        "load_average": load.summary(),
        "requests": s.get("requests", 0),
        "requests_by_kind": s.get("requests_by_kind", {}),
        "answers_by_code": s.get("answers_by_code", {}),
        "faults_by_kind": s.get("faults_by_kind", {}),
        "faults_not_recovered": sum(1 for e in (outcome.history.chaos_events if outcome else [])
                                    if e["action"] == "not ready"),
        "scenarios": s.get("scenarios_total", 0),
        "scenarios_aborted": sum(s.get("scenarios_aborted", {}).values()),
        "runs_checked": s.get("runs", 0),
        "runs_by_final_status": s.get("runs_by_final_status", {}),
        "streams_resumed": s.get("streams_resumed", 0),
        "streams_compared_with_replay": s.get("streams_compared_with_replay", 0),
        "stream_replays_empty": s.get("stream_replays_empty", 0),
        "webhooks": s.get("webhooks", {}),
        "database": db,
        "violations": len(violations) + len(extra),
        "violations_by_invariant": {k: v for k, v in
                                    s.get("violations_by_invariant", {}).items() if v},
        "violation_messages": [f"[{v.invariant}] {v.message} (run {v.run_id}, "
                               f"scenario {v.scenario})" for v in violations[:50]],
        "harness_violations": extra,
        "internal_errors": s.get("internal_errors", 0),
    }


def print_summary(console: Console, result: dict[str, Any]) -> None:
    table = Table(title="soak", show_header=False)
    load = result["load_average"]
    rows = [
        ("started", result["started_at"]),
        ("duration", f"{result['soak_seconds']:g}s of faults and scenarios, "
                     f"{result['elapsed_seconds']:g}s in all"),
        ("load average (1 min)", f"max {load['max_1min']:.2f}, mean {load['mean_1min']}, "
                                 f"{load['cpus']} cpus"),
        ("requests", f"{result['requests']}: " + ", ".join(
            f"{k} {v}" for k, v in result["requests_by_kind"].items())),
        ("answers", ", ".join(f"{k}: {v}" for k, v in result["answers_by_code"].items())),
        ("faults", ", ".join(f"{k} {v}" for k, v in result["faults_by_kind"].items())
         + f" ({result['faults_not_recovered']} not recovered in time)"),
        ("scenarios", f"{result['scenarios']} ({result['scenarios_aborted']} aborted)"),
        ("runs", f"{result['runs_checked']} checked: " + ", ".join(
            f"{k} {v}" for k, v in result["runs_by_final_status"].items())),
        ("runs in the database", ", ".join(
            f"{k} {v}" for k, v in result["database"].get("runs_by_status", {}).items())),
        ("runs left active", str(len(result["database"].get("runs_left_active", [])))),
        ("streams", f"{result['streams_resumed']} resumed, "
                    f"{result['streams_compared_with_replay']} compared with the replayed log"),
        ("webhooks", json.dumps(result["webhooks"])),
        ("violations", str(result["violations"])),
    ]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    for message in result["harness_violations"][:20]:
        console.print(f"[bold red]VIOLATION[/] {message}", highlight=False)


async def soak(opts: argparse.Namespace, workdir: Path, console: Console) -> int:
    err = Console(stderr=True)
    # SIGTERM (a timeout, a Ctrl-C'd make) cancels the soak: the `finally` below still
    # stops every process it started (workers, PostgreSQL, Redis).
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    started = datetime.datetime.now(datetime.UTC)
    t0 = time.monotonic()
    load = Load()
    stop_load = asyncio.Event()
    sampler = asyncio.ensure_future(load.sample(stop_load))
    postgres = PrivatePostgres().start()
    redis = PrivateRedis(persist=True).start()
    cluster: Cluster | None = None
    outcome: Outcome | None = None
    try:
        err.print(f"soak: PostgreSQL on {postgres.port}, Redis on {redis.port}; starting "
                  f"{opts.workers} workers (logs in {workdir})", highlight=False)
        cluster = Cluster(workdir, opts.workers, "--lease-seconds", str(LEASE),
                          "--log-level", "warning", admin_url=postgres.url,
                          redis_url=redis.url)
        await asyncio.to_thread(cluster.start)
        restart_cmd = restart_scripts(cluster, workdir)
        parser = argparse.ArgumentParser(prog="runlane check")
        add_arguments(parser)
        args = parser.parse_args(check_argv(opts, cluster, restart_cmd, workdir))
        rng = random.Random(f"{opts.seed}:services")
        outcome = await execute(args, console, err,
                                custom_faults=service_faults(postgres, redis, rng))
        delivered = {d["run_id"] for d in outcome.history.webhooks if d.get("run_id")}
        err.print(f"soak: checking the database ({time.monotonic() - t0:.0f}s)",
                  highlight=False)
        db = await asyncio.to_thread(database_findings, cluster.database_url, delivered,
                                     opts.settle)
    except UsageError as exc:
        err.print(f"[bold red]soak: cannot run:[/] {exc}", highlight=False)
        return 2
    finally:
        stop_load.set()
        await sampler
        # The restarted workers, from the pids they recorded: the checker's own list
        # is lost when it is interrupted (SIGTERM cancels it), which left workers
        # running after their PostgreSQL and Redis were gone.
        await asyncio.to_thread(stop_processes, restarted_pids(workdir))
        if cluster is not None:
            cluster.stop()
        redis.remove()
        postgres.stop()
    extra = harness_violations(db)
    empty = outcome.summary.get("stream_replays_empty", 0) if outcome else 0
    if empty:  # the runs' logs are in Redis, which keeps them across its restarts here
        extra.append(f"{empty} stream(s) replayed no event at all though the client got "
                     "some (stream_replays_empty)")
    result = summarize(opts, outcome, db, extra, load, started, time.monotonic() - t0)
    opts.out.write_text(json.dumps(result, indent=1, default=str))
    print_summary(console, result)
    console.print(f"summary written to {opts.out}; history and logs in {workdir}",
                  highlight=False)
    if result["violations"]:
        return 1
    return 2 if result["internal_errors"] else 0


def _is_worker(pid: int) -> bool:
    """Whether `pid` is (still) a runlane worker, not a process that reused the pid."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"runlane.cli" in argv and b"serve" in argv


def _gone(pid: int) -> bool:
    """Whether `pid` has exited (reaped here if it is this process's child)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done != 0
    except ChildProcessError:  # not our child (or reaped already): is it still there?
        return not _is_worker(pid)


def stop_processes(pids: list[int]) -> None:
    """The workers the checker restarted (each the leader of its own session): SIGTERM,
    then SIGKILL for any still there after 20 s."""
    pids = [pid for pid in dict.fromkeys(pids) if _is_worker(pid)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGCONT)  # in case it was stopped
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    left = list(pids)
    while left and time.monotonic() < deadline:
        left = [pid for pid in left if not _gone(pid)]
        if left:
            time.sleep(0.1)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    opts = parse_args(args)
    # What was run, as it can be run again (`make soak` passes its own arguments on).
    opts.command = shlex.join([sys.executable, str(Path(sys.argv[0] if argv is None
                                                        else __file__)), *args])
    missing = missing_binaries()
    if missing:
        print(f"soak: needs {', '.join(missing)}", file=sys.stderr)
        return 2
    console = Console(width=160)
    workdir = opts.workdir or Path(tempfile.mkdtemp(prefix="runlane-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    code = asyncio.run(soak(opts, workdir, console))
    if code == 0 and opts.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
