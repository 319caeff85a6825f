"""Private PostgreSQL and Redis instances for tests that must stop and restart them:
the same server binaries the machine runs, on free ports in a temporary folder, so
restarting them disturbs nothing else."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from conftest import free_port


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _as_postgres(*argv: str) -> list[str]:
    # PostgreSQL refuses to run as root; tests (and CI) do run as root here.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return list(argv)


class PrivatePostgres:
    def __init__(self) -> None:
        bindir = postgres_bin()
        assert bindir is not None, "PostgreSQL server binaries not found"
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="runlane-pg-"))
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(_as_postgres(str(bindir / "initdb"), "-D", str(self.dir / "data"),
                                    "-A", "trust", "-U", "postgres", "--no-sync"),
                       check=True, capture_output=True, timeout=120)

    def _ctl(self, *args: str) -> None:
        subprocess.run(_as_postgres(
            str(self.bindir / "pg_ctl"), "-D", str(self.dir / "data"), "-l",
            str(self.dir / "log"), "-w", "-t", "60",
            "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off",
            *args), check=True, capture_output=True, timeout=90)

    def start(self) -> PrivatePostgres:
        self._ctl("start")
        return self

    def restart(self, down: float = 0.0) -> None:
        """Restart (fast shutdown: sessions are cut); `down` seconds stopped in between."""
        if down <= 0:
            self._ctl("restart", "-m", "fast")
            return
        self._ctl("stop", "-m", "fast")
        time.sleep(down)
        self._ctl("start")

    def stop(self) -> None:
        try:
            self._ctl("stop", "-m", "immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """`persist=True`: an append-only file in a folder of its own, so a restart keeps
    the data (as a production Redis with persistence does); otherwise none.
    `maxclients`: Redis's connection limit, when not its own default (benchmarks ask
    for the one their many workers' pools need)."""

    def __init__(self, *, persist: bool = False, maxclients: int | None = None) -> None:
        self.maxclients = maxclients
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir = Path(tempfile.mkdtemp(prefix="runlane-redis-")) if persist else None

    def start(self) -> PrivateRedis:
        persistence = (["--appendonly", "yes", "--appendfsync", "everysec",
                        "--dir", str(self.dir)] if self.dir else ["--appendonly", "no"])
        limits = ["--maxclients", str(self.maxclients)] if self.maxclients else []
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             *persistence, *limits], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            probe = subprocess.run(["redis-cli", "-p", str(self.port), "ping"],
                                   check=False, capture_output=True, text=True)
            if probe.stdout.strip() == "PONG":
                return self
            time.sleep(0.05)
        raise RuntimeError("private redis did not start")

    def restart(self, down: float = 0.0) -> None:
        """Stop (SIGTERM: a persistent one writes its file first), `down` seconds
        stopped, start again on the same port."""
        self.stop()
        time.sleep(down)
        self.start()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def remove(self) -> None:
        """Stop, and delete its folder (persist=True)."""
        self.stop()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)


def missing_binaries() -> list[str]:
    missing = []
    if postgres_bin() is None:
        missing.append("PostgreSQL server binaries (initdb, pg_ctl)")
    if shutil.which("redis-server") is None:
        missing.append("redis-server")
    return missing
