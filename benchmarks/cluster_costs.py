"""What a scale-out deployment spends per run, by component, for the cluster benchmarks.

The benchmarks start a private PostgreSQL (with `pg_stat_statements` preloaded) and a
private Redis from the machine's server binaries, on free ports in a temporary folder,
so that every CPU second and every command counted is the deployment's own: the
machine's shared PostgreSQL and Redis also serve other work, whose CPU and commands
would mix in. (`--services machine` measures on those instead, without the split.)

`Costs.snapshot()` reads, at one moment:
- CPU seconds (user + system) of the worker processes, of the PostgreSQL server (the
  postmaster, its live children and the children it already reaped, so that a backend
  that exited mid-phase still counts), and of the Redis server, from /proc via psutil;
- PostgreSQL: statements executed in the deployment's database (`pg_stat_statements`:
  every statement a client sent, BEGIN and COMMIT included, so about one network round
  trip each), transactions committed and rolled back (`pg_stat_database`), and the
  NOTIFYs delivered to a LISTEN connection of our own on runlane's channels;
- Redis: calls per command (`INFO commandstats`; commands a Lua script runs are
  counted there too, so scripts' inner calls are split out by name: `evalsha` is the
  round trip, its `xadd`/`xrevrange`/`pexpire` are not).
`Costs.delta(before, after, runs, tokens)` turns two snapshots into per-run (and
per-token) figures.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

# The tests' private Redis (a throw-away redis-server on a free port); appended, so
# this folder's own modules (cluster.py) win over the tests' of the same name.
sys.path.append(str(Path(__file__).resolve().parent.parent / "tests"))

from private_services import PrivateRedis

# runlane's LISTEN/NOTIFY channels (src/runlane/executor/bus.py).
CHANNELS = ("runlane_wake", "runlane_cancel", "runlane_done", "runlane_thread")
# Commands Lua scripts run inside Redis (not round trips of their own).
SCRIPT_INNER = frozenset({"xadd", "xrevrange", "xrange", "pexpire"})


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(*argv: str) -> list[str]:
    # PostgreSQL refuses to run as root.
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else list(argv)


class PrivatePostgres:
    """A throw-away PostgreSQL cluster (fsync off, pg_stat_statements preloaded)."""

    def __init__(self, max_connections: int = 200) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found")
        self.bindir = Path(found[-1]).parent
        self.dir = Path(tempfile.mkdtemp(prefix="runlane-bench-pg-"))
        self.port = _free_port()
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.max_connections = max_connections
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(_as_postgres(str(self.bindir / "initdb"), "-D", str(self.dir / "data"),
                                    "-A", "trust", "-U", "postgres", "--no-sync"),
                       check=True, capture_output=True, timeout=120)

    def _ctl(self, *args: str) -> None:
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   f"-c max_connections={self.max_connections} "
                   "-c shared_preload_libraries=pg_stat_statements "
                   "-c pg_stat_statements.track=top")
        subprocess.run(_as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.dir / "data"),
                                    "-l", str(self.dir / "log"), "-w", "-t", "60", "-o", options,
                                    *args), check=True, capture_output=True, timeout=90)

    def start(self) -> PrivatePostgres:
        self._ctl("start")
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        return self

    def postmaster_pid(self) -> int:
        return int((self.dir / "data" / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self._ctl("stop", "-m", "immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


def _cpu(process: psutil.Process, reaped_children: bool = False) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    total = times.user + times.system
    if reaped_children:
        total += times.children_user + times.children_system
    return total


class NotifyCounter:
    """A LISTEN connection of our own on runlane's channels: counts what is delivered."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.counts: dict[str, int] = dict.fromkeys(CHANNELS, 0)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)

    def start(self) -> NotifyCounter:
        self._thread.start()
        self._ready.wait(10)
        return self

    def _listen(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            for channel in CHANNELS:
                conn.execute(f"LISTEN {channel}")
            self._ready.set()
            while not self._stop.is_set():
                for note in conn.notifies(timeout=0.2):
                    self.counts[note.channel] = self.counts.get(note.channel, 0) + 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class Costs:
    """Per-component counters of one deployment (see the module docstring)."""

    def __init__(self, workers: Sequence[Any], *, postgres: PrivatePostgres | None,
                 database: str | None, redis: PrivateRedis | None) -> None:
        self.workers = workers  # benchmarks/servers.py Server objects
        self.postgres = postgres
        self.database = database
        self.redis = redis
        self.notifies: NotifyCounter | None = None
        if postgres is not None and database is not None:
            url = postgres.admin_url.rsplit("/", 1)[0] + "/" + database
            self.notifies = NotifyCounter(url).start()

    def close(self) -> None:
        if self.notifies is not None:
            self.notifies.stop()

    def snapshot(self) -> dict[str, Any]:
        snap: dict[str, Any] = {"workers_cpu": sum(w.cpu_seconds() for w in self.workers)}
        if self.postgres is not None:
            master = psutil.Process(self.postgres.postmaster_pid())
            snap["postgres_cpu"] = _cpu(master, reaped_children=True) + sum(
                _cpu(child) for child in master.children(recursive=True))
            snap.update(self._postgres_counters())
        if self.redis is not None and self.redis.proc is not None:
            snap["redis_cpu"] = _cpu(psutil.Process(self.redis.proc.pid))
            snap["redis_commands"] = self._redis_commands()
        if self.notifies is not None:
            snap["notifies"] = dict(self.notifies.counts)
        return snap

    def _postgres_counters(self) -> dict[str, Any]:
        import psycopg

        assert self.postgres is not None
        with psycopg.connect(self.postgres.admin_url, autocommit=True) as conn:
            statements = conn.execute(
                "SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s "
                "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s",
                (self.database,)).fetchone()
            by_query = dict(conn.execute(
                "SELECT s.query, sum(s.calls) FROM pg_stat_statements s "
                "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s GROUP BY s.query",
                (self.database,)).fetchall())
            xacts = conn.execute(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
                (self.database,)).fetchone()
            conn.execute("SELECT pg_stat_clear_snapshot()")
        return {"pg_statements": int(statements[0]) if statements else 0,
                "pg_by_query": {q: int(n) for q, n in by_query.items()},
                "pg_transactions": int(xacts[0]) if xacts and xacts[0] is not None else 0}

    def _redis_commands(self) -> dict[str, int]:
        import redis

        assert self.redis is not None
        client = redis.Redis.from_url(self.redis.url)
        try:
            stats = client.info("commandstats")
        finally:
            client.close()
        return {name.removeprefix("cmdstat_"): int(value["calls"])
                for name, value in stats.items()}

    @staticmethod
    def delta(before: dict[str, Any], after: dict[str, Any], runs: int,
              tokens: int = 0) -> dict[str, Any]:
        """Per-run figures between two snapshots (CPU in ms; and per token if given)."""
        out: dict[str, Any] = {}
        cpu_total = 0.0
        for part in ("workers", "postgres", "redis"):
            key = f"{part}_cpu"
            if key in before and key in after:
                spent = after[key] - before[key]
                cpu_total += spent
                out[f"{part}_cpu_ms_per_run"] = 1000 * spent / runs
                if tokens:
                    out[f"{part}_cpu_ms_per_token"] = 1000 * spent / tokens
        out["total_cpu_ms_per_run"] = 1000 * cpu_total / runs
        if tokens:
            out["total_cpu_ms_per_token"] = 1000 * cpu_total / tokens
        for key in ("pg_statements", "pg_transactions"):
            if key in before:
                # Our own counter queries run in another database: nothing to subtract.
                out[f"{key}_per_run"] = (after[key] - before[key]) / runs
        if "pg_by_query" in before:
            # Which statements a run makes (the top ones), for where the round trips go.
            calls = {q: n - before["pg_by_query"].get(q, 0)
                     for q, n in after["pg_by_query"].items()}
            out["pg_statements_by_query"] = {
                " ".join(q.split())[:120]: round(n / runs, 2)
                for q, n in sorted(calls.items(), key=lambda x: -x[1]) if n / runs >= 0.05}
        if "notifies" in before:
            by_channel = {ch: (after["notifies"][ch] - before["notifies"][ch]) / runs
                          for ch in after["notifies"]}
            out["notifies_per_run"] = sum(by_channel.values())
            out["notifies_by_channel"] = by_channel
        if "redis_commands" in before:
            calls = {name: after["redis_commands"].get(name, 0)
                     - before["redis_commands"].get(name, 0)
                     for name in after["redis_commands"]}
            # `info` is ours (the snapshot itself).
            calls = {name: n for name, n in calls.items() if n and name != "info"}
            out["redis_round_trips_per_run"] = sum(
                n for name, n in calls.items() if name not in SCRIPT_INNER) / runs
            out["redis_commands_per_run"] = {
                name: round(n / runs, 2) for name, n in sorted(calls.items(), key=lambda x: -x[1])}
        return out


def format_costs(costs: dict[str, Any], per: str = "run") -> str:
    """One line per figure, for the console."""
    lines = []
    unit = f"ms/{per}"
    parts = [f"{p} {costs[f'{p}_cpu_ms_per_{per}']:.3f}" for p in ("workers", "postgres", "redis")
             if f"{p}_cpu_ms_per_{per}" in costs]
    lines.append(f"CPU {unit}: " + ", ".join(parts)
                 + f"; total {costs[f'total_cpu_ms_per_{per}']:.3f}")
    if "pg_statements_per_run" in costs:
        channels = {k: round(v, 2) for k, v in costs.get("notifies_by_channel", {}).items()}
        lines.append(f"PostgreSQL per run: {costs['pg_statements_per_run']:.1f} statements, "
                     f"{costs['pg_transactions_per_run']:.2f} transactions, "
                     f"{costs.get('notifies_per_run', 0):.2f} NOTIFYs "
                     f"{channels}")
    if "redis_round_trips_per_run" in costs:
        top = ", ".join(f"{k} {v}" for k, v in list(costs["redis_commands_per_run"].items())[:8])
        lines.append(f"Redis per run: {costs['redis_round_trips_per_run']:.1f} round trips "
                     f"({top})")
    return "\n".join(lines)
