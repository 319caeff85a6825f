"""A claimed cron firing survives the death of the worker that claimed it.

The worker is started with the test hook RUNLANE_TEST_CRON_STALL_AFTER_CLAIM (off by
default), so it stalls right after claiming a firing and before creating its run; it
is then killed with SIGKILL. On SQLite the same server is started again on the same
file; on PostgreSQL another worker (sharing the database and Redis) is started. Either
way, the firing the dead worker claimed must create exactly one run.

Each run of the `memory` graph records its firing under ("cron_log", tag) with the
firing time the cron stamped on the run (see test_crons.py).
"""

from __future__ import annotations

import re
import signal
import uuid
from collections import Counter
from pathlib import Path

import pytest
from langgraph_sdk import get_client

from conftest import BACKENDS, ServerProcess
from test_crons import EVERY_SECOND, _log, _until

STALL_ENV = "RUNLANE_TEST_CRON_STALL_AFTER_CLAIM"
STALLED = re.compile(r"cron (\S+): firing at (\S+) claimed; stalling")


def _stalled_firing(server: ServerProcess) -> tuple[str, str] | None:
    found = STALLED.search(server.log())
    return None if found is None else (found.group(1), found.group(2))


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_firing_claimed_by_a_killed_worker_creates_exactly_one_run(
        backend: str, tmp_path: Path) -> None:
    database_url = None
    extra: list[str] = []
    if backend == "postgres":
        from cluster import REDIS_URL, create_database, drop_database, require_services

        require_services(tests="cron firing durability on PostgreSQL")
        database_url = create_database()
        extra = ["--redis-url", REDIS_URL]
    claimer = ServerProcess(tmp_path / "claimer", *extra, env={STALL_ENV: "600"},
                            database_url=database_url)
    survivor: ServerProcess | None = None
    try:
        claimer.start()
        tag = uuid.uuid4().hex
        cron = await get_client(url=claimer.url).crons.create(
            "memory", schedule=EVERY_SECOND, input={"log": tag})

        async def stalled() -> tuple[str, str] | None:
            return _stalled_firing(claimer)

        cron_id, fired_at = await _until(stalled, "the claimer to claim a firing and stall")
        assert cron_id == cron["cron_id"]
        assert claimer.proc is not None
        claimer.proc.send_signal(signal.SIGKILL)
        claimer.proc.wait()
        claimer.proc = None
        # Nothing of the stalled firing ran: its run was never created.
        if backend == "sqlite":
            claimer.env = {}
            survivor = claimer.start()  # the same server again, on the same file
        else:
            survivor = ServerProcess(tmp_path / "survivor", *extra,
                                     database_url=database_url).start()
        client = get_client(url=survivor.url)

        async def firings_after_it() -> list[dict] | None:
            entries = await _log(client, tag)
            times = {entry["fired_at"] for entry in entries}
            # The stalled firing, and two later ones: a duplicate of the stalled one
            # would have been created before them.
            return entries if fired_at in times and len(times) >= 3 else None

        await _until(firings_after_it, "the stalled firing's run and two later firings",
                     timeout=60)
        await client.crons.delete(cron_id)
        entries = await _log(client, tag)
        fired = Counter(entry["fired_at"] for entry in entries)
        assert fired[fired_at] == 1, f"the claimed firing ran {fired[fired_at]} times: {fired}"
        assert max(fired.values()) == 1, f"a firing ran twice: {fired}"
        assert "taking over its firing at " + fired_at in survivor.log()
    finally:
        for process in (claimer, survivor):
            if process is not None:
                process.stop()
        if database_url is not None:
            drop_database(database_url)
