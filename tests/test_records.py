"""The typed records (runlane/records.py): built from rows without their dataclass
__init__ (for speed), they must be exactly the records __init__ would build, from
the rows both SQLite paths return (sqlite_direct's and SQLAlchemy's)."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest
import sqlalchemy as sa

from runlane.contract import CancelAction, RunStatus, ThreadStatus
from runlane.records import Assistant, AssistantVersion, Cron, Run, Thread
from runlane.serde import to_jsonable
from runlane.store import Store
from runlane.store import statements as st
from runlane.store.schema import assistant_versions, assistants, crons, runs, threads
from runlane.store.sqlite_direct import DirectConnection

UTC = datetime.UTC
T0 = datetime.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _at(seconds: int) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


# Every column set, each to a value of its own, so a field read from the wrong column
# shows.
RUN = {"run_id": "r1", "seq": 7, "thread_id": "t1", "assistant_id": "a1", "graph_id": "g",
       "status": "running", "multitask_strategy": "rollback", "metadata": {"m": 1},
       "kwargs": {"input": {"x": [1]}}, "cancel_action": "rollback", "cancel_reason": "user",
       "stop_reason": "cancelled", "error": {"error": "E", "message": "m"}, "worker_id": "w",
       "lease_expires_at": _at(1), "owner": "alice", "not_before": _at(2),
       "webhook": "http://hook", "webhook_state": "pending", "webhook_attempts": 3,
       "webhook_next_at": _at(3), "created_at": _at(4), "updated_at": _at(5),
       "started_at": _at(6), "ended_at": _at(7)}
THREAD = {"thread_id": "t1", "status": "interrupted", "metadata": {"graph_id": "g"},
          "config": {"c": 1}, "values": {"v": [1]}, "interrupts": {"task": [{"value": 1}]},
          "temporary": True, "owner": "alice", "expires_at": _at(1),
          "ttl": {"strategy": "delete", "ttl": 5}, "created_at": _at(2), "updated_at": _at(3)}
ASSISTANT = {"assistant_id": "a1", "graph_id": "g", "name": "n", "description": "d",
             "config": {"c": 1}, "context": {"k": 2}, "metadata": {"m": 3}, "version": 4,
             "owner": "alice", "created_at": _at(1), "updated_at": _at(2)}
VERSION = {"assistant_id": "a1", "version": 4, "graph_id": "g", "name": "n",
           "description": "d", "config": {"c": 1}, "context": {"k": 2}, "metadata": {"m": 3},
           "created_at": _at(1)}
CRON = {"cron_id": "c1", "assistant_id": "a1", "thread_id": "t1", "schedule": "* * * * *",
        "payload": {"input": 1}, "metadata": {"m": 1}, "user_id": "u", "owner": "alice",
        "enabled": False, "end_time": _at(1), "next_run_date": _at(2), "created_at": _at(3),
        "updated_at": _at(4)}

EXPECTED = {
    "runs": Run(**{**RUN, "status": RunStatus.RUNNING, "cancel_action": CancelAction.ROLLBACK}),
    "threads": Thread(**{**THREAD, "status": ThreadStatus.INTERRUPTED}),
    "assistants": Assistant(**ASSISTANT),
    "assistant_versions": AssistantVersion(**VERSION),
    "crons": Cron(**CRON),
}
TABLES = {"runs": (runs, RUN, Run), "threads": (threads, THREAD, Thread),
          "assistants": (assistants, ASSISTANT, Assistant),
          "assistant_versions": (assistant_versions, VERSION, AssistantVersion),
          "crons": (crons, CRON, Cron)}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    import asyncio

    store = Store(f"sqlite:///{tmp_path_factory.mktemp('records') / 'runlane.sqlite'}")
    asyncio.run(store.setup())
    with store.db.engine.begin() as conn:
        for table, row, _ in TABLES.values():
            conn.execute(table.insert(), row)
    return store


# The store's prebuilt reads of one row, which SQLite executes directly.
DIRECT = {"runs": (st.SELECT_RUN_BY_ID, {"p_run_id": "r1"}),
          "threads": (st.SELECT_THREAD, {"p_thread_id": "t1"}),
          "assistants": (st.SELECT_ASSISTANT, {"p_assistant_id": "a1"})}
CASES = [*((name, False) for name in TABLES), *((name, True) for name in DIRECT)]


@pytest.mark.parametrize(("name", "direct"), CASES)
def test_from_row_is_the_record_init_builds(store: Store, name: str, direct: bool) -> None:
    table, _, record = TABLES[name]
    with store.db.engine.connect() as conn:
        if direct:
            statement, params = DIRECT[name]
            assert store.db._direct.lookup(statement, params) is not None
            row: Any = DirectConnection(conn, store.db._direct).execute(statement, params).first()
        else:
            row = conn.execute(sa.select(table)).first()
    built = record.from_row(row)
    assert built == EXPECTED[name]
    assert [type(getattr(built, f.name)) for f in dataclasses.fields(built)] == [
        type(getattr(EXPECTED[name], f.name)) for f in dataclasses.fields(built)]


def test_from_columns_leaves_unwritten_columns_at_their_defaults() -> None:
    written = {k: RUN[k] for k in ("run_id", "thread_id", "assistant_id", "graph_id",
                                   "status", "multitask_strategy", "metadata", "kwargs",
                                   "created_at", "updated_at")}
    run = Run.from_columns({**written, "status": "pending"})
    assert run == Run(**{**written, "status": RunStatus.PENDING})
    assert run.cancel_action is None and run.seq is None and run.webhook_attempts == 0
    with pytest.raises(KeyError):
        Run.from_columns({k: v for k, v in written.items() if k != "kwargs"})
    assert Thread.from_columns(THREAD) == EXPECTED["threads"]
    assert Assistant.from_columns(ASSISTANT) == EXPECTED["assistants"]
    assert Cron.from_columns(CRON) == EXPECTED["crons"]


def test_a_tombstones_json_copy_reads_back_as_the_same_run() -> None:
    run = EXPECTED["runs"]
    assert Run.from_json(to_jsonable(run)) == run
    moment = dataclasses.replace(run, created_at=T0.replace(microsecond=0))
    assert Run.from_json(to_jsonable(moment)) == moment


def test_records_are_frozen_and_replace_makes_changed_copies() -> None:
    run = EXPECTED["runs"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.status = RunStatus.SUCCESS  # type: ignore[misc]
    ended = dataclasses.replace(run, status=RunStatus.INTERRUPTED)
    assert ended.status is RunStatus.INTERRUPTED and run.status is RunStatus.RUNNING
