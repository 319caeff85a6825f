"""A smoke test of `make soak`'s machinery (tests/soak.py): a short soak (30 s of
scenarios) on its private PostgreSQL and Redis with a fault every few seconds. It
proves the harness starts everything, injects faults of several kinds, checks the
history and the database, and stops every process it started; the soak itself (10
minutes, docs/scale-out.md#the-soak) is not part of `make test`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
