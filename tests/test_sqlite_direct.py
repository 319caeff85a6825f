"""The SQLite direct path (store/sqlite_direct.py) reads and writes exactly what
SQLAlchemy would: every prebuilt statement, executed both ways on the same data,
gives the same rows, the same Python values and types, and leaves the same table
contents behind."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from runlane.store import Store
from runlane.store import statements as st
from runlane.store.schema import assistants, runs, threads
from runlane.store.sqlite_direct import DirectConnection

UTC = datetime.UTC
NOW = datetime.datetime(2026, 11, 25, 9, 30, 1, 123456, tzinfo=UTC)


def _thread(thread_id: str, status: str, **extra: Any) -> dict[str, Any]:
    return {"thread_id": thread_id, "status": status, "metadata": {"graph_id": "g", "k": [1, "é"]},
            "config": {}, "values": {"n": 1, "nested": {"a": None}}, "interrupts": {},
            "temporary": False, "owner": None, "created_at": NOW, "updated_at": NOW, **extra}


def _run(run_id: str, thread_id: str, seq: int, status: str, **extra: Any) -> dict[str, Any]:
    return {"run_id": run_id, "thread_id": thread_id, "seq": seq, "assistant_id": "a",
            "graph_id": "g", "status": status, "multitask_strategy": "enqueue",
            "metadata": {"m": 1}, "kwargs": {"input": {"x": [1, 2]}}, "owner": None,
            "webhook_attempts": 0, "created_at": NOW, "updated_at": NOW, **extra}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    path: Path = tmp_path_factory.mktemp("direct") / "runlane.sqlite"
    store = Store(f"sqlite:///{path}")
    asyncio.run(store.setup())
    t1, t2, t3 = (str(uuid.uuid4()) for _ in range(3))
    with store.db.engine.begin() as conn:
        conn.execute(threads.insert(), [_thread(t1, "busy"), _thread(t2, "busy"),
                                        _thread(t3, "idle", values=None)])
        for row in [
            _run("r-running", t1, 1, "running", worker_id="w1", started_at=NOW,
                 lease_expires_at=NOW + datetime.timedelta(seconds=10)),
            _run("r-cancelled", t2, 2, "running", worker_id="w1", started_at=NOW,
                 cancel_action="interrupt", cancel_reason="user",
                 lease_expires_at=NOW - datetime.timedelta(seconds=10)),
            _run("r-pending", t1, 3, "pending"),
            _run("r-delayed", t3, 4, "pending", not_before=NOW + datetime.timedelta(hours=1)),
            _run("r-startable", t3, 5, "pending"),
        ]:
            conn.execute(runs.insert(), row)
        conn.execute(assistants.insert(), {
            "assistant_id": "a", "graph_id": "g", "name": "a", "config": {"configurable": {}},
            "context": {}, "metadata": {"created_by": "system"}, "version": 1, "owner": None,
            "created_at": NOW, "updated_at": NOW})
    store.ids = {"t1": t1, "t2": t2, "t3": t3}  # type: ignore[attr-defined]
    return store


def _params(store: Store) -> dict[str, Any]:
    ids = store.ids  # type: ignore[attr-defined]
    return {
        "p_thread_id": ids["t1"], "p_run_id": "r-running", "p_assistant_id": "a",
        "p_now": NOW + datetime.timedelta(seconds=1), "p_worker_id": "w1",
        "p_lease_until": NOW + datetime.timedelta(seconds=30), "p_limit": 5,
        "p_status": "success", "p_stop_reason": "completed",
        "p_error": {"error": "E", "message": "ü \u2028"}, "p_values": {"n": 2, "l": [None, 1.5]},
        "p_interrupts": {"t": [{"value": 1}]}, "p_metadata": {"graph_id": "g2"},
        "p_deadline": NOW, "p_cancel_action": "interrupt", "p_cancel_reason": "user",
        "p_owner": None,
    }


def _snapshot(conn: sa.Connection) -> list[Any]:
    return [sorted(tuple(r) for r in conn.execute(sa.select(t)).all())
            for t in (threads, runs, assistants)]


def _rows(result: Any) -> list[dict[str, Any]] | int:
    try:
        rows = result.all()
    except sa.exc.ResourceClosedError:  # a statement without rows: how many it changed
        return result.rowcount
    return [dict(r._mapping) for r in rows]


def _typed(value: Any) -> Any:
    """Compare types too: a datetime must come back a datetime with its zone."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)


# Not on SQLite's direct path: NOTIFY (PostgreSQL's), and RENEW_LEASES_OF, the lease
# renewal of scale-out workers (PostgreSQL only; its expanding IN list is compiled per
# call, and a SQLite process holds no leases).
STATEMENTS = [name for name in dir(st) if name.isupper()
              and isinstance(getattr(st, name), sa.Executable)
              and name not in ("NOTIFY", "RENEW_LEASES_OF")]


