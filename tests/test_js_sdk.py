"""The official LangGraph JS SDK (@langchain/langgraph-sdk) against a real runlane.

tests/js/sdk_check.mjs drives the `server` fixture with the SDK's `Client` (assistants,
threads, runs.wait/stream/joinStream with Last-Event-ID, cancel twice, HITL resume,
state and history) and with the stream machinery React's `useStream` is built on
(StreamManager + MessageTupleManager, StreamOrchestrator). It prints a JSON summary
and exits non-zero on any failed check.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

JS_DIR = Path(__file__).parent / "js"
SCRIPT = JS_DIR / "sdk_check.mjs"
INSTALLED = JS_DIR / "node_modules" / ".package-lock.json"  # written by npm ci


def _tools() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("the JS SDK test needs Node.js 20+ and npm on PATH "
                    "(it installs @langchain/langgraph-sdk into tests/js/node_modules)")
    version = subprocess.run([node, "--version"], check=False, capture_output=True,
                             text=True).stdout.strip()
    major = version.lstrip("v").split(".")[0]
    if not major.isdigit() or int(major) < 20:
        pytest.skip(f"the JS SDK test needs Node.js 20+ (found {version or 'an unknown version'})")
    return node, npm


def _install(npm: str) -> None:
    """`npm ci` once: when node_modules is missing or older than the lockfile."""
    lock = JS_DIR / "package-lock.json"
    # One install at a time, should two test sessions share this checkout.
    guard = Path(tempfile.gettempdir()) / f"runlane-npm-ci-{os.getuid()}.lock"
    with open(guard, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        if INSTALLED.exists() and INSTALLED.stat().st_mtime >= lock.stat().st_mtime:
            return
        proc = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], check=False, cwd=JS_DIR,
            capture_output=True, text=True, timeout=300,
        )
    assert proc.returncode == 0, (
        f"`npm ci` in {JS_DIR} failed (exit {proc.returncode}); it needs the npm registry.\n"
        f"{proc.stdout}\n{proc.stderr}"
    )


def test_js_sdk_against_runlane(server) -> None:
    node, npm = _tools()
    _install(npm)
    proc = subprocess.run(
        [node, str(SCRIPT), server.url], check=False, cwd=JS_DIR,
        capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, (
        f"JS SDK checks failed (exit {proc.returncode}) against {server.url}\n"
        f"--- progress (stderr) ---\n{proc.stderr}\n"
        f"--- summary (stdout) ---\n{proc.stdout}\n"
        f"--- server log (tail) ---\n{server.log()[-4000:]}"
    )
