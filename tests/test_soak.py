"""A smoke test of `make soak`'s machinery (tests/soak.py): a short soak (30 s of
scenarios) on its private PostgreSQL and Redis with a fault every few seconds. It
proves the harness starts everything, injects faults of several kinds, checks the
history and the database, and stops every process it started; the soak itself (10
minutes, docs/scale-out.md#the-soak) is not part of `make test`."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from private_services import missing_binaries

pytestmark = [pytest.mark.scaleout, pytest.mark.outage]

SOAK = Path(__file__).parent / "soak.py"


# A 30 s soak, but starting 3 workers and PostgreSQL, restarting them, and settling
# take minutes on a loaded 2-core machine.
@pytest.mark.timeout(900)
def test_a_short_soak_passes_and_injects_faults(tmp_path: Path) -> None:
    missing = missing_binaries()
    if missing:
        message = f"the soak needs {', '.join(missing)}"
        if os.environ.get("RUNLANE_REQUIRE_SERVICES"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    out = tmp_path / "soak.json"
    soak = subprocess.Popen(
        [sys.executable, str(SOAK), "--seconds", "30", "--fault-interval", "2",
         "--concurrency", "3", "--seed", "11", "--settle", "90", "--out", str(out),
         "--workdir", str(tmp_path / "work")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        output, _ = soak.communicate(timeout=840)
    finally:
        if soak.poll() is None:  # SIGTERM: the soak stops what it started, then exits
            soak.terminate()
            output, _ = soak.communicate(timeout=60)
    report = output[-20000:]
    assert soak.returncode == 0, report
    result = json.loads(out.read_text())
    # The command that ran, as it can be run again (not `make soak`'s).
    command = shlex.split(result["command"])
    assert command[1:3] == [str(SOAK), "--seconds"] and "--fault-interval" in command, command
    assert result["violations"] == 0, report
    assert result["database"]["runs_left_active"] == [], report
    assert result["requests"] > 100, result
    # Faults of several kinds were injected and each was recovered from.
    faults = result["faults_by_kind"]
    assert sum(faults.values()) >= 2 and len(faults) >= 2, faults
    assert result["faults_not_recovered"] == 0, result
    # Streams were resumed and compared with their replayed logs; webhooks delivered.
    assert result["streams_compared_with_replay"] > 0, result
    hooks = result["webhooks"]
    assert hooks["owed"] > 0 and hooks["delivered"] == hooks["owed"], hooks
    assert "runs in the database" in output



def _restarted_workers(tag: str) -> list[int]:
    """runlane workers started under the soak tagged `tag` (its environment, which they
    inherit) that lead a session of their own: those the checker restarted."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if b"runlane.cli" not in (entry / "cmdline").read_bytes():
                continue
            if f"RUNLANE_TEST_SOAK_TAG={tag}".encode() not in (entry / "environ").read_bytes():
                continue
            pid = int(entry.name)
            if os.getsid(pid) == pid:
                found.append(pid)
        except OSError:
            continue
    return found


@pytest.mark.timeout(600)
def test_an_interrupted_soak_leaves_no_worker_behind(tmp_path: Path) -> None:
    """SIGTERM while the checker has restarted a worker (which it starts in a session
    of its own): the soak stops it too. It used to stop only the workers the checker
    listed at its end, which an interrupted check never reached, and left them
    running after their PostgreSQL and Redis were gone."""
    missing = missing_binaries()
    if missing:
        pytest.skip(f"the soak needs {', '.join(missing)}")
    tag = uuid.uuid4().hex
    soak = subprocess.Popen(
        [sys.executable, str(SOAK), "--seconds", "300", "--fault-interval", "1",
         "--faults", "kill", "--concurrency", "1", "--workers", "2", "--seed", "3",
         "--out", str(tmp_path / "soak.json"), "--workdir", str(tmp_path / "work")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "RUNLANE_TEST_SOAK_TAG": tag},
    )
    try:
        deadline = time.monotonic() + 280
        while not _restarted_workers(tag):
            assert soak.poll() is None and time.monotonic() < deadline, soak.communicate()[0]
            time.sleep(0.5)
        time.sleep(2)  # the restarted worker is starting (or serving)
    finally:
        soak.send_signal(signal.SIGTERM)
        output, _ = soak.communicate(timeout=120)
    time.sleep(1)
    left = _restarted_workers(tag)
    for pid in left:  # not to leak them from the test either
        os.killpg(pid, signal.SIGKILL)
    assert not left, output[-5000:]
