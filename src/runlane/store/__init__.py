"""Durable state: threads, runs, assistants, crons, tombstones, leases, webhooks,
checkpoints and the langgraph item store. Every run status change is one
compare-and-set statement in runs.py.

- database.py         engines, transactions (inline on SQLite, threads on PostgreSQL)
- schema.py, migrations/, migrate.py   tables and their Alembic migrations
- statements.py       prebuilt statements; sqlite_direct.py runs them on sqlite3
- runs.py             `Store`: runs and every run status change
- threads.py, assistants.py, crons.py, webhook_queue.py   the other resources
- json_filter.py      metadata/values filters on both backends
- checkpoints.py, thread_checkpoints.py   the langgraph checkpointer and whole-thread
                      checkpoint operations (rollback, copy, prune)
- items.py, owner_scope.py   the langgraph item store, per owner
"""

from runlane.store.runs import CancelResult, CreatedRun, SettleResult, Store

__all__ = ["CancelResult", "CreatedRun", "SettleResult", "Store"]
