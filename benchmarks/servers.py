"""Start and stop the two servers under test: runlane and the reference `langgraph dev`.

Each server runs in its own process group, in a fresh temporary directory, on a free
port, logging to a file in that directory. `stop()` ends the whole group (and only
that group); `Servers` stops everything it started on exit, on exceptions and on
Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo"
DEFAULT_REF_VENV = ROOT / "benchmarks" / ".venv-ref"
REF_PACKAGE = "langgraph-cli[inmem]"
# The test graphs include the agent corpus (examples/agents): lc_agent needs LangChain.
REF_EXTRAS = ["langchain>=1.0,<2"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_ref_venv(venv: Path, log=print) -> Path:
    """The reference server's `langgraph` executable, installing it on first use."""
    exe = venv / "bin" / "langgraph"
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "install", "--quiet"]
    if exe.exists():
        # A venv made before the extras were needed gets them once.
        has_extras = subprocess.run(
            [python, "-c", "import langchain.agents"], capture_output=True, check=False)
        if has_extras.returncode != 0:
            log(f"installing {' '.join(REF_EXTRAS)} into {venv} ...")
            subprocess.run([*pip, *REF_EXTRAS], check=True)
        return exe
    log(f"installing the reference server ({REF_PACKAGE}) into {venv} ...")
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, REF_PACKAGE, *REF_EXTRAS], check=True)
    if not exe.exists():
        raise RuntimeError(f"{REF_PACKAGE} installed but {exe} is missing")
    return exe


class Server:
    """One server process: its command, directory, port and process group."""

    def __init__(self, name: str, argv: list[str], workdir: Path, port: int,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = argv
        self.env = env or {}
        self.workdir = workdir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = workdir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> None:
        env = {
            **os.environ,
            "LANGGRAPH_CLI_NO_ANALYTICS": "1",  # no network calls from the reference CLI
            "LANGSMITH_TRACING": "false",
            "PYTHONUNBUFFERED": "1",
            **self.env,
        }
        env.pop("VIRTUAL_ENV", None)
        # The server starts in its own directory: a relative PYTHONPATH entry (the usual
        # `PYTHONPATH=src`) would find nothing there and the venv's editable install would
        # be measured instead of the tree asked for.
        if env.get("PYTHONPATH"):
            env["PYTHONPATH"] = os.pathsep.join(
                str(Path(entry).resolve()) if entry else entry
                for entry in env["PYTHONPATH"].split(os.pathsep))
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.argv, cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,  # its own process group
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start-up ({self.proc.returncode}):\n"
                                   + self.log_tail())
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/ok", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer /ok within {timeout}s:\n" + self.log_tail())

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def exited(self) -> int | None:
        """The exit code if the server process has ended, else None."""
        return None if self.proc is None else self.proc.poll()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def processes(self) -> list[psutil.Process]:
        """The server process and all its descendants (e.g. a reloader's child)."""
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss_bytes(self) -> int:
        return sum(_safe(lambda p=p: p.memory_info().rss, 0) for p in self.processes())

    def cpu_seconds(self) -> float:
        return sum(_safe(lambda p=p: sum(p.cpu_times()[:2]), 0.0) for p in self.processes())

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)  # our own group, created by start_new_session
            try:
                proc.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                continue


def _safe(fn, default):
    try:
        return fn()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return default


def runlane_server(workdir: Path, project: Path = DEMO,
                   extra_args: list[str] | None = None) -> Server:
    port = free_port()
    db = workdir / "rl.sqlite"
    argv = [
        str(ROOT / ".venv" / "bin" / "runlane"), "serve",
        "--config", str(project / "langgraph.json"), "--port", str(port),
        "--database-url", f"sqlite:///{db}",
        "--log-level", "warning",  # no per-run logs, as for the reference
        *(extra_args or []),
    ]
    return Server("runlane", argv, workdir, port)


def reference_server(workdir: Path, langgraph_exe: Path, extra_args: list[str],
                     project: Path = DEMO) -> Server:
    # `langgraph dev` resolves graph paths against its working directory and keeps
    # its state in ./.langgraph_api, so it gets a fresh copy of the project.
    source, project = project, workdir / "project"
    shutil.copytree(source, project, ignore=shutil.ignore_patterns(".*", "__pycache__"),
                    symlinks=False)
    # Left at its defaults but two: no reloader (one process, nothing watching files)
    # and no per-run info logs (LOG_LEVEL; runlane logs nothing per run). Note that
    # `langgraph dev` executes one run at a time by default (--help says 10; the dev
    # entry point uses 1), which is also its fastest setting for short runs:
    # `--n-jobs-per-worker` 10 or 64 lowers its 32-client throughput. Later flags in
    # `extra_args` win.
    port = free_port()
    argv = [
        str(langgraph_exe), "dev", "--no-browser", "--no-reload", "--port", str(port),
        "--config", "langgraph.json", *extra_args,
    ]
    server = Server("reference", argv, project, port, env={"LOG_LEVEL": "WARNING"})
    server.log_path = workdir / "server.log"
    return server


class Servers(contextlib.AbstractContextManager):
    """Start servers; stop every one of them on exit, on errors and on Ctrl-C."""

    def __init__(self) -> None:
        self.started: list[Server] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="runlane-bench-"))

    def workdir(self, name: str) -> Path:
        path = self.tmp / name
        path.mkdir()
        return path

    def start(self, server: Server) -> Server:
        self.started.append(server)
        server.start()
        return server

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        for server in reversed(self.started):
            if exc_type is not None and not issubclass(
                exc_type, (KeyboardInterrupt, asyncio.CancelledError)
            ):
                print(f"--- last lines of {server.name}'s log ---\n{server.log_tail()}")
            server.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
