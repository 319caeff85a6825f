"""`--chaos`: faults injected during the trials (a worker SIGKILLed and restarted, a
worker SIGSTOPped past its lease and continued, any fault a command or the caller
provides, such as restarting PostgreSQL or Redis).

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
- `--faults kill,stop,NAME...`: which faults to draw from (default `kill`). `stop`
  SIGSTOPs a worker for `--stop-seconds` (longer than the server's lease: its runs
  are taken over while it sleeps, and its late writes must be fenced) and then
  SIGCONTs it. Any other NAME is a `--fault-cmd NAME=COMMAND` (a shell command run to
  the end, e.g. `pg_ctl restart`), or a coroutine the caller passes (`runlane soak`-
  style harnesses: `Chaos(custom={...})`).

Every `--chaos-interval` seconds (randomized +-50%), one fault is drawn (a shuffled
bag of the kinds: each kind within any run of len(kinds) faults) and injected;
then the checker waits (at most `--restart-timeout`) until every server URL is ready
(`GET /ready` 200, or `GET /ok` where the server has no `/ready`) before the next.
Every fault is recorded with its monotonic times (a `window` event from the fault's
start to ready again), in the report and the JSON dump. Runs caught by a fault must
still obey the contract: end `error` or `interrupted` (never stuck; never `success`
after an accepted cancel); a 503 is tolerated only inside a fault's window.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from runlane.checker.history import Clock, History

# A fault the caller provides: it does its harm and returns (a note for the record,
# or None) once the harm is done, e.g. once a restarted service accepts connections.
FaultFn = Callable[[], Awaitable[str | None]]
BUILTIN_FAULTS = ("kill", "stop")


class Chaos:
    def __init__(self, *, pids: list[int], restart_cmd: str, urls: list[str],
                 history: History, clock: Clock, rng: random.Random, interval: float,
                 restart_timeout: float, log_path: Path,
                 headers: dict[str, str] | None = None, faults: list[str] | None = None,
                 stop_seconds: float = 10.0, custom: dict[str, FaultFn] | None = None) -> None:
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
        self.faults = list(faults or ["kill"])
        self.stop_seconds = stop_seconds
        self.custom = dict(custom or {})
        unknown = [f for f in self.faults if f not in BUILTIN_FAULTS and f not in self.custom]
        if unknown:
            raise ValueError(f"unknown fault(s) {unknown}: known are {list(BUILTIN_FAULTS)} "
                             "and those given with --fault-cmd NAME=COMMAND")
        self.restarts = 0
        self.stopped: set[int] = set()  # indexes SIGSTOPped right now

    def record(self, action: str, **fields: Any) -> None:
        self.history.chaos_events.append({"t": self.clock(), "action": action, **fields})

    async def run(self, stop: asyncio.Event) -> None:
        # Faults are drawn from a shuffled bag of every kind: random order, and every
        # kind within any len(faults) faults in a row (a short run still sees each).
        bag: list[str] = []
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.interval * self.rng.uniform(0.5, 1.5))
                return
            except TimeoutError:
                pass
            if not bag:
                bag = self.rng.sample(self.faults, len(self.faults))
            await self.inject(bag.pop(), stop)

    async def inject(self, kind: str, stop: asyncio.Event | None = None) -> None:
        """One fault, then wait until every worker is ready again; recorded as a window."""
        start = self.clock()
        index = self.rng.choice(sorted(self.workers))
        try:
            if kind == "kill":
                await self.kill_and_restart(index)
            elif kind == "stop":
                await self.stop_and_continue(index, stop)
            else:
                await self.custom_fault(kind)
        finally:
            ready = await self.wait_ready()
            self.record("ready" if ready else "not ready", fault=kind)
            self.history.chaos_events.append(
                {"t": start, "action": "window", "fault": kind, "t_end": self.clock()})

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

    def _signal(self, index: int, sig: signal.Signals) -> None:
        proc = self.started.get(index)
        if proc is not None:
            os.killpg(proc.pid, sig)
        else:
            os.kill(self.workers[index], sig)

    async def stop_and_continue(self, index: int, stop: asyncio.Event | None) -> None:
        """SIGSTOP the worker for stop_seconds (past its lease: a survivor takes its runs
        over, and what it writes when it wakes up must be fenced), then SIGCONT it."""
        pid = self.workers[index]
        seconds = self.stop_seconds * self.rng.uniform(1.0, 1.3)
        try:
            self._signal(index, signal.SIGSTOP)
        except (ProcessLookupError, PermissionError) as exc:
            self.record("stop", index=index, pid=pid, note=f"not stopped: {exc}")
            return
        self.stopped.add(index)
        self.record("stop", index=index, pid=pid, seconds=round(seconds, 2))
        try:
            if stop is not None:
                try:  # the end of the trials continues it at once
                    await asyncio.wait_for(stop.wait(), seconds)
                except TimeoutError:
                    pass
            else:
                await asyncio.sleep(seconds)
        finally:
            self.resume(index)

    def resume(self, index: int) -> None:
        if index not in self.stopped:
            return
        self.stopped.discard(index)
        try:
            self._signal(index, signal.SIGCONT)
            self.record("continue", index=index, pid=self.workers[index])
        except ProcessLookupError:
            self.record("continue", index=index, pid=self.workers[index], note="gone")

    def resume_all(self) -> None:
        """Never leave a worker stopped (the check was interrupted, or failed)."""
        for index in list(self.stopped):
            self.resume(index)

    async def custom_fault(self, kind: str) -> None:
        self.record("fault", fault=kind)
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            note = await asyncio.wait_for(self.custom[kind](), self.restart_timeout)
        except TimeoutError:
            note = f"did not finish within {self.restart_timeout:g}s"
        except Exception as exc:  # noqa: BLE001 - a failed fault is recorded, not fatal
            note = f"failed: {type(exc).__name__}: {exc}"[:300]
        self.record("fault done", fault=kind, seconds=round(loop.time() - began, 2),
                    **({"note": note} if note else {}))

    def _spawn(self, command: str) -> subprocess.Popen[bytes]:
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(command, shell=True, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)

    async def wait_ready(self, proc: subprocess.Popen[bytes] | None = None) -> bool:
        """Every URL ready: `/ready` 200 (its database and Redis answer), or `/ok` 200 on
        a server without `/ready`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.restart_timeout
        exited = False
        async with httpx.AsyncClient(timeout=2, headers=self.headers) as client:
            while loop.time() < deadline:
                if proc is not None and not exited and proc.poll() is not None:
                    exited = True  # a daemonizing command: the server may still come up
                    self.record("restart command exited", pid=proc.pid, code=proc.returncode)
                try:
                    if all([await _ready(client, url) for url in self.urls]):
                        return True
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        return False

    def new_pids(self) -> list[int]:
        """The pids of the workers the checker started (they keep running after the check)."""
        return [p.pid for p in self.started.values() if p.poll() is None]


async def _ready(client: httpx.AsyncClient, url: str) -> bool:
    answer = await client.get(f"{url}/ready")
    if answer.status_code == 404:
        answer = await client.get(f"{url}/ok")
    return answer.status_code == 200


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


def command_fault(command: str, log_path: Path) -> FaultFn:
    """A --fault-cmd: the shell command, run to its end (its output to the chaos log)."""

    async def run() -> str | None:
        def call() -> int:
            with open(log_path, "ab") as log:
                return subprocess.run(command, shell=True, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, check=False).returncode

        code = await asyncio.to_thread(call)
        return None if code == 0 else f"exit status {code}"

    return run


def parse_fault_cmds(values: list[str], log_path: Path) -> dict[str, FaultFn]:
    faults: dict[str, FaultFn] = {}
    for value in values:
        name, sep, command = value.partition("=")
        name = name.strip()
        if not sep or not name or not command.strip():
            raise ValueError(f"--fault-cmd {value!r}: expected NAME=COMMAND")
        if name in BUILTIN_FAULTS:
            raise ValueError(f"--fault-cmd {name}: {name!r} is a built-in fault")
        faults[name] = command_fault(command, log_path)
    return faults