@pytest.mark.parametrize("name", STATEMENTS)
@pytest.mark.parametrize("variant", ["t1/running", "t2/cancelled", "t3/pending", "unknown"])
def test_direct_statement_matches_sqlalchemy(store: Store, name: str, variant: str) -> None:
    statement = getattr(st, name)
    params = _params(store)
    thread_key, run_key = variant.split("/") if "/" in variant else (None, None)
    if variant == "unknown":
        params.update(p_thread_id=str(uuid.uuid4()), p_run_id=str(uuid.uuid4()),
                      p_assistant_id=str(uuid.uuid4()))
    else:
        params.update(p_thread_id=store.ids[thread_key],  # type: ignore[attr-defined]
                      p_run_id=f"r-{run_key}")
    if isinstance(statement, sa.Insert):
        table = statement.table
        row = (_thread(str(uuid.uuid4()), "idle") if table is threads
               else _run(str(uuid.uuid4()), params["p_thread_id"], 99, "pending"))
        params = row
    outcomes = []
    for direct in (False, True):
        with store.db.engine.connect() as conn:
            trans = conn.begin()
            try:
                executor = DirectConnection(conn, store.db._direct) if direct else conn
                if direct:  # the statement really takes the direct path
                    assert store.db._direct.lookup(statement, params) is not None, name
                try:
                    outcome: Any = _typed(_rows(executor.execute(statement, params)))
                except sa.exc.DBAPIError as exc:  # e.g. the one-running-run index
                    outcome = type(exc).__name__
                outcomes.append((outcome, _snapshot(conn)))
            finally:
                trans.rollback()
    assert outcomes[0] == outcomes[1]


def test_other_statements_go_through_sqlalchemy(store: Store) -> None:
    """A statement built on the fly is not registered: SQLAlchemy executes it, in the
    same transaction as the direct ones."""
    with store.db.engine.connect() as conn, conn.begin():
        direct = DirectConnection(conn, store.db._direct)
        dynamic = sa.select(runs.c.run_id).where(runs.c.status == "pending").order_by(runs.c.seq)
        assert store.db._direct.lookup(dynamic, None) is None
        direct.execute(st.MARK_THREAD_BUSY, {"p_thread_id": store.ids["t3"], "p_now": NOW})
        status = direct.scalar(sa.select(threads.c.status).where(
            threads.c.thread_id == store.ids["t3"]))  # type: ignore[attr-defined]
        assert status == "busy"  # sees the direct write: one transaction
        assert [r.run_id for r in direct.execute(dynamic)] == ["r-pending", "r-delayed",
                                                              "r-startable"]
        conn.rollback()


def test_driver_errors_are_sqlalchemy_errors(store: Store) -> None:
    """A direct statement fails as SQLAlchemy would: the store and the database layer
    handle IntegrityError and OperationalError, not sqlite3's own."""
    with store.db.engine.connect() as conn, conn.begin():
        direct = DirectConnection(conn, store.db._direct)
        row = _thread(store.ids["t1"], "idle")  # type: ignore[attr-defined]
        with pytest.raises(sa.exc.IntegrityError):
            direct.execute(st.INSERT_THREAD, row)
        conn.rollback()


def test_transactions_commit_and_roll_back_as_one(store: Store) -> None:
    """Database's own BEGIN/COMMIT on sqlite3 spans direct and SQLAlchemy statements:
    both commit together, and both roll back together when the function fails."""
    thread_id = store.ids["t3"]  # type: ignore[attr-defined]
    status = sa.select(threads.c.status).where(threads.c.thread_id == thread_id)

    def change(conn: Any, value: str, fail: bool) -> None:
        conn.execute(st.MARK_THREAD_BUSY, {"p_thread_id": thread_id, "p_now": NOW})
        conn.execute(threads.update().where(threads.c.thread_id == thread_id)
                     .values(status=value))  # built here: SQLAlchemy executes it
        if fail:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.db._transaction(lambda conn: change(conn, "error", True))
    assert store.db._transaction(lambda conn: conn.scalar(status)) == "idle"
    store.db._transaction(lambda conn: change(conn, "interrupted", False))
    with store.db.engine.connect() as other:  # committed: another connection sees it
        assert other.scalar(status) == "interrupted"
    store.db._transaction(lambda conn: conn.execute(
        threads.update().where(threads.c.thread_id == thread_id).values(status="idle")))


def test_reads_take_no_write_lock_and_see_the_last_commit(store: Store) -> None:
    """`Database.read` (one-statement reads: a run, a thread, an assistant) runs
    without BEGIN IMMEDIATE on SQLite: while another connection holds the write lock,
    a read still answers at once, with the last committed row; and a read through
    SQLAlchemy (a dynamic statement) leaves no transaction open behind it."""
    thread_id = store.ids["t3"]  # type: ignore[attr-defined]
    db = store.db
    dynamic = sa.select(threads.c.status).where(threads.c.thread_id == thread_id)
    with db.engine.connect() as probe:  # the store's one connection (StaticPool)
        dbapi = probe.connection.dbapi_connection
    writer = sa.create_engine(db.url, poolclass=sa.pool.NullPool).connect()
    try:
        writer.exec_driver_sql("PRAGMA busy_timeout=0")
        writer.exec_driver_sql("BEGIN IMMEDIATE")  # holds the write lock
        writer.exec_driver_sql(
            "UPDATE threads SET status = 'error' WHERE thread_id = ?", (thread_id,))
        row = asyncio.run(db.read(lambda conn: conn.execute(
            st.SELECT_THREAD, {"p_thread_id": thread_id}).first()))
        assert row.status == "idle"  # the uncommitted change is not seen
        assert asyncio.run(db.read(lambda conn: conn.scalar(dynamic))) == "idle"
        assert not dbapi.in_transaction
        with pytest.raises(sa.exc.OperationalError, match="locked"):
            db._transaction(lambda conn: None)  # a write transaction must wait its turn
        writer.exec_driver_sql("COMMIT")
        assert asyncio.run(db.read(lambda conn: conn.scalar(dynamic))) == "error"
        assert not dbapi.in_transaction
    finally:
        writer.exec_driver_sql("UPDATE threads SET status = 'idle' WHERE thread_id = ?",
                               (thread_id,))
        writer.commit()
        writer.close()
