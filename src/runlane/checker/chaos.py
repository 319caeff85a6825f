"""`--chaos`: SIGKILL worker processes during the trials and restart them.

The checker cannot know how an arbitrary server is started, so the user says:

- `--pids 123,456`: the worker processes on this host, in a fixed order. A worker's
  *index* is its position in that list (0, 1, ...).
- `--restart-cmd "..."`: a shell command that starts a replacement for a killed
  worker, with placeholders `{index}` (the worker's index), `{pid}` (the killed
  pid) and `{n}` (how many restarts so far). The process the checker starts for
  the command *is* the new worker (its pid is the one killed next time), so start
  the server in the foreground, ideally with `exec`:
  `--restart-cmd "exec runlane serve --port 8123 --database-url sqlite:///db.sqlite"`.
  The command runs in a session of its own (restarted workers outlive the check);
  its output goes to `--chaos-log`.

Every `--chaos-interval` seconds (randomized +-50%), one random worker is killed
with SIGKILL, the restart command runs at once, and the checker waits (at most
`--restart-timeout`) until `GET /ok` answers 200 on every server URL before the
next kill. Every kill
and restart is recorded with its monotonic time, in the report and the JSON dump.
Runs caught by a crash must still obey the contract: end `error` or `interrupted`
(never stuck; never `success` after an accepted cancel).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx

from runlane.checker.history import Clock, History


class Chaos:
    def __init__(self, *, pids: list[int], restart_cmd: str, urls: list[str], history: History,
                 clock: Clock, rng: random.Random, interval: float, restart_timeout: float,
                 log_path: Path, headers: dict[str, str] | None = None) -> None:
        self.workers: dict[int, int] = dict(enumerate(pids))
        self.started: dict[int, subprocess.Popen[bytes]] = {}  # index -> process we started
        self.restart_cmd = restart_cmd
        self.urls = urls
        self.history = history
        self.clock = clock
        self.rng = rng
        self.interval = interval
        self.restart_timeout = restart_timeout
        self.log_path = log_path
        self.headers = headers or {}
        self.restarts = 0

    def record(self, action: str, **fields: Any) -> None:
        self.history.chaos_events.append({"t": self.clock(), "action": action, **fields})

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.interval * self.rng.uniform(0.5, 1.5))
                return
            except TimeoutError:
                pass
            index = self.rng.choice(sorted(self.workers))
            await self.kill_and_restart(index)

    async def kill_and_restart(self, index: int) -> None:
        pid = self.workers[index]
        proc = self.started.get(index)
        try:
            if proc is not None:
                os.killpg(proc.pid, signal.SIGKILL)  # the shell and the server it started
            else:
                os.kill(pid, signal.SIGKILL)
            self.record("kill", index=index, pid=pid)
        except ProcessLookupError:
            self.record("kill", index=index, pid=pid, note="already gone")
        except PermissionError as exc:
            self.record("kill", index=index, pid=pid, note=f"not permitted: {exc}")
            return
        if proc is not None:
            await asyncio.to_thread(_reap, proc)
        await asyncio.sleep(0.2)  # let the kernel release the dead worker's sockets
        self.restarts += 1
        command = self.restart_cmd.format(index=index, pid=pid, n=self.restarts)
        new = await asyncio.to_thread(self._spawn, command)
        self.workers[index] = new.pid
        self.started[index] = new
        self.record("restart", index=index, old_pid=pid, pid=new.pid, command=command)
        ready = await self.wait_ready(new)
        self.record("ready" if ready else "not ready", index=index, pid=new.pid)

    def _spawn(self, command: str) -> subprocess.Popen[bytes]:
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(command, shell=True, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)

    async def wait_ready(self, proc: subprocess.Popen[bytes]) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.restart_timeout
        exited = False
        async with httpx.AsyncClient(timeout=2, headers=self.headers) as client:
            while loop.time() < deadline:
                if not exited and proc.poll() is not None:
                    exited = True  # a daemonizing command: the server may still come up
                    self.record("restart command exited", pid=proc.pid, code=proc.returncode)
                try:
                    answers = [await client.get(f"{url}/ok") for url in self.urls]
                    if all(a.status_code == 200 for a in answers):
                        return True
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        return False

    def new_pids(self) -> list[int]:
        """The pids of the workers the checker started (they keep running after the check)."""
        return [p.pid for p in self.started.values() if p.poll() is None]


def _reap(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def parse_pids(text: str) -> list[int]:
    pids = [int(p) for p in text.replace(" ", "").split(",") if p]
    if not pids:
        raise ValueError("--pids needs at least one process id")
    return pids
