"""Tables of runlane's own state (graph checkpoints live in the langgraph checkpointer).

One schema for SQLite and PostgreSQL, written with SQLAlchemy Core so both backends
run the very same statements.
"""

from __future__ import annotations

import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

from runlane.serde import dumps

metadata = sa.MetaData()


class JSONText(TypeDecorator):
    """JSON stored as text, encoded with orjson (faster than the stdlib, and it knows
    the types graphs put in their state)."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> str | None:
        return None if value is None else dumps(value).decode()

    def process_result_value(self, value: str | None, dialect: sa.Dialect) -> Any:
        return None if value is None else orjson.loads(value)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC timestamps on both backends (SQLite drops the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=datetime.UTC)
        return value


def _ts(name: str, **kw: Any) -> sa.Column:
    return sa.Column(name, UTCDateTime, **kw)


assistants = sa.Table(
    "assistants",
    metadata,
    sa.Column("assistant_id", sa.String(36), primary_key=True),
    sa.Column("graph_id", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("config", JSONText, nullable=False),
    sa.Column("context", JSONText, nullable=False),
    sa.Column("metadata", JSONText, nullable=False),
    sa.Column("version", sa.Integer, nullable=False, default=1),
    # Who may see and touch the row when auth is on (NULL: created with auth off).
    sa.Column("owner", sa.Text),
    _ts("created_at", nullable=False),
    _ts("updated_at", nullable=False),
    sa.Index("ix_assistants_owner", "owner"),
)

# Every version an assistant has had; `assistants` holds the one in use (latest or
# the one set with /assistants/{id}/latest).
assistant_versions = sa.Table(
    "assistant_versions",
    metadata,
    sa.Column("assistant_id", sa.String(36), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("graph_id", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("config", JSONText, nullable=False),
    sa.Column("context", JSONText, nullable=False),
    sa.Column("metadata", JSONText, nullable=False),
    _ts("created_at", nullable=False),
)

threads = sa.Table(
    "threads",
    metadata,
    sa.Column("thread_id", sa.String(36), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("metadata", JSONText, nullable=False),
    sa.Column("config", JSONText, nullable=False),
    sa.Column("values", JSONText),
    sa.Column("interrupts", JSONText, nullable=False),
    # Stateless runs get a thread of their own that is deleted with them.
    sa.Column("temporary", sa.Boolean, nullable=False, default=False),
    sa.Column("owner", sa.Text),
    # Thread TTL: when set, the thread is deleted (or its checkpoints pruned, per
    # ttl_strategy) once this passes.
    _ts("expires_at"),
    sa.Column("ttl", JSONText),
    # A change to the thread's checkpoints outside a run (a state update, a
    # keep_latest prune) holds the thread: no run starts on it until the holder
    # releases it (matching `hold_token`) or `hold_until` passes (a dead holder).
    sa.Column("hold_token", sa.String(36)),
    _ts("hold_until"),
    _ts("created_at", nullable=False),
    _ts("updated_at", nullable=False),
    sa.Index("ix_threads_owner", "owner"),
    sa.Index("ix_threads_expires_at", "expires_at"),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(36), primary_key=True),
    # Creation order: `enqueue` starts a thread's runs in this order.
    # On PostgreSQL a sequence numbers runs across workers; SQLite has no sequences,
    # and its single writer numbers them in-process (Store._next_seq).
    sa.Column("seq", sa.BigInteger, sa.Sequence("runs_seq_seq", metadata=metadata),
              nullable=False),
    sa.Column("thread_id", sa.String(36), nullable=False),
    sa.Column("assistant_id", sa.String(36), nullable=False),
    sa.Column("graph_id", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("multitask_strategy", sa.String(16), nullable=False),
    sa.Column("metadata", JSONText, nullable=False),
    # Everything needed to execute the run: input, command, config, stream modes ...
    sa.Column("kwargs", JSONText, nullable=False),
    # Set once, by the first cancel (compare-and-set on NULL): the first action wins.
    sa.Column("cancel_action", sa.String(16)),
    sa.Column("cancel_reason", sa.String(32)),
    sa.Column("stop_reason", sa.String(32)),
    sa.Column("error", JSONText),
    # The worker executing the run, and until when its lease holds (scale-out).
    sa.Column("worker_id", sa.Text),
    _ts("lease_expires_at"),
    sa.Column("owner", sa.Text),
    # `after_seconds`: the run is not claimed before this.
    _ts("not_before"),
    # Where to POST the run once it is terminal, and how that delivery stands.
    sa.Column("webhook", sa.Text),
    sa.Column("webhook_state", sa.String(16)),
    # Delivery attempts so far, and when the next one is due (while `sending`: until
    # when the delivering worker's claim holds; a crashed delivery is retried after).
    sa.Column("webhook_attempts", sa.Integer, nullable=False, default=0,
              server_default="0"),
    _ts("webhook_next_at"),
    _ts("created_at", nullable=False),
    _ts("updated_at", nullable=False),
    _ts("started_at"),
    _ts("ended_at"),
    sa.Index("ix_runs_thread_created", "thread_id", "seq"),
    sa.Index("ix_runs_status_seq", "status", "seq"),
    sa.Index("ix_runs_webhook_state", "webhook_state"),
    # The database itself guarantees one running run per thread.
    sa.Index(
        "uq_runs_one_running_per_thread",
        "thread_id",
        unique=True,
        sqlite_where=sa.text("status = 'running'"),
        postgresql_where=sa.text("status = 'running'"),
    ),
)

# A rollback removes its run but leaves this, so a later cancel of the same id
# still answers 202 rather than 404. A user's delete leaves none.
run_tombstones = sa.Table(
    "run_tombstones",
    metadata,
    sa.Column("run_id", sa.String(36), primary_key=True),
    sa.Column("thread_id", sa.String(36), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("run", JSONText, nullable=False),
    sa.Column("owner", sa.Text),
    _ts("created_at", nullable=False),
    sa.Index("ix_tombstones_thread", "thread_id"),
)

crons = sa.Table(
    "crons",
    metadata,
    sa.Column("cron_id", sa.String(36), primary_key=True),
    sa.Column("assistant_id", sa.String(36), nullable=False),
    # NULL: each firing is a stateless run on a thread of its own.
    sa.Column("thread_id", sa.String(36)),
    sa.Column("schedule", sa.Text, nullable=False),
    # The run each firing creates (input, config, multitask_strategy ...).
    sa.Column("payload", JSONText, nullable=False),
    sa.Column("metadata", JSONText, nullable=False),
    sa.Column("user_id", sa.Text),
    sa.Column("owner", sa.Text),
    # The authenticated user who created the cron (identity, permissions ...), as a
    # run records its creator: each firing's run runs as this user, on whichever
    # worker and however long after. NULL with auth off (and for crons created
    # before 0008: their runs get the identity `user_id` alone, as the reference's).
    sa.Column("auth_user", JSONText),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    _ts("end_time"),
    # The next firing; a worker claims it by moving this forward (compare-and-set),
    # so a firing happens once across workers.
    _ts("next_run_date"),
    # A claimed firing whose run is not created yet (see store/crons.py): kept until
    # the run's admission clears it, so a worker dying in between loses nothing;
    # `firing_until` is when another worker may take it over.
    _ts("firing_at"),
    _ts("firing_until"),
    _ts("created_at", nullable=False),
    _ts("updated_at", nullable=False),
    sa.Index("ix_crons_next_run_date", "next_run_date"),
    sa.Index("ix_crons_owner", "owner"),
)

# Idempotency-Key (see store/idempotency.py): one row per (owner, key) while it lives.
# The primary key is what makes concurrent duplicates create one object: the row is
# inserted in the transaction that creates the run (or thread), so of two racing
# requests exactly one commits a row, and the other reads it.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    # '' with auth off (a primary key column cannot be NULL).
    sa.Column("owner", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    # sha256 of the request (route and body): the same key on another request is a 422.
    sa.Column("fingerprint", sa.String(64), nullable=False),
    # What the request created: {"thread_id", "run_id"}, {"runs": [[thread, run]...]}
    # or {"thread_id"} (POST /threads).
    sa.Column("target", JSONText, nullable=False),
    _ts("created_at", nullable=False),
    _ts("expires_at", nullable=False),
    sa.Index("ix_idempotency_keys_expires_at", "expires_at"),
)

# The restore point of a running run that resumed an existing checkpoint (see
# store/restore_points.py): the pending writes its rollback puts back. One row per
# such run while it is `running`, so a rollback completed by another worker, or after
# a restart, restores exactly what the run's own worker would have. Small (only
# running runs), hence no index beyond the key.
run_restore_points = sa.Table(
    "run_restore_points",
    metadata,
    sa.Column("run_id", sa.String(36), primary_key=True),
    sa.Column("thread_id", sa.String(36), nullable=False),
    # checkpoints.RestorePoint.to_json(): the checkpoints and their writes' rows.
    sa.Column("restore", JSONText, nullable=False),
    _ts("created_at", nullable=False),
)
